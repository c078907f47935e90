/** SubscribeOptions.startFrom on the memory transport (see test/bus/start-from-kit.ts). */
import { createEventBus, createMemoryBroker } from '../../../src/index.ts';
import { runStartFromSuite } from '../../bus/start-from-kit.ts';

const broker = createMemoryBroker();
runStartFromSuite({
  name: 'memory',
  createBus: (clientId) =>
    createEventBus({ transport: 'memory', clientId, memory: { broker }, metrics: { enabled: false } }),
});
