import { createEventBus } from '../../../src/index.ts';
import { runConformanceSuite } from '../../../src/testing/index.ts';
import { createMemoryBroker } from '../../../src/transports/memory/index.ts';

const broker = createMemoryBroker();

/**
 * The shared conformance suite on the in-memory transport at the full
 * Watermill sizes: long-running, so in the fault tier (conformance.test.ts
 * runs it at reduced sizes in the fast tier).
 */
runConformanceSuite({
  name: 'memory, full sizes',
  scale: 1,
  timeoutMs: 480_000,
  createBus: (overrides) =>
    createEventBus({ ...overrides, transport: 'memory', memory: { broker }, metrics: { enabled: false } }),
  injectRaw: async (topic, data, headers = {}) => {
    broker.topic(topic).append({ data, headers, key: undefined }, `raw-${Math.random()}`);
  },
});
