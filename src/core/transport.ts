/**
 * The contract between the bus core and a transport (memory, NATS, Kafka, or
 * one written outside this package). Public: `createEventBus({ transport })`
 * takes a {@link TransportFactory}; a transport author checks their transport
 * with `runTransportContract` and `runConformanceSuite` (`jxt-eventbus/testing`).
 *
 * Split of responsibilities:
 * - the bus owns envelopes, the publish window, PublishResults, the actor pool,
 *   dead-lettering and shutdown ordering;
 * - a transport owns the wire: confirmed sending (with its own shared timeout
 *   sweep and same-id retries), intake sized to the pool's free capacity, and
 *   how acks reach the broker (per message or coalesced).
 */

import type { GroupMetrics } from '../metrics/metrics.ts';
import type { EventBusError } from './errors.ts';
import type { Logger } from './logger.ts';
import type { StartFrom } from './types.ts';

export type MessageKind = 'envelope' | 'raw';

/** The built-in transports, accepted by name as `createEventBus({ transport: 'nats' })`. */
export type TransportKind = 'memory' | 'nats' | 'kafka';

/**
 * What a transport can do. Read by the bus (dead letters, shutdown), by the
 * contract and conformance suites (which scenarios apply) and shown as
 * `bus.features`: declare them honestly, the contract suite checks them.
 */
export interface TransportFeatures {
  /** Messages survive a subscriber going away and are delivered later. */
  readonly persistent: boolean;
  /** Named consumer groups: each group sees every message, members share. */
  readonly consumerGroups: boolean;
  /** A new group sees messages published before it subscribed. */
  readonly newSubscriberReceivesOldMessages: boolean;
  /** The broker de-duplicates a re-send with the same `msgId` (within some window). */
  readonly brokerDeduplication: boolean;
  /**
   * How long the broker remembers a `msgId` for de-duplication, when the
   * transport knows it (the window it configures on the topics it creates).
   * Only with `brokerDeduplication`. The outbox relay warns before its lag
   * outgrows it (a re-send older than the window is stored twice).
   */
  readonly duplicateWindowMs?: number;
  /**
   * A nak-ed message is delivered again while the group keeps running. False:
   * it is read again only after the group's assignment changes or it restarts
   * (Kafka: the committed offset stays before it). The bus retries handlers in
   * place either way; a nak only hands work back at shutdown or after a crash.
   */
  readonly nakRedelivers: boolean;
  /** `nak(delayMs)` holds the redelivery back for about `delayMs`. */
  readonly nakDelay: boolean;
}

export interface OutboundMessage {
  readonly topic: string;
  readonly kind: MessageKind;
  /** Encoded body. */
  readonly data: Uint8Array;
  /** Wire headers (X-Event-ID, …); the transport adds its own (see Transport.ownedHeaders). */
  readonly headers: Readonly<Record<string, string>>;
  /** Broker de-duplication id: the eventId for envelopes. */
  readonly msgId: string;
  /** Partitioning key (aggregate id); Kafka record key. */
  readonly key: string | undefined;
}

/** One event moved to `<topic>.PARKED` (see ParkingLot). */
export interface ParkedEntry {
  /** Its sequence in the parked topic. */
  readonly sequence: number;
  readonly data: Uint8Array;
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * The park policy's persistent state for one topic and group: the parked
 * aggregates, and their events in `<topic>.PARKED` (oldest first). Written
 * before the dead letter that parks an aggregate, so a restart (or another
 * member) never lets the aggregate's newer events run first.
 */
export interface ParkingLot {
  /** Parked aggregates with the reason they were parked. */
  list(): Promise<Map<string, string>>;
  park(key: string, reason: string): Promise<void>;
  unpark(key: string): Promise<void>;
  /** The parked events of `key` for this group, oldest first. */
  read(key: string): Promise<ParkedEntry[]>;
  /** Deletes one parked event (it was replayed). */
  remove(entry: ParkedEntry): Promise<void>;
  /**
   * Follows what other members (and operators) change: parks and unparks
   * written by other processes, and resume requests. Writes of this parking
   * lot itself are not reported back. Optional: without it, a member learns
   * the parked aggregates only from `list()`.
   */
  watch?(watcher: ParkingLotWatcher): Promise<{ stop(): Promise<void> }>;
  /** Answers a resume request (see ResumeRequest). */
  answer?(answer: Omit<ResumeAnswer, 'member'>): Promise<void>;
  /**
   * Asks the member that owns `key` to resume it (the operator's
   * `eventbus dlq requeue --parked`, or `resume()` on a member that does not
   * own the aggregate). Calls `onAnswer` for each answer (accepted, then
   * done); resolves with the last one, or undefined when none came within
   * `timeoutMs`.
   */
  requestResume?(
    key: string,
    timeoutMs: number,
    onAnswer?: (answer: ResumeAnswer) => void,
  ): Promise<ResumeAnswer | undefined>;
}

/** Asks whichever member owns the aggregate `key` to resume it. */
export interface ResumeRequest {
  /** Unique per request: the answers carry it. */
  readonly id: string;
  readonly key: string;
}

/** A member's answer to a ResumeRequest: `accepted` at once, `done` once the replay settled. */
export interface ResumeAnswer {
  readonly id: string;
  readonly key: string;
  readonly state: 'accepted' | 'done';
  /** Who answered (the bus's member id). */
  readonly member: string;
  /** done: whether the aggregate was parked here and is resumed now. */
  readonly resumed?: boolean;
  /** done: how many parked events were replayed. */
  readonly replayed?: number;
  /** done: why the resume failed. */
  readonly error?: string;
}

export interface ParkingLotWatcher {
  /** Another process parked (`parked`) or unparked `key`. */
  changed(key: string, parked: boolean, reason: string): void;
  /** Somebody asks the member that owns `request.key` to resume it. */
  resumeRequested(request: ResumeRequest): void;
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

/**
 * A partition this member owns for a while: a JetStream partition of a
 * consumer group (held by a lease), a Kafka partition (held by the group
 * assignment), a memory-transport partition. Ownership can end at any moment
 * (handoff, lease lost, rebalance, rewind after a delivery gap); the checks
 * below are synchronous and cheap, so the pool asks before every attempt.
 *
 * The model (README, "Ordering across the members of a group"): a message
 * of a lane starts a handler only while `mayStart()`; its settlement and the
 * handler's effects count only while `stillOwned()`. `mayStart()` turns
 * false first (graceful handoff: nothing new starts, running handlers may
 * finish and settle); `stillOwned()` turns false at the latest when the
 * lease could have expired, judged on this process's monotonic clock, before
 * any other member may take over.
 */
export interface DeliveryLane {
  /** For logs and metrics: `<topic>/<group>/p<n>` or similar. */
  readonly id: string;
  /** May a handler of this lane start (or retry) now? */
  mayStart(): boolean;
  /** Do this member's acks and the handler's effects still count? */
  stillOwned(): boolean;
  /** A message of this lane left the pool unrun and unsettled (the lane was revoked). */
  dropped(message: InboundMessage): void;
}

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
  /** The owned partition it came from; undefined for unpartitioned intake (always owned). */
  readonly lane?: DeliveryLane | undefined;
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
  /**
   * Called (and awaited) before a lane this member just took over delivers
   * anything: the park policy reloads which aggregates are parked, so the
   * new owner never runs a parked aggregate's newer events. A rejection
   * means "not ready": the transport retries before delivering.
   */
  beforeLane?(): Promise<void>;
}

export interface TransportSubscribeOptions {
  readonly topic: string;
  readonly group: string;
  readonly kind: MessageKind;
  /** The handler timeout the pool applies; transports keep their ack deadline above it. */
  readonly handlerTimeoutMs: number;
  /** Where the group starts when it does not exist yet (default 'earliest'); an existing group keeps its position. */
  readonly startFrom?: StartFrom | undefined;
}

export interface TransportSubscription {
  /**
   * Does this member own the aggregate's lane now (partitioned groups)?
   * Absent: every member that receives the aggregate owns it.
   */
  owns?(key: string): boolean;
  /** Stops intake; resolves when no more messages will be delivered. */
  stop(): Promise<void>;
  /** Releases broker resources; called after in-flight messages were settled. */
  close(): Promise<void>;
}

export interface TransportHealth {
  readonly connected: boolean;
  /** What is wrong with the broker now (e.g. JetStream unavailable); absent when nothing is. */
  readonly problems?: readonly string[];
  readonly details?: Readonly<Record<string, unknown>>;
}

export interface Transport {
  /** Its name in health reports and metrics ('nats', 'kafka', 'memory', 'redis-streams', …). */
  readonly kind: string;
  readonly features: TransportFeatures;
  /**
   * Headers this transport adds on the wire (NATS: `Nats-Msg-Id`). They come
   * back on delivered messages but belong to that one wire copy, so the bus
   * drops them before it re-publishes a delivered message (dead letter, park).
   */
  readonly ownedHeaders?: readonly string[];
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
  /**
   * Where the park policy keeps its state with the broker (which aggregates
   * a group has parked, and their parked events), so it survives restarts.
   * Optional: without it, parked state lives in the consuming process only.
   */
  parkingLot?(topic: string, group: string): Promise<ParkingLot>;
  subscribe(options: TransportSubscribeOptions, flow: FlowControl): Promise<TransportSubscription>;
  health(): TransportHealth;
  /** Waits (up to the deadline) for outstanding sends, then disconnects. */
  close(deadline: AbortSignal): Promise<void>;
}

/**
 * What `createEventBus({ transport })` takes: `nats({...})`, `kafka({...})`,
 * `memory({...})` or a transport of your own. Each `create` call makes a new
 * transport: the bus calls it once and then owns the result (and closes it);
 * the contract suite calls it once per member it needs.
 */
export interface TransportFactory {
  /** The transport's name (`Transport.kind`), known before it connects. */
  readonly kind: string;
  create(ctx: TransportContext): Promise<Transport>;
}

/** What every transport factory receives from the bus. */
export interface TransportContext {
  readonly clientId: string;
  readonly logger: Logger;
  /**
   * 'jxt-go': a mixed fleet with the Go SDK. On NATS, events are then published
   * on the plain topic subject the Go SDK's consumers filter on, not on
   * partition subjects.
   */
  readonly interop?: 'none' | 'jxt-go';
  /** Metrics of a consumer group's partition ownership (the bus's registry). */
  readonly groupMetrics?: (topic: string, group: string) => GroupMetrics;
}
