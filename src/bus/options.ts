/** Bus options: validated once, defaults in one place. */
import type { ResolvedBackoff } from '../core/backoff.ts';
import { InvalidArgumentError } from '../core/errors.ts';
import { type Logger, silentLogger } from '../core/logger.ts';
import { optionKeys, rejectUnknownKeys } from '../core/option-keys.ts';
import { assertSupportedRuntime } from '../core/runtime.ts';
import type { TransportFactory, TransportKind } from '../core/transport.ts';
import type { EventBusOptionsBase, MetricsOptions, Middleware, PublishResult } from '../core/types.ts';
import type { KafkaTransportOptions } from '../transports/kafka/options.ts';
import type { MemoryTransportOptions } from '../transports/memory/options.ts';
import type { NatsTransportOptions } from '../transports/nats/options.ts';
import { resolveMiddleware } from './middleware.ts';
import { SchemaRegistry, type TopicSchemas } from './schema.ts';
import { builtinTransportKinds, isBuiltinKind } from './transport-registry.ts';

export interface EventBusOptions extends EventBusOptionsBase {
  /**
   * `nats({...})`, `kafka({...})`, `memory({...})` (from `jxt-eventbus/nats`,
   * `jxt-eventbus/kafka` and `jxt-eventbus`) or a transport of your own; or a
   * built-in's name, with its options under the key of that name.
   */
  readonly transport: TransportKind | TransportFactory;
  readonly memory?: MemoryTransportOptions;
  /** NATS settings (see `jxt-eventbus/nats`): servers, streamPrefix, stream, consumer and publish limits. */
  readonly nats?: NatsTransportOptions;
  /** Kafka settings (see `jxt-eventbus/kafka`): brokers (required with transport 'kafka'), partitions, compression. */
  readonly kafka?: KafkaTransportOptions;
  /**
   * 'aggregate' (default): at most one publish per aggregate (envelope
   * aggregateId, raw `key`) is unacknowledged at a time, so a broker
   * connection failure can never store an aggregate's events out of order.
   * 'none': everything pipelined; faster for single hot aggregates, but a
   * reconnect may reorder an aggregate's in-flight events.
   */
  readonly publishOrdering?: 'aggregate' | 'none';
  /**
   * 'jxt-go': topics are shared with services on the Go SDK (jxt-core). Every
   * publishEnvelope is also checked against the Go SDK's `Envelope.Validate()`
   * (eventId/eventType not blank, eventVersion >= 1, aggregateId 1-256 chars of
   * [A-Za-z0-9:_\-./]), so a Go consumer never rejects, and endlessly naks,
   * what we publish. Default 'none': those checks stay off (versions from 0,
   * any aggregate id characters), as before. The wire format is the Go SDK's
   * in both modes.
   */
  readonly interop?: 'none' | 'jxt-go';
  /**
   * Standard Schemas (zod, valibot, arktype, …) per topic and event type:
   * payloads are validated at publish and before the handler, and the bus's
   * envelope calls are typed from them. Topics not listed are not checked.
   */
  readonly topics?: TopicSchemas;
  /** Envelope middleware of every subscription, around the subscription's own (first = outermost). */
  readonly middleware?: readonly Middleware[];
}

export interface ResolvedBusOptions {
  readonly clientId: string;
  readonly logger: Logger;
  readonly metrics: MetricsOptions;
  readonly onPublishResult: ((r: PublishResult) => void) | undefined;
  readonly maxPendingPublishes: number;
  readonly closeTimeoutMs: number;
  readonly publishDeadlineMs: number;
  readonly publishFailureScope: 'aggregate' | 'event';
  /** Backoff between the bus's publish retries (the shared kit's shape, src/core/backoff.ts). */
  readonly publishRetryBackoff: ResolvedBackoff;
  readonly publishOrdering: 'aggregate' | 'none';
  readonly interop: 'none' | 'jxt-go';
  readonly schemas: SchemaRegistry | undefined;
  readonly middleware: readonly Middleware[];
}

export const busDefaults = {
  maxPendingPublishes: 10_000,
  closeTimeoutMs: 30_000,
  publishDeadlineMs: 300_000,
  publishFailureScope: 'aggregate',
  publishOrdering: 'aggregate',
  interop: 'none',
} as const;

const busOptionKeys = optionKeys<EventBusOptions>({
  transport: true,
  clientId: true,
  onPublishResult: true,
  logger: true,
  metrics: true,
  maxPendingPublishes: true,
  closeTimeoutMs: true,
  memory: true,
  nats: true,
  kafka: true,
  publishOrdering: true,
  interop: true,
  publishDeadlineMs: true,
  publishFailureScope: true,
  topics: true,
  middleware: true,
});

export function positiveInt(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new InvalidArgumentError(`Expected \`${name}\` to be a positive integer, got ${String(value)}`);
  }
  return value;
}

export function resolveBusOptions(options: EventBusOptions): ResolvedBusOptions {
  assertSupportedRuntime();
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError(`Expected an options object, got ${String(options)}`);
  }
  rejectUnknownKeys('', options, busOptionKeys);
  checkTransport(options);
  if (typeof options.clientId !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(options.clientId)) {
    throw new InvalidArgumentError(
      `Expected \`clientId\` to be 1-64 characters of [A-Za-z0-9_-], got ${JSON.stringify(options.clientId)}`,
    );
  }
  if (options.onPublishResult !== undefined && typeof options.onPublishResult !== 'function') {
    throw new InvalidArgumentError(
      `Expected \`onPublishResult\` to be a function, got ${typeof options.onPublishResult}`,
    );
  }
  const logger = options.logger ?? silentLogger;
  warnIfPerInstance(options.clientId, logger);
  return {
    clientId: options.clientId,
    logger,
    metrics: options.metrics ?? {},
    onPublishResult: options.onPublishResult,
    maxPendingPublishes: positiveInt(
      'maxPendingPublishes',
      options.maxPendingPublishes,
      busDefaults.maxPendingPublishes,
    ),
    closeTimeoutMs: positiveInt('closeTimeoutMs', options.closeTimeoutMs, busDefaults.closeTimeoutMs),
    publishDeadlineMs: positiveInt(
      'publishDeadlineMs',
      options.publishDeadlineMs,
      busDefaults.publishDeadlineMs,
    ),
    publishFailureScope: resolveScope(options.publishFailureScope),
    publishRetryBackoff: { initialMs: 100, maxMs: 5_000, multiplier: 2, jitter: 0.2 },
    publishOrdering: resolveOrdering(options.publishOrdering),
    interop: resolveInterop(options.interop),
    schemas: SchemaRegistry.from(options.topics),
    middleware: resolveMiddleware('middleware', options.middleware),
  };
}

function resolveOrdering(value: unknown): 'aggregate' | 'none' {
  if (value === undefined) return busDefaults.publishOrdering;
  if (value !== 'aggregate' && value !== 'none') {
    throw new InvalidArgumentError(
      `Expected \`publishOrdering\` to be 'aggregate' or 'none', got ${String(value)}`,
    );
  }
  return value;
}

function resolveInterop(value: unknown): 'none' | 'jxt-go' {
  if (value === undefined) return busDefaults.interop;
  if (value !== 'none' && value !== 'jxt-go') {
    throw new InvalidArgumentError(`Expected \`interop\` to be 'none' or 'jxt-go', got ${String(value)}`);
  }
  return value;
}

/**
 * A clientId that differs per process (a UUID, a container id, a pod name, a
 * pid) is a common habit from other clients, but here it is also the default
 * consumer group: every instance becomes its own group and receives every
 * event instead of sharing the work. Generated-looking ids are logged once
 * at creation so the cause of "every instance processes everything" is visible.
 */
const perInstancePatterns: readonly RegExp[] = [
  /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i, // UUID
  /[0-9a-f]{12,}/i, // container id, hash
  /-[a-z0-9]{8,10}-[a-z0-9]{5}$/, // Kubernetes Deployment pod name
  /\d{4,}$/, // pid, timestamp, counter
];

export function looksPerInstance(clientId: string): boolean {
  return perInstancePatterns.some((pattern) => pattern.test(clientId));
}

function warnIfPerInstance(clientId: string, logger: Logger): void {
  if (!looksPerInstance(clientId)) return;
  logger.warn(
    { clientId },
    'clientId looks unique per instance; it is also the default consumer group, so every instance subscribing without `group` gets every event. Pass subscribe option `group` (shared by the instances) to split the work',
  );
}

function resolveScope(value: unknown): 'aggregate' | 'event' {
  if (value === undefined) return busDefaults.publishFailureScope;
  if (value !== 'aggregate' && value !== 'event') {
    throw new InvalidArgumentError(
      `Expected \`publishFailureScope\` to be 'aggregate' or 'event', got ${String(value)}`,
    );
  }
  return value;
}

/** A built-in's name (its options, if any, under that key) or a factory (its options inside it). */
function checkTransport(options: EventBusOptions): void {
  const { transport } = options;
  if (isBuiltinKind(transport)) return;
  const factory = transport as Partial<TransportFactory> | null;
  if (
    typeof factory !== 'object' ||
    factory === null ||
    typeof factory.kind !== 'string' ||
    factory.kind === '' ||
    typeof factory.create !== 'function'
  ) {
    throw new InvalidArgumentError(
      `Expected \`transport\` to be one of ${builtinTransportKinds.join(', ')} or a transport factory ({ kind, create }) such as nats({...}), got ${describe(transport)}`,
    );
  }
  for (const key of builtinTransportKinds) {
    if (options[key] !== undefined) {
      throw new InvalidArgumentError(
        `Expected no \`${key}\` options with a transport factory: pass them to the factory, e.g. ${key}({...})`,
      );
    }
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  return value === null ? 'null' : typeof value;
}
