/**
 * Per-subscription delivery bookkeeping and the delivered message objects.
 *
 * - A message is "in flight" from delivery until its first settlement. A broker
 *   redelivery of an in-flight sequence (AckWait expired while the handler
 *   still runs) is not delivered twice: the in-flight message adopts the new
 *   reply subject, so its eventual ack/nak/working reaches the live delivery.
 * - Sequences this subscription acked or terminated are remembered (ranges);
 *   a redelivery of one of them (ack lost in a crash) is acked again and skipped.
 * - Acks are explicit, one per message, published on the core connection
 *   (fire and forget; a lost ack means a redelivery, which the above absorbs).
 */
import type { InboundMessage } from '../../core/transport.ts';
import { SequenceSet } from './sequence-set.ts';

const encoder = new TextEncoder();
const ACK = encoder.encode('+ACK');
const NAK = encoder.encode('-NAK');
const WPI = encoder.encode('+WPI');
const TERM = encoder.encode('+TERM');

export type AckSend = (reply: string, payload: Uint8Array) => void;

export class NatsInboundMessage implements InboundMessage {
  readonly topic: string;
  readonly data: Uint8Array;
  readonly headers: Readonly<Record<string, string>>;
  readonly key: string | undefined = undefined;
  readonly deliveryCount: number;
  readonly sequence: number;
  /** Reply subject of the newest live delivery of this sequence. */
  reply: string;
  readonly generation: number;
  readonly #tracker: AckTracker;
  #settled = false;

  constructor(
    tracker: AckTracker,
    topic: string,
    data: Uint8Array,
    headers: Readonly<Record<string, string>>,
    deliveryCount: number,
    sequence: number,
    reply: string,
  ) {
    this.#tracker = tracker;
    this.generation = tracker.generation;
    this.topic = topic;
    this.data = data;
    this.headers = headers;
    this.deliveryCount = deliveryCount;
    this.sequence = sequence;
    this.reply = reply;
  }

  get settled(): boolean {
    return this.#settled;
  }

  ack(): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#tracker.send(this.reply, ACK);
    this.#tracker.settled(this, true);
  }

  nak(delayMs?: number): void {
    if (this.#settled) return;
    this.#settled = true;
    const payload =
      delayMs !== undefined && delayMs > 0
        ? encoder.encode(`-NAK {"delay":${Math.round(delayMs) * 1_000_000}}`)
        : NAK;
    this.#tracker.sendNak(this.sequence, this.reply, payload);
    this.#tracker.settled(this, false);
  }

  term(reason: string): void {
    if (this.#settled) return;
    this.#settled = true;
    const payload = this.#tracker.termWithReason() && reason ? encoder.encode(`+TERM ${reason}`) : TERM;
    this.#tracker.send(this.reply, payload);
    this.#tracker.settled(this, true);
  }

  working(): void {
    if (this.#settled) return;
    this.#tracker.send(this.reply, WPI);
  }
}

export interface AckTrackerStats {
  readonly inFlight: number;
  readonly skippedAcked: number;
  readonly skippedInFlight: number;
  readonly settledRanges: number;
}

export class AckTracker {
  readonly send: AckSend;
  readonly termWithReason: () => boolean;
  readonly #inFlight = new Map<number, NatsInboundMessage>();
  readonly #settled = new SequenceSet();
  #generation = 0;
  /** The consumer's ack floor when we attached: everything <= it was settled before us. */
  #floor = 0;
  #skippedAcked = 0;
  #skippedInFlight = 0;
  #heldNaks: Map<number, { reply: string; readonly payload: Uint8Array }> | undefined;

  constructor(send: AckSend, termWithReason: () => boolean) {
    this.send = send;
    this.termWithReason = termWithReason;
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
    };
  }

  /** A message to deliver, or undefined when it is a duplicate (handled here). */
  accept(
    topic: string,
    data: Uint8Array,
    headers: Readonly<Record<string, string>>,
    deliveryCount: number,
    sequence: number,
    reply: string,
  ): NatsInboundMessage | undefined {
    if (this.#absorbDuplicate(sequence, reply)) return undefined;
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
      this.send(reply, ACK);
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
    if (this.#inFlight.size === 0) this.onIdle?.();
  }

  /** Called whenever the last in-flight message was settled. */
  onIdle: (() => void) | undefined;

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
    this.#inFlight.clear();
    this.#settled.clear();
    this.#floor = 0;
  }
}
