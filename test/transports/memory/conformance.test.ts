import { createEventBus } from '../../../src/index.ts';
import { runConformanceSuite } from '../../../src/testing/index.ts';
import { createMemoryBroker } from '../../../src/transports/memory/index.ts';

const broker = createMemoryBroker();

/**
 * The shared conformance suite on the in-memory transport, at reduced sizes
 * (fast tier: 100,000 messages through the blocked pool alone took ~25 s);
 * conformance-full.fault.ts runs the full Watermill sizes.
 */
runConformanceSuite({
  name: 'memory',
  scale: 0.2,
  createBus: (overrides) =>
    createEventBus({ ...overrides, transport: 'memory', memory: { broker }, metrics: { enabled: false } }),
  injectRaw: async (topic, data, headers = {}) => {
    broker.topic(topic).append({ data, headers, key: undefined }, `raw-${Math.random()}`);
  },
});
