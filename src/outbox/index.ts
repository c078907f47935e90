/**
 * `jxt-eventbus/outbox`: the transactional outbox (write events in your own
 * database transaction, a relay publishes them in order per aggregate and
 * marks them published only on broker ack) and the idempotent inbox.
 */
/** The options of `OutboxRelay.close()`, as for every other close in the package. */
export type { CloseOptions } from '../core/types.ts';
export { backoffDelayMs, outboxBackoffDefaults } from './backoff.ts';
export { createOutboxMetrics, type OutboxMetrics, type OutboxMetricsOptions } from './metrics.ts';
export {
  createPgOutboxStore,
  type PgPool,
  type PgPoolClient,
  type PgQueryable,
  type PgTransaction,
} from './pg-store.ts';
export {
  createPgliteOutboxStore,
  type PgliteDatabase,
  type PgliteQueryable,
  type PgliteTransaction,
} from './pglite-store.ts';
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
