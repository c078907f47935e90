export type { MemoryBroker, MemoryBrokerOptions, StoredMessage } from './broker.ts';
export { createMemoryBroker, defaultMemoryBroker } from './broker.ts';
export type { MemoryChaosOptions, MemoryGroupOptions, MemoryTransportOptions } from './options.ts';
export type { MemoryPublishChaosOptions, MemoryPublishFault } from './publish-chaos.ts';
export { createMemoryTransport, memory } from './transport.ts';
