/** The public shapes of the bus (README.md, API overview). */
import type { Envelope, EnvelopeInput } from './envelope.ts';
import type { EventBusError } from './errors.ts';
import type { Logger } from './logger.ts';
import type { TransportFeatures } from './transport.ts';

export interface PublishResult {
  readonly eventId: string;
  readonly topic: string;
  readonly success: boolean;
  readonly error?: EventBusError;
  /** When the outcome became known (ms since epoch). */
  readonly timestamp: number;
  readonly aggregateId?: string;
  readonly eventType?: string;
  /** NATS stream sequence / memory log index. */
  readonly sequence?: number;
  /** Kafka offset. */
  readonly offset?: string;
  /** The broker already had this eventId (de-duplicated, not stored twice). */
  readonly duplicate?: boolean;
  /** Attempts the bus made (1 unless it retried a timeout or disconnect). */
  readonly attempts: number;
  /**
   * On failure, what it takes to act on it without keeping a copy: the
   * envelope as published (`bus.publishEnvelope(result.topic, result.envelope)`
   * republishes it with the same eventId, which the broker de-duplicates) ...
   */
  readonly envelope?: Envelope;
  /** ... or, for raw publishes, the bytes, headers and key sent (republish with `msgId: eventId`). */
  readonly raw?: {
    readonly data: Uint8Array;
    readonly headers: Readonly<Record<string, string>>;
    readonly key?: string;
  };
}

export interface PublishOptions {
  /** Extra headers to send (X-* metadata headers are set by the bus). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Cancels waiting for a free slot in the publish window. */
  readonly signal?: AbortSignal;
  /** Message id for raw publishes (broker de-duplication); generated when absent. */
  readonly msgId?: string;
  /** Partition/routing key for raw publishes. */
  readonly key?: string;
}

/** What `publish`/`publishEnvelope` resolve with: the message was accepted into the window. */
export interface PublishAccepted {
  readonly eventId: string;
  readonly topic: string;
}

export interface MessageContext {
  readonly topic: string;
  readonly group: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Routing key used (aggregate id, or `rr-<n>`). */
  readonly key: string;
  /** In-place attempt number, 1 on the first try. */
  readonly attempt: number;
  /** Broker delivery count, 1 unless the broker redelivered. */
  readonly deliveryCount: number;
  readonly sequence: number | undefined;
  /** Aborted when the handler timed out or the bus is shutting down past its deadline. */
  readonly signal: AbortSignal;
  /** Tells the broker the message is still being worked on (extends the ack deadline). */
  working(): void;
  /**
   * Fencing check, synchronous: false once this member may no longer own the
   * message's partition (handoff, lease lost after a pause, rebalance). A
   * handler whose effects must never overlap another member's execution of
   * the same aggregate checks it right before committing them; once false,
   * the event will be (or already is being) handled by the partition's new
   * owner. Always true for unpartitioned subscriptions.
   */
  stillOwner(): boolean;
}

export type EnvelopeHandler<P = unknown> = (
  envelope: Envelope<P>,
  ctx: MessageContext,
) => Promise<void> | void;
export type RawHandler = (data: Uint8Array, ctx: MessageContext) => Promise<void> | void;

/** The rest of the chain, as a middleware sees it: always a Promise, rejecting when it failed. */
export type NextHandler = (envelope: Envelope, ctx: MessageContext) => Promise<void>;

/**
 * Wraps envelope handling (Watermill style): gets the rest of the chain and
 * returns a handler that may run code before and after `next`, pass a
 * different envelope or context on, skip `next` (the event counts as handled)
 * or throw (a handler failure: retried, then dead-lettered). Called once per
 * subscription, at subscribe time. Order: see README "Middleware".
 */
export type Middleware = (next: NextHandler) => EnvelopeHandler<unknown>;

export type DeadLetterPolicy = 'continue' | 'park';

export interface BackoffOptions {
  readonly initialMs?: number;
  readonly maxMs?: number;
  readonly multiplier?: number;
  /** 0..1: fraction of each delay that is randomised. */
  readonly jitter?: number;
}

export interface SubscribeOptions {
  /** Consumer group (durable name). Default: the bus clientId. */
  readonly group?: string;
  /** Number of actors (concurrency). Default 64. */
  readonly actors?: number;
  /** Per-actor inbox bound. Default 64. */
  readonly inboxSize?: number;
  /** Handler timeout; must stay below the broker's ack deadline. Default 20 s. */
  readonly handlerTimeoutMs?: number;
  /** In-place attempts before dead-lettering (envelopes). Default 5. */
  readonly maxAttempts?: number;
  readonly backoff?: BackoffOptions;
  /** After maxAttempts: continue with the aggregate's next event, or park the aggregate. */
  readonly deadLetterPolicy?: DeadLetterPolicy;
  /** Dead-letter topic. Default `<topic>.DLQ`. */
  readonly deadLetterTopic?: string;
  /** Aborting it closes the subscription. */
  readonly signal?: AbortSignal;
  /** Envelope middleware of this subscription, inside the bus's (first = outermost). */
  readonly middleware?: readonly Middleware[];
  /**
   * Where a group that does not exist yet starts: `'earliest'` (default, every
   * message the broker still holds) or `'latest'` (only messages published
   * from now on). Only a new group's first subscription decides it: an
   * existing group resumes where it left off, and members joining later
   * continue from the group's position, never from "now".
   */
  readonly startFrom?: StartFrom;
}

/** Where a new consumer group starts reading (see SubscribeOptions.startFrom). */
export type StartFrom = 'earliest' | 'latest';

/**
 * How long a close may take: until `timeoutMs` passes or `signal` aborts,
 * whichever comes first (default timeout: the bus's `closeTimeoutMs`).
 */
export interface CloseOptions {
  readonly signal?: AbortSignal;
  readonly timeoutMs?: number;
}

export interface Subscription extends AsyncDisposable {
  readonly topic: string;
  readonly group: string;
  /**
   * Un-parks an aggregate (park policy): its parked events are replayed from
   * `<topic>.PARKED` through the handler, oldest first, and deleted there as
   * they settle; the aggregate's newer events wait until the replay is queued
   * and run after it. Resolves once the replayed events have settled, with how
   * many there were; `resumed: false` when the aggregate is not parked. A
   * replayed event that fails again parks the aggregate again. In a consumer
   * group only the member that owns the aggregate's partition can replay in
   * order: called on another member, the request goes to the owner (through
   * the broker: the NATS `<prefix>_PARKED` bucket) and waits for its answer
   * up to `timeoutMs` (default 30 s), then fails with `TimeoutError`.
   */
  resume(
    aggregateId: string,
    options?: { readonly timeoutMs?: number },
  ): Promise<{ readonly resumed: boolean; readonly replayed: number }>;
  /** Stop intake, let in-flight work finish (until the deadline), release the rest. Idempotent. */
  close(options?: CloseOptions): Promise<void>;
  readonly closed: Promise<void>;
}

export interface PublishResultStream extends AsyncIterable<PublishResult> {
  /** Stops this stream; buffered results are dropped from it (never from other listeners). */
  close(): void;
}

export interface HealthReport {
  readonly status: 'ok' | 'degraded' | 'closed';
  /** The transport's kind ('nats', 'kafka', 'memory', or a transport's own name). */
  readonly transport: string;
  readonly connected: boolean;
  readonly pendingPublishes: number;
  /** Publishes that failed an attempt (timeout, disconnect) and are being retried by the bus. */
  readonly retryingPublishes: number;
  /** Age of the oldest publish being retried, ms (0 when none); `degraded` while above 0. */
  readonly oldestRetryingPublishMs: number;
  /**
   * Largest number of results an open `publishResults()` stream holds unread.
   * They count against `maxPendingPublishes` (publishing waits for the reader
   * once the window is full); from half the window on the status is
   * `degraded` and a warning is logged.
   */
  readonly unreadPublishResults: number;
  /** What is wrong with the broker now (e.g. JetStream without quorum); absent when nothing is. */
  readonly problems?: readonly string[];
  readonly subscriptions: ReadonlyArray<{
    readonly topic: string;
    readonly group: string;
    readonly inFlight: number;
    readonly queued: number;
    readonly parkedAggregates: number;
    /**
     * Backpressure in effect: the actor pool takes nothing more until handlers
     * finish (it holds its capacity, or one actor's inbox is at its bound).
     */
    readonly intakePaused: boolean;
    /** Timed-out handlers that ignore their abort and have not settled (their actors wait). */
    readonly stuckHandlers: number;
    /** Messages held because their dead-letter publish keeps failing (their aggregates wait). */
    readonly deadLetterFailing: number;
    /** What is wrong with this subscription now; absent when nothing is. */
    readonly problems?: readonly string[];
  }>;
  readonly details?: Readonly<Record<string, unknown>>;
}

export interface EventBus extends AsyncDisposable {
  readonly clientId: string;
  /** The transport's kind ('nats', 'kafka', 'memory', or a transport's own name). */
  readonly transport: string;
  /** What the transport can do (redelivery, consumer groups, de-duplication, …). */
  readonly features: TransportFeatures;
  publish(topic: string, data: Uint8Array, options?: PublishOptions): Promise<PublishAccepted>;
  publishEnvelope<P>(
    topic: string,
    envelope: EnvelopeInput<P>,
    options?: PublishOptions,
  ): Promise<PublishAccepted>;
  subscribe(topic: string, handler: RawHandler, options?: SubscribeOptions): Promise<Subscription>;
  subscribeEnvelope<P = unknown>(
    topic: string,
    handler: EnvelopeHandler<P>,
    options?: SubscribeOptions,
  ): Promise<Subscription>;
  /** Results of every accepted publish from the moment of the call on. */
  publishResults(): PublishResultStream;
  /** Waits until every publish accepted so far has a result. */
  flush(options?: { timeoutMs?: number }): Promise<void>;
  /**
   * Publishes and waits for the broker: resolves with the PublishResult once
   * the event is stored, rejects with the typed error of its one failure
   * (after the bus's own retries, at the latest at the publish deadline).
   */
  publishEnvelopeAndWait<P>(
    topic: string,
    envelope: EnvelopeInput<P>,
    options?: PublishOptions,
  ): Promise<PublishResult>;
  /** `publish`, waiting for the broker like `publishEnvelopeAndWait`. */
  publishAndWait(topic: string, data: Uint8Array, options?: PublishOptions): Promise<PublishResult>;
  /**
   * Stops retrying the aggregate's outstanding publishes: the one in flight
   * fails after its current attempt (at once when waiting to retry), and those
   * queued behind it fail with it (scope 'aggregate') or are sent on (scope
   * 'event'), each with one result. For an application that knows an outage
   * will outlast its patience. Returns whether anything was outstanding.
   */
  releaseAggregate(aggregateId: string): boolean;
  health(): HealthReport;
  /**
   * Graceful and idempotent: stop intake; handlers finish within the deadline
   * and may still publish (accepted and flushed); nak what did not finish;
   * wait for publish acks; disconnect. Publishes are refused once the
   * subscriptions are closed.
   */
  close(options?: CloseOptions): Promise<void>;
  readonly closed: Promise<void>;
}

export interface MetricsOptions {
  /** prom-client Registry; default: prom-client's global registry. */
  readonly registry?: import('prom-client').Registry;
  /** Disable metrics entirely. */
  readonly enabled?: boolean;
}

export interface EventBusOptionsBase {
  readonly clientId: string;
  readonly onPublishResult?: (result: PublishResult) => void;
  readonly logger?: Logger;
  readonly metrics?: MetricsOptions;
  /** Max publishes awaiting a broker ack; publish waits when full. Default 10,000. */
  readonly maxPendingPublishes?: number;
  /** Default close/drain deadline. Default 30 s. */
  readonly closeTimeoutMs?: number;
  /**
   * How long the bus keeps retrying an accepted publish (timeouts,
   * disconnects) before it gives the event up with one failure result,
   * counted from acceptance. Long enough to ride out a broker restart, a
   * failover or a deploy. Default 5 minutes.
   */
  readonly publishDeadlineMs?: number;
  /**
   * When an event fails for good: 'aggregate' (default) also fails the events
   * of its aggregate queued behind it (PublishHeldError), so an aggregate is
   * never stored with a gap; 'event' sends them on.
   */
  readonly publishFailureScope?: 'aggregate' | 'event';
}
