export type { MemoryBroker, MemoryBrokerOptions, StoredMessage } from './broker.ts';
export { createMemoryBroker, defaultMemoryBroker } from './broker.ts';
export type { MemoryChaosOptions, MemoryGroupOptions, MemoryTransportOptions } from './options.ts';
export { createMemoryTransport, memory } from './transport.ts';
