/**
 * NATS transport options: the one place where defaults live, validated once
 * when the transport is created.
 */
import type { NodeConnectionOptions } from '@nats-io/transport-node';
import { InvalidArgumentError } from '../../core/errors.ts';
import { optionKeys, rejectUnknownKeys } from '../../core/option-keys.ts';

export interface NatsStreamOptions {
  /** Stream MaxBytes. Default 1 GiB. */
  readonly maxBytes?: number;
  /** Stream MaxMsgs. Default 1,000,000. */
  readonly maxMsgs?: number;
  /** Stream replicas (1 or a JetStream cluster's 3/5). Default 1. */
  readonly replicas?: number;
}

export interface NatsConsumerOptions {
  /** Largest pull request (messages). Default 500. */
  readonly fetchBatch?: number;
  /** How long one pull waits on the broker for messages. Default 100 ms. */
  readonly fetchMaxWaitMs?: number;
  /** Consumer MaxAckPending. Default 10,000. */
  readonly maxAckPending?: number;
  /** Consumer MaxWaiting (outstanding pull requests). Default 1,000. */
  readonly maxWaiting?: number;
  /** Consumer AckWait; raised to handlerTimeoutMs + margin when lower. Default 30 s. */
  readonly ackWaitMs?: number;
  /**
   * 'explicit' (default): one ack per message; safe with several members per group.
   * 'all': acks are coalesced into one AckAll ack for the contiguous finished
   * prefix (per-message acks are the main server-side cost). Only with ONE
   * member per (topic, group): an AckAll ack also covers messages the broker
   * handed to other members. An existing durable keeps its own policy.
   */
  readonly ackPolicy?: 'all' | 'explicit';
}

export interface NatsGroupOptions {
  /**
   * Partition lease time. A member that stops renewing (crash, pause, lost
   * network) loses its partitions to others after about this long; it stops
   * itself earlier. Default 5,000 ms.
   */
  readonly leaseMs?: number;
}

export interface NatsTransportOptions {
  /** Server URL(s). Default `nats://127.0.0.1:4222`. */
  readonly servers?: string | readonly string[];
  /** Streams are named `<streamPrefix>_<topic sanitized>`. Default `EVENTBUS`. */
  readonly streamPrefix?: string;
  /** Nats-Msg-Id de-duplication window of streams we create. Default 120,000 ms. */
  readonly duplicateWindowMs?: number;
  readonly stream?: NatsStreamOptions;
  readonly consumer?: NatsConsumerOptions;
  /**
   * Partitions of an envelope topic's stream, fixed when this bus creates the
   * stream (an existing stream keeps its recorded count). Members of a group
   * split the partitions; an aggregate stays in one. Default 16.
   */
  readonly partitions?: number;
  readonly group?: NatsGroupOptions;
  /** Defensive cap on unacknowledged sends (the bus owns the real window). Default 10,000. */
  readonly maxPendingPublishes?: number;
  /** Time to wait for a PubAck before resending (same Nats-Msg-Id). Default 5,000 ms. */
  readonly publishTimeoutMs?: number;
  /** Same-id resends after a PubAck timeout before reporting TimeoutError. Default 3. */
  readonly publishRetries?: number;
  /** Upper bound for close() waiting on pending PubAcks. Default 30,000 ms. */
  readonly closeTimeoutMs?: number;
  /** Client PING interval (stale connection detection). Default 2,000 ms. */
  readonly pingIntervalMs?: number;
  /** Unanswered PINGs before the connection counts as stale. Default 2. */
  readonly maxPingOut?: number;
  /** Pause between reconnect attempts (reconnects never stop). Default 250 ms. */
  readonly reconnectTimeWaitMs?: number;
  /** Timeout of JetStream API calls (stream/consumer management). Default 5,000 ms. */
  readonly apiTimeoutMs?: number;
  /**
   * How long the first connection may take: each server must answer (send
   * INFO) within it, else createEventBus fails with a TransportError naming
   * the server, and no socket stays open. Default 5,000 ms.
   */
  readonly connectTimeoutMs?: number;
  /**
   * Extra nats.js connection options (authentication, TLS, ...). Applied first:
   * servers, name, reconnect and ping settings above always win.
   */
  readonly connectOptions?: Omit<NodeConnectionOptions, 'servers'>;
}

export interface ResolvedNatsOptions {
  readonly servers: readonly string[];
  readonly streamPrefix: string;
  readonly duplicateWindowMs: number;
  readonly stream: Required<NatsStreamOptions>;
  readonly consumer: Required<NatsConsumerOptions>;
  readonly partitions: number;
  readonly group: Required<NatsGroupOptions>;
  readonly maxPendingPublishes: number;
  readonly publishTimeoutMs: number;
  readonly publishRetries: number;
  readonly closeTimeoutMs: number;
  readonly pingIntervalMs: number;
  readonly maxPingOut: number;
  readonly reconnectTimeWaitMs: number;
  readonly apiTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly connectOptions: Omit<NodeConnectionOptions, 'servers'>;
}

export const NATS_DEFAULTS = {
  servers: ['nats://127.0.0.1:4222'],
  streamPrefix: 'EVENTBUS',
  duplicateWindowMs: 120_000,
  stream: { maxBytes: 1024 ** 3, maxMsgs: 1_000_000, replicas: 1 },
  consumer: {
    fetchBatch: 500,
    fetchMaxWaitMs: 100,
    maxAckPending: 10_000,
    maxWaiting: 1_000,
    ackWaitMs: 30_000,
    ackPolicy: 'explicit',
  },
  partitions: 16,
  group: { leaseMs: 5_000 },
  maxPendingPublishes: 10_000,
  publishTimeoutMs: 5_000,
  publishRetries: 3,
  closeTimeoutMs: 30_000,
  pingIntervalMs: 2_000,
  maxPingOut: 2,
  reconnectTimeWaitMs: 250,
  apiTimeoutMs: 5_000,
  connectTimeoutMs: 5_000,
} as const satisfies Omit<ResolvedNatsOptions, 'connectOptions'>;

const natsKeys = {
  top: optionKeys<NatsTransportOptions>({
    servers: true,
    streamPrefix: true,
    duplicateWindowMs: true,
    stream: true,
    consumer: true,
    partitions: true,
    group: true,
    maxPendingPublishes: true,
    publishTimeoutMs: true,
    publishRetries: true,
    closeTimeoutMs: true,
    pingIntervalMs: true,
    maxPingOut: true,
    reconnectTimeWaitMs: true,
    apiTimeoutMs: true,
    connectTimeoutMs: true,
    connectOptions: true,
  }),
  stream: optionKeys<NatsStreamOptions>({ maxBytes: true, maxMsgs: true, replicas: true }),
  consumer: optionKeys<NatsConsumerOptions>({
    fetchBatch: true,
    fetchMaxWaitMs: true,
    maxAckPending: true,
    maxWaiting: true,
    ackWaitMs: true,
    ackPolicy: true,
  }),
  group: optionKeys<NatsGroupOptions>({ leaseMs: true }),
};

function describe(value: unknown): string {
  if (typeof value === 'string') return `"${value.slice(0, 60)}" (string)`;
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (value === null) return 'null';
  return `${String(value)} (${typeof value})`;
}

function integer(value: unknown, name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER) {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
    throw new InvalidArgumentError(
      `Expected \`nats.${name}\` to be an integer ${range}, got ${describe(value)}`,
    );
  }
  return value;
}

function object(value: unknown, name: string): Record<string, unknown> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidArgumentError(`Expected \`nats.${name}\` to be an object, got ${describe(value)}`);
  }
  return value as Record<string, unknown>;
}

function servers(value: unknown): readonly string[] {
  if (value === undefined) return NATS_DEFAULTS.servers;
  const list = typeof value === 'string' ? [value] : value;
  if (
    !Array.isArray(list) ||
    list.length === 0 ||
    !list.every((s): s is string => typeof s === 'string' && s.length > 0)
  ) {
    throw new InvalidArgumentError(
      `Expected \`nats.servers\` to be a server URL or a non-empty array of them, got ${describe(value)}`,
    );
  }
  return [...list];
}

const STREAM_PREFIX = /^[A-Za-z0-9_-]{1,64}$/;

/** Applies defaults and validates; throws InvalidArgumentError naming the option. */
export function resolveNatsOptions(options: NatsTransportOptions | undefined): ResolvedNatsOptions {
  const o = object(options, '(options)') as NatsTransportOptions & Record<string, unknown>;
  const stream = object(o.stream, 'stream');
  const consumer = object(o.consumer, 'consumer');
  const group = object(o.group, 'group');
  // connectOptions are nats.js's own (authentication, TLS, ...): passed through as they are.
  rejectUnknownKeys('nats', o, natsKeys.top);
  rejectUnknownKeys('nats.stream', stream, natsKeys.stream);
  rejectUnknownKeys('nats.consumer', consumer, natsKeys.consumer);
  rejectUnknownKeys('nats.group', group, natsKeys.group);
  const streamPrefix = o.streamPrefix ?? NATS_DEFAULTS.streamPrefix;
  if (typeof streamPrefix !== 'string' || !STREAM_PREFIX.test(streamPrefix)) {
    throw new InvalidArgumentError(
      `Expected \`nats.streamPrefix\` to be 1-64 characters of A-Z a-z 0-9 _ -, got ${describe(streamPrefix)}`,
    );
  }
  const d = NATS_DEFAULTS;
  return {
    servers: servers(o.servers),
    streamPrefix,
    duplicateWindowMs: integer(o.duplicateWindowMs, 'duplicateWindowMs', d.duplicateWindowMs, 1),
    stream: {
      maxBytes: integer(stream.maxBytes, 'stream.maxBytes', d.stream.maxBytes, -1),
      maxMsgs: integer(stream.maxMsgs, 'stream.maxMsgs', d.stream.maxMsgs, -1),
      replicas: integer(stream.replicas, 'stream.replicas', d.stream.replicas, 1, 5),
    },
    consumer: {
      fetchBatch: integer(consumer.fetchBatch, 'consumer.fetchBatch', d.consumer.fetchBatch, 1, 100_000),
      fetchMaxWaitMs: integer(
        consumer.fetchMaxWaitMs,
        'consumer.fetchMaxWaitMs',
        d.consumer.fetchMaxWaitMs,
        10,
      ),
      maxAckPending: integer(consumer.maxAckPending, 'consumer.maxAckPending', d.consumer.maxAckPending, 1),
      maxWaiting: integer(consumer.maxWaiting, 'consumer.maxWaiting', d.consumer.maxWaiting, 1),
      ackWaitMs: integer(consumer.ackWaitMs, 'consumer.ackWaitMs', d.consumer.ackWaitMs, 100),
      ackPolicy: ackPolicy(consumer.ackPolicy, d.consumer.ackPolicy),
    },
    partitions: integer(o.partitions, 'partitions', d.partitions, 1, 1024),
    group: { leaseMs: integer(group.leaseMs, 'group.leaseMs', d.group.leaseMs, 200, 600_000) },
    maxPendingPublishes: integer(o.maxPendingPublishes, 'maxPendingPublishes', d.maxPendingPublishes, 1),
    publishTimeoutMs: integer(o.publishTimeoutMs, 'publishTimeoutMs', d.publishTimeoutMs, 10),
    publishRetries: integer(o.publishRetries, 'publishRetries', d.publishRetries, 0, 100),
    closeTimeoutMs: integer(o.closeTimeoutMs, 'closeTimeoutMs', d.closeTimeoutMs, 0),
    pingIntervalMs: integer(o.pingIntervalMs, 'pingIntervalMs', d.pingIntervalMs, 100),
    maxPingOut: integer(o.maxPingOut, 'maxPingOut', d.maxPingOut, 1),
    reconnectTimeWaitMs: integer(o.reconnectTimeWaitMs, 'reconnectTimeWaitMs', d.reconnectTimeWaitMs, 0),
    apiTimeoutMs: integer(o.apiTimeoutMs, 'apiTimeoutMs', d.apiTimeoutMs, 100),
    connectTimeoutMs: integer(o.connectTimeoutMs, 'connectTimeoutMs', d.connectTimeoutMs, 10, 600_000),
    connectOptions: object(o.connectOptions, 'connectOptions') as Omit<NodeConnectionOptions, 'servers'>,
  };
}

function ackPolicy(value: unknown, fallback: 'all' | 'explicit'): 'all' | 'explicit' {
  if (value === undefined) return fallback;
  if (value !== 'all' && value !== 'explicit') {
    throw new InvalidArgumentError(
      `Expected \`nats.consumer.ackPolicy\` to be 'all' or 'explicit', got ${String(value)}`,
    );
  }
  return value;
}
