/**
 * The event bus: envelopes in and out, the publish window and its results,
 * one actor pool per subscription, and the single graceful shutdown path.
 */
import { closeDeadline, settledOrAborted } from '../core/close-deadline.ts';
import {
  createEnvelope,
  type Envelope,
  type EnvelopeInput,
  encodedSize,
  encodeEnvelope,
  envelopeHeaders,
  newEventId,
} from '../core/envelope.ts';
import {
  BusClosedError,
  type EventBusError,
  InvalidArgumentError,
  PayloadTooLargeError,
  TimeoutError,
} from '../core/errors.ts';
import type {
  MessageKind,
  ParkingLot,
  PublishOutcome,
  Transport,
  TransportFeatures,
} from '../core/transport.ts';
import type {
  CloseOptions,
  EnvelopeHandler,
  EventBus,
  HealthReport,
  PublishAccepted,
  PublishOptions,
  PublishResult,
  PublishResultStream,
  RawHandler,
  SubscribeOptions,
  Subscription,
} from '../core/types.ts';
import { createActorPool } from '../dispatch/actor-pool.ts';
import { poolDefaults, resolvePoolOptions } from '../dispatch/options.ts';
import type { DeadLetterRequest } from '../dispatch/types.ts';
import { type BusMetrics, createBusMetrics, noopMetrics } from '../metrics/metrics.ts';
import { deadLetterMessage } from './dead-letter.ts';
import { composeEnvelopeHandler, resolveMiddleware } from './middleware.ts';
import { type EventBusOptions, type ResolvedBusOptions, resolveBusOptions } from './options.ts';
import { type PublishMeta, PublishPath } from './publish-path.ts';
import { PublishResultHub } from './publish-results.ts';
import { PublishWindow } from './publish-window.ts';
import type { TopicSchemas } from './schema.ts';
import { BusSubscription } from './subscription.ts';
import { envelopeTaskFactory, rawTaskFactory } from './tasks.ts';
import { startPublishSpan, traceEnvelopeHandler, traceRawHandler } from './tracing.ts';
import { transportFactoryFor } from './transport-registry.ts';
import type { SchemaInputs, SchemaOutputs, TopicMap, TypedEventBus } from './typed-topics.ts';

const TOPIC_PATTERN = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

function assertTopic(topic: unknown): asserts topic is string {
  if (typeof topic !== 'string' || topic.length > 200 || !TOPIC_PATTERN.test(topic)) {
    throw new InvalidArgumentError(
      `Expected a topic of dot-separated tokens of [A-Za-z0-9_-] (at most 200 characters), got ${JSON.stringify(topic)}`,
    );
  }
}

class EventBusImpl implements EventBus {
  readonly clientId: string;
  readonly transport: string;
  readonly features: TransportFeatures;
  readonly closed: Promise<void>;
  /** The typed bus's untyped view (typed-topics.ts): the same bus. */
  readonly untyped: EventBus = this;
  readonly #options: ResolvedBusOptions;
  readonly #transport: Transport;
  readonly #metrics: BusMetrics;
  readonly #results: PublishResultHub;
  readonly #window: PublishWindow;
  readonly #topics = new Map<string, Promise<void> | true>();
  readonly #subscriptions = new Set<BusSubscription>();
  readonly #publishing: PublishPath;
  #closing: Promise<void> | undefined;
  /** Set once the subscriptions are closed: until then handlers may still publish. */
  #refusingPublishes = false;
  #resolveClosed!: () => void;

  constructor(options: ResolvedBusOptions, transport: Transport, metrics: BusMetrics) {
    this.#options = options;
    this.clientId = options.clientId;
    this.transport = transport.kind;
    this.features = transport.features;
    this.#transport = transport;
    this.#metrics = metrics;
    this.#results = new PublishResultHub(
      options.onPublishResult,
      options.logger,
      options.maxPendingPublishes,
    );
    this.#window = new PublishWindow(options.maxPendingPublishes, () => this.#results.maxBacklog());
    this.#results.onBacklogChange = () => this.#window.wake();
    this.#publishing = new PublishPath(options, transport, this.#window, this.#results, metrics);
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
  }

  #assertOpen(): void {
    if (this.#closing) throw new BusClosedError();
  }

  /** Publishes are still taken while close() drains handlers (they may publish follow-ups). */
  #assertAcceptingPublishes(): void {
    if (this.#refusingPublishes) throw new BusClosedError();
  }

  #ensureTopic(topic: string, kind: MessageKind): Promise<void> | undefined {
    const known = this.#topics.get(topic);
    if (known === true) return undefined;
    if (known) return known;
    const pending = this.#transport.ensureTopic(topic, kind).then(
      () => {
        this.#topics.set(topic, true);
      },
      (error: unknown) => {
        this.#topics.delete(topic);
        throw error;
      },
    );
    this.#topics.set(topic, pending);
    return pending;
  }

  async publishEnvelope<P>(
    topic: string,
    input: EnvelopeInput<P>,
    options?: PublishOptions,
  ): Promise<PublishAccepted> {
    return this.#publishEnvelope(topic, input, options, undefined);
  }

  publishEnvelopeAndWait<P>(
    topic: string,
    input: EnvelopeInput<P>,
    options?: PublishOptions,
  ): Promise<PublishResult> {
    const { promise, waiter } = resultWaiter();
    return this.#publishEnvelope(topic, input, options, waiter).then(() => promise);
  }

  publishAndWait(topic: string, data: Uint8Array, options?: PublishOptions): Promise<PublishResult> {
    const { promise, waiter } = resultWaiter();
    return this.#publish(topic, data, options, waiter).then(() => promise);
  }

  async #publishEnvelope<P>(
    topic: string,
    input: EnvelopeInput<P>,
    options: PublishOptions | undefined,
    waiter: PublishMeta['waiter'],
  ): Promise<PublishAccepted> {
    this.#assertAcceptingPublishes();
    assertTopic(topic);
    const envelope = createEnvelope(input, this.#options.interop === 'jxt-go' ? 'jxt-go' : 'default');
    const checking = this.#options.schemas?.checkPublish(topic, envelope);
    if (checking) await checking;
    const data = encodeEnvelope(envelope);
    const headers = envelopeHeaders(envelope);
    if (options?.headers) Object.assign(headers, options.headers, envelopeHeaders(envelope));
    const span = startPublishSpan(this.transport, topic, envelope.eventId, headers, waiter);
    await this.#admit(topic, 'envelope', data, headers, envelope.eventId, options?.signal).catch(
      span.abandon,
    );
    this.#publishing.submit(
      { topic, kind: 'envelope', data, headers, msgId: envelope.eventId, key: envelope.aggregateId },
      {
        eventId: envelope.eventId,
        aggregateId: envelope.aggregateId,
        eventType: envelope.eventType,
        envelope: envelope as Envelope,
        waiter: span.onResult,
      },
    );
    return { eventId: envelope.eventId, topic };
  }

  publish(topic: string, data: Uint8Array, options?: PublishOptions): Promise<PublishAccepted> {
    return this.#publish(topic, data, options, undefined);
  }

  async #publish(
    topic: string,
    data: Uint8Array,
    options: PublishOptions | undefined,
    waiter: PublishMeta['waiter'],
  ): Promise<PublishAccepted> {
    this.#assertAcceptingPublishes();
    assertTopic(topic);
    if (!(data instanceof Uint8Array)) {
      throw new InvalidArgumentError(`Expected data to be a Uint8Array, got ${typeof data}`);
    }
    const msgId = options?.msgId ?? newEventId();
    const headers: Record<string, string> = { ...options?.headers };
    const span = startPublishSpan(this.transport, topic, msgId, headers, waiter);
    await this.#admit(topic, 'raw', data, headers, msgId, options?.signal).catch(span.abandon);
    this.#publishing.submit(
      { topic, kind: 'raw', data, headers, msgId, key: options?.key },
      {
        eventId: msgId,
        aggregateId: options?.key,
        eventType: undefined,
        envelope: undefined,
        waiter: span.onResult,
      },
    );
    return { eventId: msgId, topic };
  }

  /** Size check, topic preparation and a publish-window slot: everything before the send. */
  async #admit(
    topic: string,
    kind: MessageKind,
    data: Uint8Array,
    headers: Record<string, string>,
    msgId: string,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const size = encodedSize(data, headers, msgId);
    const limit = this.#transport.maxPayloadBytes;
    if (size > limit) throw new PayloadTooLargeError(size, limit);
    const preparing = this.#ensureTopic(topic, kind);
    if (preparing) await preparing;
    const waiting = this.#window.acquire(signal);
    if (waiting) await waiting;
    if (this.#refusingPublishes && waiting) {
      // Woken while closing: the slot is ours but the bus no longer accepts.
      this.#window.release();
      throw new BusClosedError();
    }
  }

  subscribeEnvelope<P = unknown>(
    topic: string,
    handler: EnvelopeHandler<P>,
    options: SubscribeOptions = {},
  ): Promise<Subscription> {
    if (typeof handler !== 'function') return Promise.reject(notAHandler(handler));
    let chain: EnvelopeHandler<unknown>;
    try {
      const own = typeof options === 'object' && options !== null ? options.middleware : undefined;
      chain = composeEnvelopeHandler({
        topic,
        handler: handler as EnvelopeHandler<unknown>,
        middleware: [...this.#options.middleware, ...resolveMiddleware('middleware', own)],
        schemas: this.#options.schemas,
      });
    } catch (error) {
      return Promise.reject(error);
    }
    const traced = traceEnvelopeHandler(this.transport, chain);
    return this.#subscribe(topic, 'envelope', options, (t, g) => envelopeTaskFactory(t, g, traced));
  }

  subscribe(topic: string, handler: RawHandler, options: SubscribeOptions = {}): Promise<Subscription> {
    if (typeof handler !== 'function') return Promise.reject(notAHandler(handler));
    const traced = traceRawHandler(this.transport, handler);
    return this.#subscribe(topic, 'raw', options, (t, g) => rawTaskFactory(t, g, traced));
  }

  async #subscribe(
    topic: string,
    kind: MessageKind,
    options: SubscribeOptions,
    taskFactory: (topic: string, group: string) => BusSubscriptionTaskFactory,
  ): Promise<Subscription> {
    this.#assertOpen();
    assertTopic(topic);
    const group = options.group ?? this.clientId;
    const deadLetterTopic = options.deadLetterTopic ?? `${topic}.DLQ`;
    assertTopic(deadLetterTopic);
    // working() must reach the broker well before its ack deadline, also for
    // messages that wait behind a slow one or sit in backoff between attempts.
    const ackDeadline = this.#transport.ackDeadlineMs?.(
      options.handlerTimeoutMs ?? poolDefaults.handlerTimeoutMs,
    );
    // The park policy keeps its state with the broker (when the transport can), so it survives restarts.
    const parkingLot =
      options.deadLetterPolicy === 'park' ? await this.#transport.parkingLot?.(topic, group) : undefined;
    const poolOptions = resolvePoolOptions(topic, group, kind, options, {
      deadLetter: (request) => this.#deadLetter(topic, group, deadLetterTopic, request, parkingLot),
      metrics: this.#metrics.forPool(topic, group),
      logger: this.#options.logger,
      ...(ackDeadline === undefined
        ? {}
        : {
            workingIntervalMs: Math.max(
              50,
              Math.min(poolDefaults.workingIntervalMs, Math.floor(ackDeadline / 3)),
            ),
          }),
    });
    await this.#ensureTopic(topic, kind);
    // A custom dead-letter topic is created now, as an envelope topic (durable):
    // whoever touches it first decides its storage (`*.DLQ` is durable by name).
    if (options.deadLetterTopic !== undefined) await this.#ensureTopic(deadLetterTopic, 'envelope');
    const pool = createActorPool(poolOptions);
    const subscription = new BusSubscription({
      transport: this.#transport,
      pool,
      parkingLot,
      options: poolOptions,
      makeTask: taskFactory(topic, group),
      logger: this.#options.logger,
      defaultCloseTimeoutMs: this.#options.closeTimeoutMs,
      onClosed: (s) => this.#subscriptions.delete(s),
    });
    await subscription.start();
    this.#subscriptions.add(subscription);
    if (options.signal) {
      const signal = options.signal;
      if (signal.aborted) void subscription.close();
      else signal.addEventListener('abort', () => void subscription.close(), { once: true });
    }
    return subscription;
  }

  /** Makes a failed (or parked) message durable on its dead-letter topic; resolves on the broker ack. */
  async #deadLetter(
    topic: string,
    group: string,
    deadLetterTopic: string,
    request: DeadLetterRequest,
    parkingLot: ParkingLot | undefined,
  ): Promise<void> {
    // Parked with the broker before the dead letter, so no restart (or other
    // member) can run the aggregate's newer events once this one is given up on.
    if (parkingLot !== undefined && request.disposition === 'dead-letter' && request.task.key !== undefined) {
      await parkingLot.park(request.key, request.error.message || request.error.name);
    }
    const message = deadLetterMessage(
      topic,
      group,
      deadLetterTopic,
      request,
      this.#transport.maxPayloadBytes,
      this.#transport.ownedHeaders,
    );
    const preparing = this.#ensureTopic(message.topic, 'envelope');
    if (preparing) await preparing;
    this.#window.forceAcquire();
    const outcome = await new Promise<PublishOutcome>((resolve) => this.#transport.send(message, resolve));
    this.#window.release();
    if (!outcome.ok) throw outcome.error;
  }

  publishResults(): PublishResultStream {
    return this.#results.open();
  }

  async flush(options: { timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? this.#options.closeTimeoutMs;
    await raceDeadline(this.#window.whenEmpty(), timeoutMs, () => {
      return new TimeoutError(
        `Expected every pending publish to be settled within ${timeoutMs} ms, ${this.#window.pending} still pending`,
      );
    });
  }

  releaseAggregate(aggregateId: string): boolean {
    const released = this.#publishing.giveUp(aggregateId);
    if (released) this.#options.logger.info({ aggregateId }, 'publish retries of the aggregate given up');
    return released;
  }

  health(): HealthReport {
    const transport = this.#transport.health();
    let troubled = false;
    const subscriptions = [...this.#subscriptions].map((s) => {
      const stats = s.pool.stats();
      // Only what is wrong now: a stuck handler, a dead letter that cannot be
      // published, a transport problem not yet over (see BusSubscription.lastError).
      const problems: string[] = [];
      if (stats.stuckHandlers > 0) problems.push(`${stats.stuckHandlers} stuck handler(s)`);
      if (stats.deadLetterFailing > 0) problems.push(`${stats.deadLetterFailing} dead letter(s) failing`);
      const lastError = s.lastError;
      if (lastError !== undefined) problems.push(lastError.message);
      const loop = s.redeliveryLoop;
      if (loop !== undefined) problems.push(loop);
      if (problems.length > 0) troubled = true;
      return {
        topic: s.topic,
        group: s.group,
        inFlight: stats.inFlight,
        queued: stats.queued,
        parkedAggregates: stats.parkedAggregates,
        stuckHandlers: stats.stuckHandlers,
        deadLetterFailing: stats.deadLetterFailing,
        ...(problems.length > 0 ? { problems } : {}),
      };
    });
    const retrying = this.#publishing.retrying;
    // Unread publishResults() count against the window: at half of it (where the
    // warning is logged) the reader is not keeping up and publishing is about to wait.
    const unreadResults = this.#results.maxBacklog();
    const resultsStalling = unreadResults * 2 >= this.#options.maxPendingPublishes;
    const transportProblems = transport.problems ?? [];
    const degraded =
      !transport.connected || troubled || retrying > 0 || resultsStalling || transportProblems.length > 0;
    const report: { -readonly [K in keyof HealthReport]: HealthReport[K] } = {
      status: this.#closing ? 'closed' : degraded ? 'degraded' : 'ok',
      transport: this.transport,
      connected: transport.connected,
      pendingPublishes: this.#window.pending,
      retryingPublishes: retrying,
      oldestRetryingPublishMs: this.#publishing.oldestRetryingAgeMs(),
      unreadPublishResults: unreadResults,
      subscriptions,
    };
    if (transportProblems.length > 0) report.problems = transportProblems;
    if (transport.details) report.details = transport.details;
    return report;
  }

  close(options?: CloseOptions): Promise<void> {
    if (this.#closing) return this.#closing;
    let deadline: AbortSignal;
    try {
      deadline = closeDeadline(options, this.#options.closeTimeoutMs);
    } catch (error) {
      return Promise.reject(error);
    }
    this.#closing = this.#close(deadline);
    return this.#closing;
  }

  /** One deadline for every stage: no stage gets time of its own beyond it. */
  async #close(deadline: AbortSignal): Promise<void> {
    try {
      // Handlers drain with the bus still taking their publishes (follow-ups).
      await Promise.all([...this.#subscriptions].map((s) => s.close({ signal: deadline })));
      this.#refusingPublishes = true;
      this.#window.close(new BusClosedError());
      // Accepted publishes, retries included, get until the deadline to be acknowledged.
      await settledOrAborted(this.#window.whenEmpty(), deadline);
      // Then nothing more is attempted: publishes waiting to be retried fail now,
      // those on the wire get a TimeoutError result from the transport's close.
      this.#publishing.stopRetrying();
      await this.#transport.close(deadline);
    } catch (error) {
      this.#options.logger.error({ err: error }, 'error while closing the bus');
    } finally {
      this.#results.endAll();
      // A closed bus no longer shows in the registry; a new bus may take its names.
      this.#metrics.unregister();
      this.#resolveClosed();
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

type BusSubscriptionTaskFactory = ReturnType<typeof envelopeTaskFactory>;

function notAHandler(handler: unknown): InvalidArgumentError {
  return new InvalidArgumentError(
    `Expected the handler to be a function, got ${handler === null ? 'null' : typeof handler}`,
  );
}

/** A PublishResult promise: resolves on success, rejects with the failure's typed error. */
function resultWaiter(): { promise: Promise<PublishResult>; waiter: (r: PublishResult) => void } {
  let waiter!: (r: PublishResult) => void;
  const promise = new Promise<PublishResult>((resolve, reject) => {
    waiter = (r) => (r.success ? resolve(r) : reject(r.error));
  });
  // Accepting may throw before the waiter is ever called; then nobody awaits this one.
  promise.catch(() => {});
  return { promise, waiter };
}

/** Resolves with `promise`, or rejects with `makeError()` after `ms` (when it returns an error). */
function raceDeadline<T>(
  promise: Promise<T>,
  ms: number,
  makeError: () => EventBusError | undefined,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(makeError() ?? new TimeoutError(`Timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Creates a bus on the chosen transport. Options are validated here, once;
 * the transport connects before this resolves. With `topics` (schemas) the
 * bus is typed from them; `createEventBus<Topics>(…)` types it from a map
 * (see typed-topics.ts); otherwise it is the untyped EventBus.
 */
export function createEventBus<S extends TopicSchemas>(
  options: EventBusOptions & { readonly topics: S },
): Promise<string extends keyof S ? EventBus : TypedEventBus<SchemaInputs<S>, SchemaOutputs<S>>>;
export function createEventBus(options: EventBusOptions): Promise<EventBus>;
export function createEventBus<T extends TopicMap>(options: EventBusOptions): Promise<TypedEventBus<T>>;
export async function createEventBus(options: EventBusOptions): Promise<EventBus> {
  const resolved = resolveBusOptions(options);
  // Group metrics are asked for at subscribe time, once the bus's metrics exist.
  let busMetrics: BusMetrics = noopMetrics;
  const factory = await transportFactoryFor(options);
  const transport = await factory.create({
    clientId: resolved.clientId,
    logger: resolved.logger,
    interop: resolved.interop,
    groupMetrics: (topic, group) => busMetrics.forGroup(topic, group),
  });
  try {
    const metrics =
      resolved.metrics.enabled === false
        ? noopMetrics
        : createBusMetrics(transport.kind, resolved.clientId, resolved.metrics.registry);
    busMetrics = metrics;
    return new EventBusImpl(resolved, transport, metrics);
  } catch (error) {
    // Nothing the failed start opened may keep the process alive.
    busMetrics.unregister();
    await transport.close(AbortSignal.timeout(resolved.closeTimeoutMs)).catch(() => {});
    throw error;
  }
}

export type { EventBusOptions };
