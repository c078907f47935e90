/**
 * One lane (partition) of one consumer group, as the broker keeps it: which
 * of the lane's messages were never delivered, which wait for redelivery, and
 * which are out with a holder (the member that owns the lane now, or owned it
 * before). The memory counterpart of a NATS partition's durable consumer.
 *
 * Order within the lane: redeliveries (kept sorted) go before any message
 * that was never delivered, so a message that came back is handled before
 * later ones of its aggregate. Takeover: everything an earlier holder got and
 * did not settle comes back first, in log order, and that holder's late
 * settlements no longer count (they name a holder that is not current).
 */
import type { StoredMessage, TopicLog } from './broker.ts';

/** Whoever takes messages from the lane: one per ownership (a lease epoch). */
export type LaneHolder = object;

export interface Taken {
  readonly message: StoredMessage;
  /** 1 on first delivery, higher on redelivery. */
  readonly deliveryCount: number;
}

export class LaneQueue {
  readonly name: string;
  /** Next sequence to look at for never-delivered messages of this lane. */
  #next: number;
  /** Sequences to deliver again, sorted, so redeliveries keep log order. */
  readonly #redeliver: number[] = [];
  /** Delivered, not settled yet: sequence → the holder it went to. */
  readonly #pending = new Map<number, LaneHolder>();
  /** Nak-ed with a delay and not yet due: they belong to no holder meanwhile. */
  readonly #delayed = new Set<number>();
  readonly #deliveries = new Map<number, number>();
  #holder: LaneHolder | undefined;

  constructor(name: string, startSeq: number) {
    this.name = name;
    this.#next = startSeq;
  }

  get holder(): LaneHolder | undefined {
    return this.#holder;
  }

  /** Delivered and not settled (any holder), plus waiting to be delivered again. */
  get unsettled(): number {
    return this.#pending.size + this.#redeliver.length + this.#delayed.size;
  }

  /** A new owner starts here: what earlier holders left unsettled is delivered again first. */
  attach(holder: LaneHolder): void {
    this.#returnAll((h) => h !== holder);
    this.#holder = holder;
  }

  /** The owner lets the lane go (handoff done, lease lost, close): its unsettled messages come back. */
  detach(holder: LaneHolder): void {
    if (this.#holder !== holder) return;
    this.#returnAll(() => true);
    this.#holder = undefined;
  }

  /** The next message for the current holder: redeliveries first, then the lane's next new one. */
  take(holder: LaneHolder, log: TopicLog): Taken | undefined {
    if (this.#holder !== holder) return undefined;
    let message: StoredMessage | undefined;
    while (message === undefined && this.#redeliver.length > 0) {
      const seq = this.#redeliver.shift() as number;
      message = log.get(seq);
      if (message === undefined) this.#deliveries.delete(seq); // discarded by retention meanwhile
    }
    if (message === undefined) message = this.#nextNew(log);
    if (message === undefined) return undefined;
    const deliveryCount = (this.#deliveries.get(message.seq) ?? 0) + 1;
    this.#deliveries.set(message.seq, deliveryCount);
    this.#pending.set(message.seq, holder);
    return { message, deliveryCount };
  }

  /** Processed (or given up on): never again. False when `holder` no longer holds it. */
  ack(holder: LaneHolder, seq: number): boolean {
    if (this.#pending.get(seq) !== holder) return false;
    this.#pending.delete(seq);
    this.#deliveries.delete(seq);
    return true;
  }

  /** Deliver it again, before newer messages of the lane. False when `holder` no longer holds it. */
  nak(holder: LaneHolder, seq: number): boolean {
    if (this.#pending.get(seq) !== holder) return false;
    this.#pending.delete(seq);
    this.#requeue(seq);
    return true;
  }

  /** Nak with a delay: parked until `due(seq)`, or until the lane changes hands (then at once). */
  defer(holder: LaneHolder, seq: number): boolean {
    if (this.#pending.get(seq) !== holder) return false;
    this.#pending.delete(seq);
    this.#delayed.add(seq);
    return true;
  }

  /** A deferred nak is due; false when a takeover already brought it back. */
  due(seq: number): boolean {
    if (!this.#delayed.delete(seq)) return false;
    this.#requeue(seq);
    return true;
  }

  #nextNew(log: TopicLog): StoredMessage | undefined {
    if (this.#next < log.firstSeq) this.#next = log.firstSeq;
    const last = log.lastSeq;
    while (this.#next <= last) {
      const message = log.get(this.#next++);
      if (message !== undefined && message.lane === this.name) return message;
    }
    return undefined;
  }

  #returnAll(whose: (holder: LaneHolder) => boolean): void {
    for (const [seq, holder] of this.#pending) {
      if (!whose(holder)) continue;
      this.#pending.delete(seq);
      this.#requeue(seq);
    }
    for (const seq of this.#delayed) this.#requeue(seq);
    this.#delayed.clear();
  }

  #requeue(seq: number): void {
    const list = this.#redeliver;
    let i = list.length;
    while (i > 0 && (list[i - 1] as number) > seq) i--;
    if (list[i - 1] !== seq) list.splice(i, 0, seq);
  }
}
