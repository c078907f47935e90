/**
 * `jxt-eventbus/outbox`: the transactional outbox (write events in your own
 * database transaction, a relay publishes them in order per aggregate and
 * marks them published only on broker ack) and the idempotent inbox.
 */
export { backoffDelayMs, outboxBackoffDefaults } from './backoff.ts';
export { createPgOutboxStore, type PgTransaction } from './pg-store.ts';
export { createPgliteOutboxStore, type PgliteTransaction } from './pglite-store.ts';
export {
  createOutboxRelay,
  type OutboxRelay,
  type OutboxRelayOptions,
  type OutboxRelayState,
  type OutboxRelayStats,
} from './relay.ts';
export { type Migration, migrations } from './schema.ts';
export type {
  ClaimedRow,
  OutboxMessage,
  OutboxStats,
  OutboxStore,
  OutboxStoreOptions,
  ProcessOnceOptions,
  RelayStore,
  ReleaseFailure,
  SqlExecutor,
  SqlResult,
} from './types.ts';
