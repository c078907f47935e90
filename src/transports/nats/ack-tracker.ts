/**
 * Per-subscription delivery bookkeeping and the delivered message objects.
 *
 * - A message is "in flight" from delivery until its first settlement. A broker
 *   redelivery of an in-flight sequence (AckWait expired while the handler
 *   still runs) is not delivered twice: the in-flight message adopts the new
 *   reply subject, so its eventual ack/nak/working reaches the live delivery.
 * - Sequences this subscription acked or terminated are remembered (ranges);
 *   a redelivery of one of them (ack lost in a crash) is acked again and skipped.
 * - Acks go out on the core connection (fire and forget; a lost ack means a
 *   redelivery, which the above absorbs). With the explicit policy, one per
 *   message. With AckAll (the default), finished messages are only recorded
 *   and ONE ack for the highest finished sequence below the lowest unfinished
 *   one is sent per flush (every few ms, or every 256 messages): the broker
 *   treats it as acking everything below. A nak-ed sequence blocks that prefix
 *   until it was redelivered and finished, so an AckAll ack never covers it.
 */
import { type Settlement, SettleOnce } from '../../core/settle-once.ts';
import type { DeliveryLane, InboundMessage } from '../../core/transport.ts';
import { SequenceSet } from './sequence-set.ts';

const encoder = new TextEncoder();
const ACK = encoder.encode('+ACK');
const NAK = encoder.encode('-NAK');
const WPI = encoder.encode('+WPI');
const TERM = encoder.encode('+TERM');

export type AckSend = (reply: string, payload: Uint8Array) => void;

/**
 * Produces a message's headers on first use: decoding NATS headers was a tenth
 * of the consume profile, and an envelope's handler path does not need them
 * (everything is in the body) unless the handler or a dead letter asks.
 */
export type HeaderReader = () => Readonly<Record<string, string>>;

export class NatsInboundMessage extends SettleOnce implements InboundMessage {
  readonly topic: string;
  readonly data: Uint8Array;
  readonly key: string | undefined = undefined;
  readonly deliveryCount: number;
  readonly sequence: number;
  /** Reply subject of the newest live delivery of this sequence. */
  reply: string;
  /** The owned partition it came from (partitioned groups). */
  lane: DeliveryLane | undefined = undefined;
  readonly generation: number;
  readonly #tracker: AckTracker;
  #headers: Readonly<Record<string, string>> | undefined;
  #readHeaders: HeaderReader | undefined;

  constructor(
    tracker: AckTracker,
    topic: string,
    data: Uint8Array,
    headers: HeaderReader,
    deliveryCount: number,
    sequence: number,
    reply: string,
  ) {
    super();
    this.#tracker = tracker;
    this.generation = tracker.generation;
    this.topic = topic;
    this.data = data;
    this.#readHeaders = headers;
    this.deliveryCount = deliveryCount;
    this.sequence = sequence;
    this.reply = reply;
  }

  get headers(): Readonly<Record<string, string>> {
    if (this.#headers === undefined) {
      this.#headers = (this.#readHeaders as HeaderReader)();
      this.#readHeaders = undefined;
    }
    return this.#headers;
  }

  /**
   * A message of a partition this member no longer owns: its settlement would
   * reach a consumer generation that is gone or, worse, act for the new owner.
   */
  protected override fenced(): boolean {
    const lane = this.lane;
    if (lane === undefined || lane.stillOwned()) return false;
    this.#tracker.forget(this);
    return true;
  }

  protected onSettle(settlement: Settlement): void {
    switch (settlement.how) {
      case 'ack':
        this.#tracker.ack(this.sequence, this.reply);
        this.#tracker.settled(this, true);
        return;
      case 'nak': {
        const { delayMs } = settlement;
        const payload =
          delayMs !== undefined && delayMs > 0
            ? encoder.encode(`-NAK {"delay":${Math.round(delayMs) * 1_000_000}}`)
            : NAK;
        this.#tracker.sendNak(this.sequence, this.reply, payload);
        this.#tracker.settled(this, false);
        return;
      }
      case 'term': {
        const { reason } = settlement;
        const payload = this.#tracker.termWithReason() && reason ? encoder.encode(`+TERM ${reason}`) : TERM;
        this.#tracker.send(this.reply, payload);
        this.#tracker.settled(this, true);
        return;
      }
    }
  }

  protected override onWorking(): void {
    this.#tracker.send(this.reply, WPI);
  }
}

export interface AckTrackerStats {
  readonly inFlight: number;
  readonly skippedAcked: number;
  readonly skippedInFlight: number;
  readonly settledRanges: number;
  /** AckAll acks sent (each covering every finished message below it). */
  readonly ackAllFlushes: number;
  /** Finished messages waiting for an AckAll ack (held behind an unfinished one). */
  readonly awaitingAck: number;
}

/** Finished messages per AckAll flush at most; a timer flushes smaller batches. */
const ACK_ALL_BATCH = 256;
const ACK_ALL_DELAY_MS = 5;

export class AckTracker {
  readonly send: AckSend;
  readonly termWithReason: () => boolean;
  readonly #all: boolean;
  /** AckAll: finished sequences not yet covered by a sent ack → their reply subject. */
  readonly #unacked = new Map<number, string>();
  /** AckAll: nak-ed sequences; the ack prefix must not pass them until they were redelivered. */
  readonly #blocked = new Set<number>();
  #flushTimer: NodeJS.Timeout | undefined;
  #ackAllFlushes = 0;
  readonly #inFlight = new Map<number, NatsInboundMessage>();
  readonly #settled: SequenceSet;
  #generation = 0;
  /** The consumer's ack floor when we attached: everything <= it was settled before us. */
  #floor = 0;
  #skippedAcked = 0;
  #skippedInFlight = 0;
  #heldNaks: Map<number, { reply: string; readonly payload: Uint8Array }> | undefined;

  /**
   * `settled` may be shared by the consumer generations of one partition in
   * this process: after a rewind, what an earlier generation settled (also
   * late, after the rewind) is recognised and skipped instead of run again.
   */
  constructor(
    send: AckSend,
    termWithReason: () => boolean,
    mode: 'all' | 'explicit' = 'explicit',
    settled: SequenceSet = new SequenceSet(),
  ) {
    this.#settled = settled;
    this.send = send;
    this.termWithReason = termWithReason;
    this.#all = mode === 'all';
  }

  get mode(): 'all' | 'explicit' {
    return this.#all ? 'all' : 'explicit';
  }

  /** A message finished: ack it now (explicit) or record it for the next AckAll flush. */
  ack(sequence: number, reply: string): void {
    if (!this.#all) {
      this.send(reply, ACK);
      return;
    }
    this.#unacked.set(sequence, reply);
  }

  #scheduleFlush(): void {
    if (this.#unacked.size >= ACK_ALL_BATCH) {
      this.flush();
      return;
    }
    if (this.#flushTimer === undefined) {
      this.#flushTimer = setTimeout(() => this.flush(), ACK_ALL_DELAY_MS);
      this.#flushTimer.unref();
    }
  }

  /** AckAll: acks the highest finished sequence below every unfinished or nak-ed one. */
  flush(): void {
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    if (this.#unacked.size === 0) return;
    let limit = Number.POSITIVE_INFINITY;
    for (const sequence of this.#inFlight.keys()) if (sequence < limit) limit = sequence;
    for (const sequence of this.#blocked) if (sequence < limit) limit = sequence;
    if (this.#heldNaks) for (const sequence of this.#heldNaks.keys()) if (sequence < limit) limit = sequence;
    let best = -1;
    let bestReply = '';
    for (const [sequence, reply] of this.#unacked) {
      if (sequence < limit && sequence > best) {
        best = sequence;
        bestReply = reply;
      }
    }
    if (best < 0) return;
    this.send(bestReply, ACK);
    this.#ackAllFlushes++;
    for (const sequence of this.#unacked.keys()) if (sequence <= best) this.#unacked.delete(sequence);
  }

  dispose(): void {
    this.flush();
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
  }

  get generation(): number {
    return this.#generation;
  }

  stats(): AckTrackerStats {
    return {
      inFlight: this.#inFlight.size,
      skippedAcked: this.#skippedAcked,
      skippedInFlight: this.#skippedInFlight,
      settledRanges: this.#settled.ranges,
      ackAllFlushes: this.#ackAllFlushes,
      awaitingAck: this.#unacked.size,
    };
  }

  /** A message to deliver, or undefined when it is a duplicate (handled here). */
  accept(
    topic: string,
    data: Uint8Array,
    headers: HeaderReader,
    deliveryCount: number,
    sequence: number,
    reply: string,
  ): NatsInboundMessage | undefined {
    if (this.#absorbDuplicate(sequence, reply)) return undefined;
    this.#blocked.delete(sequence); // a nak-ed one came back: it is in flight again
    const message = new NatsInboundMessage(this, topic, data, headers, deliveryCount, sequence, reply);
    this.#inFlight.set(sequence, message);
    return message;
  }

  /** A message that arrived after intake stopped: never delivered, handed back to the broker. */
  refuse(sequence: number, reply: string): void {
    if (this.#absorbDuplicate(sequence, reply)) return;
    this.sendNak(sequence, reply, NAK);
  }

  /**
   * The broker redelivers nak'ed messages in the order the naks arrive, before
   * anything new. Naks sent while shutting down (the bus releasing unfinished
   * messages, plus messages refused after stop) are therefore held and sent in
   * stream order by releaseNaks(), so the next consumer sees them in order.
   */
  sendNak(sequence: number, reply: string, payload: Uint8Array): void {
    if (this.#heldNaks === undefined) this.send(reply, payload);
    else this.#heldNaks.set(sequence, { reply, payload });
  }

  holdNaks(): void {
    this.#heldNaks ??= new Map();
  }

  releaseNaks(): void {
    this.flush(); // acks for what finished go out before the naks
    const held = this.#heldNaks;
    this.#heldNaks = undefined;
    if (held === undefined) return;
    for (const sequence of [...held.keys()].sort((a, b) => a - b)) {
      const nak = held.get(sequence);
      if (nak !== undefined) this.send(nak.reply, nak.payload);
    }
  }

  #absorbDuplicate(sequence: number, reply: string): boolean {
    const held = this.#heldNaks?.get(sequence);
    if (held !== undefined) {
      held.reply = reply; // a redelivery of one we are about to nak: nak the live one
      return true;
    }
    const live = this.#inFlight.get(sequence);
    if (live !== undefined) {
      live.reply = reply;
      this.#skippedInFlight++;
      return true;
    }
    if (sequence <= this.#floor || this.#settled.has(sequence)) {
      // Finished before (its ack was lost): ack it again. Under AckAll it joins
      // the next flush, which never passes an unfinished or nak-ed sequence.
      this.ack(sequence, reply);
      if (this.#all) this.#scheduleFlush();
      this.#skippedAcked++;
      return true;
    }
    return false;
  }

  /** Called by a message on its first settlement. */
  settled(message: NatsInboundMessage, forGood: boolean): void {
    if (message.generation !== this.#generation) return;
    if (this.#inFlight.get(message.sequence) === message) this.#inFlight.delete(message.sequence);
    if (forGood) this.#settled.add(message.sequence);
    else if (this.#all) this.#blocked.add(message.sequence);
    if (this.#inFlight.size === 0) {
      if (this.#all) this.flush();
      this.onIdle?.();
    } else if (this.#all && this.#unacked.size > 0) {
      this.#scheduleFlush();
    }
  }

  /**
   * A message let go without settlement (its partition was revoked): no longer
   * in flight here; the partition's next consumer generation delivers it again.
   */
  forget(message: NatsInboundMessage): void {
    if (message.generation !== this.#generation) return;
    if (this.#inFlight.get(message.sequence) !== message) return;
    this.#inFlight.delete(message.sequence);
    if (this.#inFlight.size === 0) this.onIdle?.();
  }

  /** Called whenever the last in-flight message was settled. */
  onIdle: (() => void) | undefined;

  /** Resolves when nothing is in flight any more, or when `signal` aborts. */
  whenIdle(signal: AbortSignal): Promise<void> {
    if (this.#inFlight.size === 0 || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const previous = this.onIdle;
      const done = (): void => {
        signal.removeEventListener('abort', done);
        this.onIdle = previous;
        resolve();
      };
      this.onIdle = () => {
        previous?.();
        done();
      };
      signal.addEventListener('abort', done, { once: true });
    });
  }

  get inFlight(): number {
    return this.#inFlight.size;
  }

  get holdingNaks(): boolean {
    return this.#heldNaks !== undefined;
  }

  /** Where a recreated consumer must start so nothing unsettled is skipped. */
  resumeSequence(): number {
    return this.#settled.firstMissingAbove(this.#floor);
  }

  setFloor(floor: number): void {
    if (floor > this.#floor) this.#floor = floor;
  }

  /** The stream was recreated: sequences start over, forget everything. */
  reset(): void {
    this.#generation++;
    this.#unacked.clear();
    this.#blocked.clear();
    this.#inFlight.clear();
    this.#settled.clear();
    this.#floor = 0;
  }
}
