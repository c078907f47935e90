/** A message handed to the pool by the memory transport, and the chaos PRNG both subscription kinds use. */
import { type Settlement, SettleOnce } from '../../core/settle-once.ts';
import type { DeliveryLane, InboundMessage } from '../../core/transport.ts';
import type { StoredMessage } from './broker.ts';

export type Outcome = 'ack' | 'nak';

/** Whoever delivered the message and takes its settlement. */
export interface Settler {
  settle(seq: number, outcome: Outcome, delayMs: number): void;
}

export class Delivery extends SettleOnce implements InboundMessage {
  readonly topic: string;
  readonly data: Uint8Array;
  readonly headers: Readonly<Record<string, string>>;
  readonly key: string | undefined;
  readonly deliveryCount: number;
  readonly sequence: number;
  readonly lane: DeliveryLane | undefined;
  readonly #settler: Settler;

  constructor(
    topic: string,
    stored: StoredMessage,
    count: number,
    settler: Settler,
    lane: DeliveryLane | undefined,
  ) {
    super();
    this.topic = topic;
    this.sequence = stored.seq;
    this.data = stored.data;
    this.headers = stored.headers;
    this.key = stored.key;
    this.deliveryCount = count;
    this.#settler = settler;
    this.lane = lane;
  }

  /** term acks: the memory broker has no separate "terminated" state. */
  protected onSettle(settlement: Settlement): void {
    if (settlement.how === 'nak') this.#settler.settle(this.sequence, 'nak', settlement.delayMs ?? 0);
    else this.#settler.settle(this.sequence, 'ack', 0);
  }
}

/** Small deterministic PRNG (mulberry32) so chaos runs can be replayed by seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
