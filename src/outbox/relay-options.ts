/**
 * The relay's public types and its options, validated once with the shared
 * kit (src/core/option-checks.ts, option-keys.ts, backoff.ts): unknown keys,
 * bad numbers and a bad `backoff` are rejected when the relay is created.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { type ResolvedBackoff, resolveBackoff } from '../core/backoff.ts';
import { InvalidArgumentError } from '../core/errors.ts';
import { type Logger, silentLogger } from '../core/logger.ts';
import { fraction, positiveInteger } from '../core/option-checks.ts';
import { optionKeys, rejectUnknownKeys } from '../core/option-keys.ts';
import type { BackoffOptions, CloseOptions, EventBus } from '../core/types.ts';
import type { OutboxMetrics } from '../metrics/metrics.ts';
import { outboxBackoffDefaults } from './backoff.ts';
import { resolveRelayFeatures } from './relay-features.ts';
import type { RelayStore } from './types.ts';

export interface OutboxRelayOptions {
  readonly store: RelayStore;
  /**
   * Any bus: the relay uses `publishEnvelope` and `publishResults`, reads
   * `features` (broker de-duplication, persistence; see the outbox README),
   * and never closes it.
   */
  readonly bus: RelayBus;
  /** Identifies this relay's leases. Default `<hostname>-<pid>-<random>`. */
  readonly relayId?: string;
  /** Most rows claimed at once, and most rows held (in memory and leased). Default 1000. */
  readonly batchSize?: number;
  /** Poll for due rows this often (besides NOTIFY and `notify()`). Default 1000 ms. */
  readonly pollIntervalMs?: number;
  /** Lease on claimed rows; renewed every leaseMs/3 while held. Default 30 s. */
  readonly leaseMs?: number;
  /** Retry delay after a failed publish. Default 500 ms × 2^n up to 60 s, 20% jitter. */
  readonly backoff?: BackoffOptions;
  /**
   * The stream's duplicate window. Default: the transport's
   * (`bus.features.duplicateWindowMs`), else 120,000 ms (JetStream's default).
   * Ignored when the transport has no broker de-duplication.
   */
  readonly duplicateWindowMs?: number;
  /**
   * Refuse (InvalidArgumentError from createOutboxRelay) a bus whose transport
   * does not de-duplicate re-sent events (`bus.features.brokerDeduplication`,
   * false on Kafka). Default false: the relay runs and warns once at start
   * that consumers must absorb re-sends (`processOnce`).
   */
  readonly requireBrokerDeduplication?: boolean;
  /** Warn when lag exceeds this fraction of the duplicate window. Default 0.5. */
  readonly lagWarningRatio?: number;
  /** Measure pending count and lag this often. Default 5000 ms. */
  readonly statsIntervalMs?: number;
  /** LISTEN for commits of `outbox.add` (publish right after commit). Default true. */
  readonly listen?: boolean;
  /** Default deadline of `close()`. Default 30 s. */
  readonly closeTimeoutMs?: number;
  readonly logger?: Logger;
  /** `createOutboxMetrics({ transport, clientId, registry })` (`jxt-eventbus/outbox`). */
  readonly metrics?: OutboxMetrics;
}

export type OutboxRelayState = 'idle' | 'running' | 'closing' | 'closed' | 'aborted';

export interface OutboxRelayStats {
  readonly relayId: string;
  readonly state: OutboxRelayState;
  /** Rows claimed so far (a row claimed again after a failure counts again). */
  readonly claimed: number;
  /** Rows this relay marked published. */
  readonly published: number;
  /** Failed publish attempts. */
  readonly failed: number;
  /** Rows currently leased by this relay. */
  readonly held: number;
  readonly inFlight: number;
  readonly aggregates: number;
  /** Last measured outbox backlog (all relays), undefined before the first measurement. */
  readonly pending: number | undefined;
  readonly lagSeconds: number | undefined;
  /** Last measured rows that failed at least once (all relays), and the age of the oldest. */
  readonly failing: number | undefined;
  readonly oldestFailingSeconds: number | undefined;
  /**
   * Lag is above lagWarningRatio × duplicateWindowMs: de-duplication is at
   * risk. Always false on a transport without broker de-duplication.
   */
  readonly lagWarning: boolean;
}

export interface OutboxRelay extends AsyncDisposable {
  readonly relayId: string;
  /** Starts listening for results and commits, polling and renewing. Idempotent. */
  start(): Promise<void>;
  /** Look for new rows now (call it after committing a transaction that used `outbox.add`). */
  notify(): void;
  /**
   * Graceful: stops claiming and sending, waits for the results of in-flight
   * publishes until `timeoutMs` (default `closeTimeoutMs`) passes or `signal`
   * aborts, records them, releases every other lease. Idempotent; concurrent
   * calls share one promise (the first call's deadline counts).
   */
  close(options?: CloseOptions): Promise<void>;
  /**
   * Stops at once without touching the database again (as if the process
   * died): the rows it held stay leased until their lease expires.
   */
  abort(): void;
  stats(): OutboxRelayStats;
  readonly closed: Promise<void>;
}

/**
 * The bus methods the relay uses. `features` is optional so a wrapper that
 * passes only the two methods keeps working; without it the relay assumes
 * what the built-in brokers with de-duplication give (see the outbox README).
 */
export type RelayBus = Pick<EventBus, 'publishEnvelope' | 'publishResults'> &
  Partial<Pick<EventBus, 'features'>>;

export interface ResolvedRelayOptions {
  readonly relayId: string;
  readonly store: RelayStore;
  readonly bus: RelayBus;
  readonly batchSize: number;
  /** Below this free capacity a busy relay waits for a worthwhile batch (a quarter of batchSize). */
  readonly minClaim: number;
  readonly pollIntervalMs: number;
  readonly leaseMs: number;
  /** A lane stops sending this long before its lease would lapse (a fifth of leaseMs). */
  readonly leaseMarginMs: number;
  readonly backoff: ResolvedBackoff;
  readonly duplicateWindowMs: number;
  /** From the bus's features: a re-sent row is stored once (see relay-features.ts). */
  readonly brokerDeduplication: boolean;
  /** What the transport does not give, logged once at start. */
  readonly featureWarnings: readonly string[];
  readonly lagWarningRatio: number;
  readonly statsIntervalMs: number;
  readonly listen: boolean;
  readonly closeTimeoutMs: number;
  readonly logger: Logger;
  readonly metrics: OutboxMetrics | undefined;
}

const relayOptionKeys = optionKeys<OutboxRelayOptions>({
  store: true,
  bus: true,
  relayId: true,
  batchSize: true,
  pollIntervalMs: true,
  leaseMs: true,
  backoff: true,
  duplicateWindowMs: true,
  requireBrokerDeduplication: true,
  lagWarningRatio: true,
  statsIntervalMs: true,
  listen: true,
  closeTimeoutMs: true,
  logger: true,
  metrics: true,
});

export function resolveRelayOptions(options: OutboxRelayOptions): ResolvedRelayOptions {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError(`Expected relay options, got ${String(options)}`);
  }
  rejectUnknownKeys('', options, relayOptionKeys);
  if (typeof options.store?.claim !== 'function') {
    throw new InvalidArgumentError(
      'Expected `store` to be an outbox store (createPgOutboxStore / createPgliteOutboxStore)',
    );
  }
  if (
    typeof options.bus?.publishEnvelope !== 'function' ||
    typeof options.bus.publishResults !== 'function'
  ) {
    throw new InvalidArgumentError('Expected `bus` to be an EventBus (publishEnvelope, publishResults)');
  }
  const relayId = options.relayId ?? `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
  if (typeof relayId !== 'string' || relayId.length === 0 || relayId.length > 200) {
    throw new InvalidArgumentError(
      `Expected \`relayId\` to be 1-200 characters, got ${JSON.stringify(relayId)}`,
    );
  }
  const features = resolveRelayFeatures({
    features: options.bus.features,
    duplicateWindowMs: options.duplicateWindowMs,
    requireBrokerDeduplication: options.requireBrokerDeduplication,
  });
  const batchSize = positiveInteger('batchSize', options.batchSize, 1000);
  const leaseMs = positiveInteger('leaseMs', options.leaseMs, 30_000);
  return {
    relayId,
    store: options.store,
    bus: options.bus,
    batchSize,
    minClaim: Math.max(1, Math.floor(batchSize / 4)),
    pollIntervalMs: positiveInteger('pollIntervalMs', options.pollIntervalMs, 1000),
    leaseMs,
    leaseMarginMs: Math.floor(leaseMs / 5),
    backoff: resolveBackoff('backoff', options.backoff, outboxBackoffDefaults),
    duplicateWindowMs: features.duplicateWindowMs,
    brokerDeduplication: features.brokerDeduplication,
    featureWarnings: features.warnings,
    lagWarningRatio: fraction('lagWarningRatio', options.lagWarningRatio, 0.5),
    statsIntervalMs: positiveInteger('statsIntervalMs', options.statsIntervalMs, 5000),
    listen: options.listen ?? true,
    closeTimeoutMs: positiveInteger('closeTimeoutMs', options.closeTimeoutMs, 30_000),
    logger: options.logger ?? silentLogger,
    metrics: options.metrics,
  };
}
