/**
 * The event bus facade: envelopes in and out, the publish window and its
 * results. Its other jobs live beside it: starting the transport
 * (open-transport.ts), opening subscriptions with their handler chain and
 * dead letters (open-subscription.ts, dead-letter-sender.ts), topic names
 * (topics.ts), health (health.ts) and the single shutdown path (shutdown.ts).
 */
import { closeDeadline } from '../core/close-deadline.ts';
import {
  createEnvelope,
  type Envelope,
  type EnvelopeInput,
  encodedSize,
  encodeEnvelope,
  envelopeHeaders,
  newEventId,
} from '../core/envelope.ts';
import { BusClosedError, InvalidArgumentError, PayloadTooLargeError, TimeoutError } from '../core/errors.ts';
import type { MessageKind, Transport, TransportFeatures } from '../core/transport.ts';
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
import { withTimeout } from '../core/waiting.ts';
import type { BusMetrics } from '../metrics/metrics.ts';
import { busHealth } from './health.ts';
import { envelopeTasks, openSubscription, rawTasks, type TaskFactoryFor } from './open-subscription.ts';
import { openTransport } from './open-transport.ts';
import { type EventBusOptions, type ResolvedBusOptions, resolveBusOptions } from './options.ts';
import { type PublishMeta, PublishPath } from './publish-path.ts';
import { PublishResultHub } from './publish-results.ts';
import { PublishWindow } from './publish-window.ts';
import type { TopicSchemas } from './schema.ts';
import { shutdownBus } from './shutdown.ts';
import type { BusSubscription } from './subscription.ts';
import { assertTopic, TopicPreparation } from './topics.ts';
import { startPublishSpan } from './tracing.ts';
import type { SchemaInputs, SchemaOutputs, TopicMap, TypedEventBus } from './typed-topics.ts';

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
  readonly #topics: TopicPreparation;
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
    this.#topics = new TopicPreparation(transport);
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
  }

  /** Publishes are still taken while close() drains handlers (they may publish follow-ups). */
  #assertAcceptingPublishes(): void {
    if (this.#refusingPublishes) throw new BusClosedError();
  }

  readonly #ensureTopic = (topic: string, kind: MessageKind): Promise<void> | undefined =>
    this.#topics.ensure(topic, kind);

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
    let tasks: TaskFactoryFor;
    try {
      tasks = envelopeTasks(
        this.transport,
        this.#options,
        topic,
        handler as EnvelopeHandler<unknown>,
        options,
      );
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#subscribe(topic, 'envelope', options, tasks);
  }

  subscribe(topic: string, handler: RawHandler, options: SubscribeOptions = {}): Promise<Subscription> {
    let tasks: TaskFactoryFor;
    try {
      tasks = rawTasks(this.transport, handler);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#subscribe(topic, 'raw', options, tasks);
  }

  #subscribe(
    topic: string,
    kind: MessageKind,
    options: SubscribeOptions,
    tasks: TaskFactoryFor,
  ): Promise<Subscription> {
    // A closing bus takes no new subscriptions (publishes are still taken while handlers drain).
    if (this.#closing) return Promise.reject(new BusClosedError());
    const parts = {
      transport: this.#transport,
      window: this.#window,
      ensureTopic: this.#ensureTopic,
      busOptions: this.#options,
      metrics: this.#metrics,
      onStarted: (s: BusSubscription) => this.#subscriptions.add(s),
      onClosed: (s: BusSubscription) => this.#subscriptions.delete(s),
    };
    return openSubscription(parts, topic, kind, options, tasks);
  }

  publishResults(): PublishResultStream {
    return this.#results.open();
  }

  async flush(options: { timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? this.#options.closeTimeoutMs;
    await withTimeout(this.#window.whenEmpty(), timeoutMs, () => {
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
    return busHealth({
      transportKind: this.transport,
      transport: this.#transport,
      subscriptions: this.#subscriptions,
      window: this.#window,
      publishing: this.#publishing,
      results: this.#results,
      maxPendingPublishes: this.#options.maxPendingPublishes,
      closing: this.#closing !== undefined,
    });
  }

  close(options?: CloseOptions): Promise<void> {
    if (this.#closing) return this.#closing;
    let deadline: AbortSignal;
    try {
      deadline = closeDeadline(options, this.#options.closeTimeoutMs);
    } catch (error) {
      return Promise.reject(error);
    }
    // One deadline for every stage: no stage gets time of its own beyond it.
    this.#closing = shutdownBus(
      {
        subscriptions: this.#subscriptions,
        refusePublishes: () => {
          this.#refusingPublishes = true;
        },
        window: this.#window,
        publishing: this.#publishing,
        transport: this.#transport,
        results: this.#results,
        metrics: this.#metrics,
        logger: this.#options.logger,
        onClosed: this.#resolveClosed,
      },
      deadline,
    );
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
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
  return openTransport(
    options,
    resolved,
    (transport, metrics) => new EventBusImpl(resolved, transport, metrics),
  );
}

export type { EventBusOptions };
