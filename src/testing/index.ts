/** Test utilities: the transport conformance suite, the order checker, waiters. */

export { createMemoryBroker } from '../transports/memory/index.ts';
export type {
  CheckerReport,
  DeliveryExpectation,
  ExecutionChecker,
  ExecutionReport,
  OrderChecker,
} from './checker.ts';
export {
  checkDelivery,
  createExecutionChecker,
  createOrderChecker,
  formatExecutionReport,
  formatReport,
} from './checker.ts';
export type { BusOverrides, ConformanceTarget } from './conformance.ts';
export { runConformanceSuite } from './conformance.ts';
export type { TransportContractOptions } from './contract.ts';
export { runTransportContract } from './contract.ts';
export type { PollOptions, Signal } from './waiters.ts';
export { deferred, pollUntil, until } from './waiters.ts';
