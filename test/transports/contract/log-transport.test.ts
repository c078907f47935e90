/**
 * Proof of the open seam: a transport written outside the package, against
 * its public entry point only (log-transport.ts), passes the transport
 * contract and the bus-level conformance suite.
 */
import { createEventBus } from '../../../src/index.ts';
import { runConformanceSuite, runTransportContract } from '../../../src/testing/index.ts';
import { LogBroker, logTransport } from './log-transport.ts';

const broker = new LogBroker();

runTransportContract(logTransport(broker));

runConformanceSuite({
  name: 'log (a transport outside the package)',
  createBus: (overrides) =>
    createEventBus({ ...overrides, transport: logTransport(broker), metrics: { enabled: false } }),
  injectRaw: async (topic, data, headers = {}) => {
    broker.append(topic, { data, headers, key: undefined }, undefined);
  },
});
