/**
 * The contract between the bus core and a transport (memory, NATS, Kafka).
 * Internal: users never implement it directly, but every transport does, and
 * the conformance suite (`./testing`) runs the same scenarios against each.
 *
 * Split of responsibilities:
 * - the bus owns envelopes, the publish window, PublishResults, the actor pool,
 *   dead-lettering and shutdown ordering;
 * - a transport owns the wire: confirmed sending (with its own shared timeout
 *   sweep and same-id retries), intake sized to the pool's free capacity, and
 *   how acks reach the broker (per message or coalesced).
 */
import type { EventBusError } from './errors.ts';
import type { Logger } from './logger.ts';

export type MessageKind = 'envelope' | 'raw';

export type TransportKind = 'memory' | 'nats' | 'kafka';

/** What a transport can do; the conformance suite is gated by these. */
export interface TransportFeatures {
  /** Messages survive a subscriber going away and are delivered later. */
  readonly persistent: boolean;
  /** Named consumer groups: each group sees every message, members share. */
  readonly consumerGroups: boolean;
  /** A new group sees messages published before it subscribed. */
  readonly newSubscriberReceivesOldMessages: boolean;
  /** The broker de-duplicates by message id (Nats-Msg-Id). */
  readonly brokerDeduplication: boolean;
}

export interface OutboundMessage {
  readonly topic: string;
  readonly kind: MessageKind;
  /** Encoded body. */
  readonly data: Uint8Array;
  /** Wire headers (X-Event-ID, …); the transport adds its own (Nats-Msg-Id). */
  readonly headers: Readonly<Record<string, string>>;
  /** Broker de-duplication id: the eventId for envelopes. */
  readonly msgId: string;
  /** Partitioning key (aggregate id); Kafka record key. */
  readonly key: string | undefined;
}

export type PublishOutcome =
  | { readonly ok: true; readonly sequence?: number; readonly offset?: string; readonly duplicate?: boolean }
  | { readonly ok: false; readonly error: EventBusError };

/**
 * Called exactly once per `send`, never synchronously from inside `send`.
 * A timeout that survived the transport's own same-id retries is reported as
 * `TimeoutError` (unknown outcome).
 */
export type PublishCallback = (outcome: PublishOutcome) => void;

/** A delivered message. Settlement methods are idempotent: the first one wins. */
export interface InboundMessage {
  readonly topic: string;
  readonly data: Uint8Array;
  readonly headers: Readonly<Record<string, string>>;
  /** Kafka record key, when the transport has one. */
  readonly key: string | undefined;
  /** 1 on first delivery, higher on broker redelivery. */
  readonly deliveryCount: number;
  /** Stream sequence (NATS) / offset (Kafka) / log index (memory). */
  readonly sequence: number | undefined;
  /** Processed: never deliver again to this group. */
  ack(): void;
  /** Not processed: deliver again (after `delayMs` when given). */
  nak(delayMs?: number): void;
  /** Give up on it (already dead-lettered): never deliver again. */
  term(reason: string): void;
  /** Still working on it: extend the broker's ack deadline. */
  working(): void;
}

/** How the dispatcher tells a transport how much it may take in. */
export interface FlowControl {
  /** Messages the dispatcher can accept right now; pulls are sized to this. */
  freeCapacity(): number;
  /** Resolves once freeCapacity() > 0, or when `signal` aborts. */
  waitForCapacity(signal: AbortSignal): Promise<void>;
  /**
   * Hands one message over, in stream order. Never refuses: a refused message
   * would be redelivered after later ones of its aggregate.
   */
  deliver(message: InboundMessage): void;
  /** A transport problem worth surfacing (logged, counted, shown in health). */
  reportError(error: EventBusError): void;
}

export interface TransportSubscribeOptions {
  readonly topic: string;
  readonly group: string;
  readonly kind: MessageKind;
  /** The handler timeout the pool applies; transports keep their ack deadline above it. */
  readonly handlerTimeoutMs: number;
}

export interface TransportSubscription {
  /** Stops intake; resolves when no more messages will be delivered. */
  stop(): Promise<void>;
  /** Releases broker resources; called after in-flight messages were settled. */
  close(): Promise<void>;
}

export interface TransportHealth {
  readonly connected: boolean;
  readonly details?: Readonly<Record<string, unknown>>;
}

export interface Transport {
  readonly kind: TransportKind;
  readonly features: TransportFeatures;
  /** Largest encoded message (body + headers) the broker accepts. */
  readonly maxPayloadBytes: number;
  /**
   * How long the broker waits for an ack before redelivering, for a
   * subscription with this handler timeout (undefined: no such deadline).
   * The pool signals `working()` well within it.
   */
  ackDeadlineMs?(handlerTimeoutMs: number): number;
  /** Prepares a topic for publishing (stream creation); idempotent, cached. */
  ensureTopic(topic: string, kind: MessageKind): Promise<void>;
  send(message: OutboundMessage, done: PublishCallback): void;
  subscribe(options: TransportSubscribeOptions, flow: FlowControl): Promise<TransportSubscription>;
  health(): TransportHealth;
  /** Waits (up to the deadline) for outstanding sends, then disconnects. */
  close(deadline: AbortSignal): Promise<void>;
}

/** What every transport factory receives from the bus. */
export interface TransportContext {
  readonly clientId: string;
  readonly logger: Logger;
}
