/** Public shapes of the transactional outbox and the idempotent inbox (src/outbox/README.md). */
import type { Envelope, EnvelopeInput } from '../core/envelope.ts';

/** One event to put in the outbox: the topic it goes to and its envelope. */
export interface OutboxMessage<P = unknown> {
  readonly topic: string;
  /** `eventId` (UUIDv7) and `timestamp` are filled in when absent; validated like `publishEnvelope`. */
  readonly envelope: EnvelopeInput<P>;
}

export interface SqlResult<R> {
  readonly rows: R[];
  readonly affectedRows: number;
}

/** The one thing both adapters provide: run one parameterised statement. */
export interface SqlExecutor {
  query<R = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<SqlResult<R>>;
}

/** A row a relay holds a lease on. */
export interface ClaimedRow {
  readonly id: string;
  readonly topic: string;
  readonly aggregateId: string;
  /** Insert order (bigserial), as a bigint: per-aggregate publish order. */
  readonly seq: bigint;
  /** The stored envelope as JSON text (decoded by the relay). */
  readonly envelope: string;
  /** Failed publish attempts so far. */
  readonly attempts: number;
}

export interface ReleaseFailure {
  readonly id: string;
  readonly error: string;
  readonly retryDelayMs: number;
}

export interface OutboxStats {
  /** Rows not yet published. */
  readonly pending: number;
  /** Age of the oldest unpublished row, 0 when none. */
  readonly lagSeconds: number;
  /** Unpublished rows whose publish failed at least once (they keep failing until fixed or given up). */
  readonly failing: number;
  /** Age of the oldest of those, 0 when none. */
  readonly oldestFailingSeconds: number;
}

/** What a relay needs from a store. Both adapters implement it with the same SQL. */
export interface RelayStore {
  readonly kind: 'pg' | 'pglite';
  /** Locks and leases the oldest claimable aggregates' pending rows (at most `limit` rows). */
  claim(relayId: string, limit: number, leaseMs: number): Promise<ClaimedRow[]>;
  /** Marks rows published (only after a successful PublishResult); returns how many changed. */
  markPublished(ids: readonly string[]): Promise<number>;
  /** Clears this relay's lease on `ids`; `failure` also counts an attempt and schedules the retry. */
  release(relayId: string, ids: readonly string[], failure?: ReleaseFailure): Promise<number>;
  /** Extends the lease of `ids` still held by this relay; returns those ids. */
  renewLeases(relayId: string, ids: readonly string[], leaseMs: number): Promise<string[]>;
  stats(): Promise<OutboxStats>;
  /**
   * Calls `onNotify` whenever a transaction that added rows commits (LISTEN/NOTIFY).
   * Resolves with an unsubscribe function.
   */
  listen(onNotify: () => void, onError: (error: Error) => void): Promise<() => Promise<void>>;
}

export interface ProcessOnceOptions {
  /** The consumer (e.g. subscription group) the event counts as processed for. */
  readonly consumer: string;
}

export interface OutboxStore<Tx> extends RelayStore {
  /** Creates or upgrades the schema; safe to call on every start and concurrently. */
  migrate(): Promise<{ readonly applied: readonly string[] }>;
  /**
   * Inserts events inside the caller's transaction `tx`. Nothing becomes
   * visible (or published) unless that transaction commits; on commit the
   * listening relays are notified. Returns the complete envelopes.
   */
  add<P>(tx: Tx, messages: readonly OutboxMessage<P>[]): Promise<Envelope<P>[]>;
  /** Runs `fn` in a new transaction (convenience for apps and tests). */
  transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T>;
  /**
   * Idempotent consumer: records `eventId` for `consumer` and runs `fn(tx)` in
   * the same transaction (inside a savepoint, so the record and `fn`'s writes
   * stand or fall together). Returns false, without running `fn`, when the
   * event was already processed. `tx` must be inside a transaction.
   */
  processOnce(
    tx: Tx,
    eventId: string,
    fn: (tx: Tx) => Promise<void> | void,
    options: ProcessOnceOptions,
  ): Promise<boolean>;
  /** Deletes published rows older than `olderThanMs`; returns how many. */
  purgePublished(options: { readonly olderThanMs: number }): Promise<number>;
  /** Deletes inbox records older than `olderThanMs` (keep longer than any redelivery can take). */
  purgeInbox(options: { readonly olderThanMs: number }): Promise<number>;
}

export interface OutboxStoreOptions {
  /** Largest message `add` accepts: encoded envelope plus the headers the relay sends (NATS framing, Nats-Msg-Id, trace context allowance). Default 1 MiB (nats-server's default max payload). */
  readonly maxEnvelopeBytes?: number;
  /**
   * Take a transaction-scoped advisory lock per aggregate in `add`, so two
   * concurrent transactions adding events for one aggregate commit in `seq`
   * order. Default true; turn off only if the application already serialises
   * writes per aggregate.
   */
  readonly lockAggregates?: boolean;
}
