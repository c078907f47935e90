import { createEventBus } from '../../../src/index.ts';
import { runConformanceSuite } from '../../../src/testing/index.ts';
import { createMemoryBroker } from '../../../src/transports/memory/index.ts';

const broker = createMemoryBroker();

runConformanceSuite({
  name: 'memory',
  createBus: (overrides) =>
    createEventBus({ ...overrides, transport: 'memory', memory: { broker }, metrics: { enabled: false } }),
  injectRaw: async (topic, data, headers = {}) => {
    broker.topic(topic).append({ data, headers, key: undefined }, `raw-${Math.random()}`);
  },
});
