/**
 * Options of the Kafka transport: one type, validated once, defaults in one
 * place ({@link kafkaDefaults}). Every message reads "Expected `kafka.x` …, got …".
 */
import type { ConnectionOptions as TlsOptions } from 'node:tls';
import { InvalidArgumentError } from '../../core/errors.ts';
import { optionKeys, rejectUnknownKeys } from '../../core/option-keys.ts';

export type KafkaCompression = 'lz4' | 'none' | 'gzip' | 'snappy' | 'zstd';
export type KafkaOffsetReset = 'earliest' | 'latest';

/** A credential, or a function that supplies it (e.g. a rotating token). */
export type KafkaCredential<T = string> = T | (() => T | Promise<T>);

/**
 * SASL settings, passed to @platformatic/kafka as they are. Declared here,
 * not imported from the client, so the published types do not need the
 * client (an optional peer dependency) installed.
 */
export interface KafkaSaslOptions {
  readonly mechanism: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512' | 'OAUTHBEARER' | 'GSSAPI';
  readonly username?: KafkaCredential;
  readonly password?: KafkaCredential;
  readonly token?: KafkaCredential;
  readonly oauthBearerExtensions?: KafkaCredential<Record<string, string>>;
}

export interface KafkaTransportOptions {
  /** Bootstrap brokers, `host:port`: a list or one comma-separated string. Required. */
  readonly brokers: readonly string[] | string;
  /** Client id sent to the brokers. Default: the bus clientId. */
  readonly clientId?: string;
  /** Partitions of topics the transport creates. Default 6. */
  readonly partitions?: number;
  /** Replication factor of topics the transport creates. Default 1 (use 3 in production). */
  readonly replicationFactor?: number;
  /** Record batch compression. Default 'lz4' (falls back to 'none', logged, if the codec is unavailable). */
  readonly compression?: KafkaCompression;
  /**
   * Produce requests in flight at once. Default 1: batches go out one after
   * another, which keeps per-partition order even when a batch is retried.
   * At most 5 (the idempotent producer's limit).
   */
  readonly maxInFlight?: number;
  /** How long a batch waits for more messages before it is sent. Default 0 (same event-loop turn). */
  readonly lingerMs?: number;
  /** Most messages in one produce request. Default 10,000. */
  readonly maxBatchMessages?: number;
  /**
   * Most bytes in one produce request, counting bodies, keys, headers and
   * ~32 bytes of record framing each. Default 512 KiB: even a batch that all
   * goes to one partition, uncompressed, stays below the broker's default
   * `message.max.bytes` (1 MiB), so a batch is never refused for its size.
   */
  readonly maxBatchBytes?: number;
  /** A publish without a broker answer after this long is reported as TimeoutError (unknown outcome). Default 30 s. */
  readonly publishTimeoutMs?: number;
  /** Per-request timeout of the client. Default 30 s. */
  readonly requestTimeoutMs?: number;
  /** Connection timeout. Default 5 s. */
  readonly connectTimeoutMs?: number;
  /** Client-level retries of a failed request (same producer id and sequence). Default 5. */
  readonly retries?: number;
  /** Delay between those retries. Default 250 ms. */
  readonly retryDelayMs?: number;
  /** Consumer group session timeout. Default 45 s. */
  readonly sessionTimeoutMs?: number;
  /** Consumer group heartbeat interval. Default 3 s. */
  readonly heartbeatIntervalMs?: number;
  /** How long the coordinator waits for members to rejoin a rebalance. Default 60 s. */
  readonly rebalanceTimeoutMs?: number;
  /**
   * On a rebalance, how long the consumer waits for its in-flight messages
   * before it commits and rejoins. Default: half of sessionTimeoutMs (22.5 s
   * with the default session). Must stay below sessionTimeoutMs (the client
   * sends no heartbeats while it prepares to rejoin), rebalanceTimeoutMs and
   * requestTimeoutMs (the other members' JoinGroup requests wait meanwhile).
   */
  readonly revokeTimeoutMs?: number;
  /** Offset commits are coalesced: at most one per this interval (and on revocation/close). Default 1 s. */
  readonly commitIntervalMs?: number;
  /** Long-poll time of a fetch. Default 500 ms. */
  readonly fetchMaxWaitMs?: number;
  /** Most bytes of one fetch response. Default 8 MiB. */
  readonly fetchMaxBytes?: number;
  /** Most bytes per partition in one fetch response. Default 1 MiB. */
  readonly fetchMaxBytesPerPartition?: number;
  /** Where a group without a committed offset starts. Default 'earliest' (nothing published before is missed). */
  readonly autoOffsetReset?: KafkaOffsetReset;
  /** Upper bound of a subscription's close (final commit, leaving the group). Default 30 s. */
  readonly closeTimeoutMs?: number;
  /** Largest message (body + headers + key). Default 1 MiB, the broker's default `message.max.bytes`. */
  readonly maxPayloadBytes?: number;
  /** TLS options (node:tls), passed to the client. */
  readonly tls?: TlsOptions;
  /** SASL options, passed to the client. */
  readonly sasl?: KafkaSaslOptions;
}

export interface ResolvedKafkaOptions {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly partitions: number;
  readonly replicationFactor: number;
  readonly compression: KafkaCompression;
  readonly maxInFlight: number;
  readonly lingerMs: number;
  readonly maxBatchMessages: number;
  readonly maxBatchBytes: number;
  readonly publishTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly retries: number;
  readonly retryDelayMs: number;
  readonly sessionTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  readonly rebalanceTimeoutMs: number;
  readonly revokeTimeoutMs: number;
  readonly commitIntervalMs: number;
  readonly fetchMaxWaitMs: number;
  readonly fetchMaxBytes: number;
  readonly fetchMaxBytesPerPartition: number;
  readonly autoOffsetReset: KafkaOffsetReset;
  readonly closeTimeoutMs: number;
  readonly maxPayloadBytes: number;
  readonly tls: TlsOptions | undefined;
  readonly sasl: KafkaSaslOptions | undefined;
}

const MiB = 1024 * 1024;

/** Every default of the Kafka transport. */
export const kafkaDefaults = {
  partitions: 6,
  replicationFactor: 1,
  compression: 'lz4',
  maxInFlight: 1,
  lingerMs: 0,
  maxBatchMessages: 10_000,
  maxBatchBytes: 512 * 1024,
  publishTimeoutMs: 30_000,
  requestTimeoutMs: 30_000,
  connectTimeoutMs: 5_000,
  retries: 5,
  retryDelayMs: 250,
  sessionTimeoutMs: 45_000,
  heartbeatIntervalMs: 3_000,
  rebalanceTimeoutMs: 60_000,
  /** Half the default session timeout; follows sessionTimeoutMs when only that is set. */
  revokeTimeoutMs: 22_500,
  commitIntervalMs: 1_000,
  fetchMaxWaitMs: 500,
  fetchMaxBytes: 8 * MiB,
  fetchMaxBytesPerPartition: MiB,
  autoOffsetReset: 'earliest',
  closeTimeoutMs: 30_000,
  maxPayloadBytes: MiB,
} as const satisfies Omit<ResolvedKafkaOptions, 'brokers' | 'clientId' | 'tls' | 'sasl'>;

const compressions: readonly KafkaCompression[] = ['lz4', 'none', 'gzip', 'snappy', 'zstd'];
const offsetResets: readonly KafkaOffsetReset[] = ['earliest', 'latest'];
/** The idempotent producer keeps order for at most 5 requests in flight per connection. */
const MAX_IN_FLIGHT = 5;

const kafkaOptionKeys = optionKeys<KafkaTransportOptions>({
  brokers: true,
  clientId: true,
  partitions: true,
  replicationFactor: true,
  compression: true,
  maxInFlight: true,
  lingerMs: true,
  maxBatchMessages: true,
  maxBatchBytes: true,
  publishTimeoutMs: true,
  requestTimeoutMs: true,
  connectTimeoutMs: true,
  retries: true,
  retryDelayMs: true,
  sessionTimeoutMs: true,
  heartbeatIntervalMs: true,
  rebalanceTimeoutMs: true,
  revokeTimeoutMs: true,
  commitIntervalMs: true,
  fetchMaxWaitMs: true,
  fetchMaxBytes: true,
  fetchMaxBytesPerPartition: true,
  autoOffsetReset: true,
  closeTimeoutMs: true,
  maxPayloadBytes: true,
  tls: true,
  sasl: true,
});

function describe(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  if (typeof value === 'string') return value.length === 0 ? 'an empty string' : JSON.stringify(value);
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

function fail(name: string, expected: string, value: unknown): never {
  throw new InvalidArgumentError(`Expected \`kafka.${name}\` to be ${expected}, got ${describe(value)}`);
}

function int(
  name: string,
  value: unknown,
  fallback: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    const range =
      max === Number.MAX_SAFE_INTEGER
        ? min === 0
          ? 'an integer >= 0'
          : min === 1
            ? 'a positive integer'
            : `an integer >= ${min}`
        : `an integer in [${min}, ${max}]`;
    fail(name, range, value);
  }
  return value;
}

function oneOf<T extends string>(name: string, value: unknown, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    fail(name, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`, value);
  }
  return value as T;
}

const BROKER = /^[^\s:]+:\d{1,5}$/;

function brokers(value: unknown): string[] {
  const list =
    typeof value === 'string'
      ? value
          .split(',')
          .map((b) => b.trim())
          .filter((b) => b.length > 0)
      : value;
  if (!Array.isArray(list) || list.length === 0) {
    fail('brokers', 'a non-empty list of host:port strings (or one comma-separated string)', value);
  }
  for (const broker of list) {
    if (typeof broker !== 'string' || !BROKER.test(broker)) {
      fail('brokers', 'host:port strings such as "localhost:9092"', broker);
    }
    const port = Number(broker.slice(broker.lastIndexOf(':') + 1));
    if (port < 1 || port > 65535) fail('brokers', 'host:port strings with a port in [1, 65535]', broker);
  }
  return [...(list as string[])];
}

/**
 * Validates the user's options once and fills in every default.
 * Throws InvalidArgumentError naming the first bad option.
 */
export function resolveKafkaOptions(
  options: KafkaTransportOptions | undefined,
  busClientId: string,
): ResolvedKafkaOptions {
  if (options === undefined || options === null || typeof options !== 'object') {
    throw new InvalidArgumentError(
      `Expected \`kafka\` to be an options object with \`brokers\` (host:port strings), got ${describe(options)}`,
    );
  }
  const o = options as KafkaTransportOptions;
  const d = kafkaDefaults;
  // tls and sasl are the client's own settings: passed through as they are.
  rejectUnknownKeys('kafka', o, kafkaOptionKeys);

  const clientId = o.clientId ?? busClientId;
  if (typeof clientId !== 'string' || !/^\S+$/.test(clientId)) {
    fail('clientId', 'a non-empty string without whitespace', clientId);
  }

  const sessionTimeoutMs = int('sessionTimeoutMs', o.sessionTimeoutMs, d.sessionTimeoutMs, 1_000);
  const heartbeatIntervalMs = int('heartbeatIntervalMs', o.heartbeatIntervalMs, d.heartbeatIntervalMs, 100);
  if (heartbeatIntervalMs >= sessionTimeoutMs) {
    fail('heartbeatIntervalMs', `below sessionTimeoutMs (${sessionTimeoutMs})`, heartbeatIntervalMs);
  }
  const rebalanceTimeoutMs = int('rebalanceTimeoutMs', o.rebalanceTimeoutMs, d.rebalanceTimeoutMs, 1_000);
  const revokeTimeoutMs = int('revokeTimeoutMs', o.revokeTimeoutMs, Math.floor(sessionTimeoutMs / 2), 0);
  if (revokeTimeoutMs >= sessionTimeoutMs) {
    fail('revokeTimeoutMs', `below sessionTimeoutMs (${sessionTimeoutMs})`, revokeTimeoutMs);
  }
  if (revokeTimeoutMs >= rebalanceTimeoutMs) {
    fail('revokeTimeoutMs', `below rebalanceTimeoutMs (${rebalanceTimeoutMs})`, revokeTimeoutMs);
  }
  // While one member drains, the others' JoinGroup requests wait for it at the coordinator.
  const requestTimeoutMs = int('requestTimeoutMs', o.requestTimeoutMs, d.requestTimeoutMs, 1);
  if (revokeTimeoutMs >= requestTimeoutMs) {
    fail('revokeTimeoutMs', `below requestTimeoutMs (${requestTimeoutMs})`, revokeTimeoutMs);
  }

  if (o.tls !== undefined && (typeof o.tls !== 'object' || o.tls === null)) fail('tls', 'an object', o.tls);
  if (o.sasl !== undefined && (typeof o.sasl !== 'object' || o.sasl === null))
    fail('sasl', 'an object', o.sasl);

  return {
    brokers: brokers(o.brokers),
    clientId,
    partitions: int('partitions', o.partitions, d.partitions, 1),
    replicationFactor: int('replicationFactor', o.replicationFactor, d.replicationFactor, 1, 32_767),
    compression: oneOf('compression', o.compression, compressions, d.compression),
    maxInFlight: int('maxInFlight', o.maxInFlight, d.maxInFlight, 1, MAX_IN_FLIGHT),
    lingerMs: int('lingerMs', o.lingerMs, d.lingerMs, 0, 60_000),
    maxBatchMessages: int('maxBatchMessages', o.maxBatchMessages, d.maxBatchMessages, 1),
    maxBatchBytes: int('maxBatchBytes', o.maxBatchBytes, d.maxBatchBytes, 1),
    publishTimeoutMs: int('publishTimeoutMs', o.publishTimeoutMs, d.publishTimeoutMs, 1),
    requestTimeoutMs,
    connectTimeoutMs: int('connectTimeoutMs', o.connectTimeoutMs, d.connectTimeoutMs, 1),
    retries: int('retries', o.retries, d.retries, 0),
    retryDelayMs: int('retryDelayMs', o.retryDelayMs, d.retryDelayMs, 0),
    sessionTimeoutMs,
    heartbeatIntervalMs,
    rebalanceTimeoutMs,
    revokeTimeoutMs,
    commitIntervalMs: int('commitIntervalMs', o.commitIntervalMs, d.commitIntervalMs, 1),
    fetchMaxWaitMs: int('fetchMaxWaitMs', o.fetchMaxWaitMs, d.fetchMaxWaitMs, 0),
    fetchMaxBytes: int('fetchMaxBytes', o.fetchMaxBytes, d.fetchMaxBytes, 1),
    fetchMaxBytesPerPartition: int(
      'fetchMaxBytesPerPartition',
      o.fetchMaxBytesPerPartition,
      d.fetchMaxBytesPerPartition,
      1,
    ),
    autoOffsetReset: oneOf('autoOffsetReset', o.autoOffsetReset, offsetResets, d.autoOffsetReset),
    closeTimeoutMs: int('closeTimeoutMs', o.closeTimeoutMs, d.closeTimeoutMs, 0),
    maxPayloadBytes: int('maxPayloadBytes', o.maxPayloadBytes, d.maxPayloadBytes, 1),
    tls: o.tls,
    sasl: o.sasl,
  };
}
