/**
 * Everything between `subscribe()` and a running subscription: the handler
 * wrapped in the bus's and the subscription's middleware, the schema check
 * and tracing; the pool options (working() paced to the broker's ack
 * deadline, dead letters and the park policy's broker state); the topics
 * prepared; the pool and its transport intake started.
 */
import { InvalidArgumentError } from '../core/errors.ts';
import type { InboundMessage, MessageKind, Transport } from '../core/transport.ts';
import type { EnvelopeHandler, RawHandler, SubscribeOptions } from '../core/types.ts';
import { createActorPool } from '../dispatch/actor-pool.ts';
import { poolDefaults, resolvePoolOptions } from '../dispatch/options.ts';
import type { PoolTask } from '../dispatch/types.ts';
import type { BusMetrics } from '../metrics/metrics.ts';
import { type DeadLetterParts, sendDeadLetter } from './dead-letter-sender.ts';
import { composeEnvelopeHandler, resolveMiddleware } from './middleware.ts';
import type { ResolvedBusOptions } from './options.ts';
import { BusSubscription } from './subscription.ts';
import { envelopeTaskFactory, rawTaskFactory } from './tasks.ts';
import { assertTopic } from './topics.ts';
import { traceEnvelopeHandler, traceRawHandler } from './tracing.ts';

/** Builds a subscription's tasks once its topic and group are known. */
export type TaskFactoryFor = (topic: string, group: string) => (m: InboundMessage) => PoolTask;

/**
 * An envelope subscription's tasks: bus middleware, then the subscription's,
 * then the schema check around the handler, all inside the handler's span.
 * Throws on a handler that is not a function or an invalid `middleware` option.
 */
export function envelopeTasks(
  transportKind: string,
  busOptions: ResolvedBusOptions,
  topic: string,
  handler: EnvelopeHandler<unknown>,
  options: SubscribeOptions,
): TaskFactoryFor {
  if (typeof handler !== 'function') throw notAHandler(handler);
  const own = typeof options === 'object' && options !== null ? options.middleware : undefined;
  const chain = composeEnvelopeHandler({
    topic,
    handler,
    middleware: [...busOptions.middleware, ...resolveMiddleware('middleware', own)],
    schemas: busOptions.schemas,
  });
  const traced = traceEnvelopeHandler(transportKind, chain);
  return (t, g) => envelopeTaskFactory(t, g, traced);
}

/** A raw subscription's tasks: the handler inside its span. Throws on a handler that is not a function. */
export function rawTasks(transportKind: string, handler: RawHandler): TaskFactoryFor {
  if (typeof handler !== 'function') throw notAHandler(handler);
  const traced = traceRawHandler(transportKind, handler);
  return (t, g) => rawTaskFactory(t, g, traced);
}

function notAHandler(handler: unknown): InvalidArgumentError {
  return new InvalidArgumentError(
    `Expected the handler to be a function, got ${handler === null ? 'null' : typeof handler}`,
  );
}

export interface SubscribeParts extends DeadLetterParts {
  readonly transport: Transport;
  readonly busOptions: ResolvedBusOptions;
  readonly metrics: BusMetrics;
  /** Called as soon as the subscription runs, before subscribe() resolves. */
  readonly onStarted: (s: BusSubscription) => void;
  readonly onClosed: (s: BusSubscription) => void;
}

export async function openSubscription(
  parts: SubscribeParts,
  topic: string,
  kind: MessageKind,
  options: SubscribeOptions,
  taskFactory: TaskFactoryFor,
): Promise<BusSubscription> {
  const { transport, busOptions } = parts;
  assertTopic(topic);
  const group = options.group ?? busOptions.clientId;
  const deadLetterTopic = options.deadLetterTopic ?? `${topic}.DLQ`;
  assertTopic(deadLetterTopic);
  // working() must reach the broker well before its ack deadline, also for
  // messages that wait behind a slow one or sit in backoff between attempts.
  const ackDeadline = transport.ackDeadlineMs?.(options.handlerTimeoutMs ?? poolDefaults.handlerTimeoutMs);
  // The park policy keeps its state with the broker (when the transport can), so it survives restarts.
  const parkingLot =
    options.deadLetterPolicy === 'park' ? await transport.parkingLot?.(topic, group) : undefined;
  const poolOptions = resolvePoolOptions(topic, group, kind, options, {
    deadLetter: (request) => sendDeadLetter(parts, topic, group, deadLetterTopic, request, parkingLot),
    metrics: parts.metrics.forPool(topic, group),
    logger: busOptions.logger,
    ...(ackDeadline === undefined
      ? {}
      : {
          workingIntervalMs: Math.max(
            50,
            Math.min(poolDefaults.workingIntervalMs, Math.floor(ackDeadline / 3)),
          ),
        }),
  });
  await parts.ensureTopic(topic, kind);
  // A custom dead-letter topic is created now, as an envelope topic (durable):
  // whoever touches it first decides its storage (`*.DLQ` is durable by name).
  if (options.deadLetterTopic !== undefined) await parts.ensureTopic(deadLetterTopic, 'envelope');
  const pool = createActorPool(poolOptions);
  const subscription = new BusSubscription({
    transport,
    pool,
    parkingLot,
    options: poolOptions,
    makeTask: taskFactory(topic, group),
    logger: busOptions.logger,
    defaultCloseTimeoutMs: busOptions.closeTimeoutMs,
    onClosed: parts.onClosed,
  });
  await subscription.start();
  parts.onStarted(subscription);
  if (options.signal) {
    const signal = options.signal;
    if (signal.aborted) void subscription.close();
    else signal.addEventListener('abort', () => void subscription.close(), { once: true });
  }
  return subscription;
}
