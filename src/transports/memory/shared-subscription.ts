/**
 * A member of a group on a raw topic: the group's members share one cursor
 * (and its redelivery list), so they split the messages without any order
 * between them, like a plain JetStream pull consumer with several clients.
 * Raw messages promise no order; envelope topics use partitioned-subscription.ts.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { FlowControl, TransportSubscribeOptions, TransportSubscription } from '../../core/transport.ts';
import { wakeOrAbort } from '../../core/waiting.ts';
import type { ConsumerGroup, GroupMember, StoredMessage, TopicLog } from './broker.ts';
import { Delivery, type Outcome, prng, type Settler } from './delivery.ts';
import type { ResolvedMemoryOptions } from './options.ts';

const BATCH = 256;

export class SharedCursorSubscription implements GroupMember, TransportSubscription, Settler {
  readonly #topic: TopicLog;
  readonly #group: ConsumerGroup;
  readonly #flow: FlowControl;
  readonly #options: TransportSubscribeOptions;
  readonly #chaos: ResolvedMemoryOptions['chaos'];
  readonly #random: () => number;
  readonly #abort = new AbortController();
  #wakeUp: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #timers = new Set<NodeJS.Timeout>();

  constructor(
    topic: TopicLog,
    group: ConsumerGroup,
    flow: FlowControl,
    options: TransportSubscribeOptions,
    chaos: ResolvedMemoryOptions['chaos'],
  ) {
    this.#topic = topic;
    this.#group = group;
    this.#flow = flow;
    this.#options = options;
    this.#chaos = chaos;
    this.#random = prng(chaos?.seed ?? 1);
  }

  start(): void {
    this.#group.members.add(this);
    this.#loop = this.#run();
  }

  wake(): void {
    const w = this.#wakeUp;
    this.#wakeUp = undefined;
    w?.();
  }

  #idle(signal: AbortSignal): Promise<void> {
    return wakeOrAbort(signal, (wake) => {
      this.#wakeUp = wake;
      return () => {
        if (this.#wakeUp === wake) this.#wakeUp = undefined;
      };
    });
  }

  /** Takes the next sequence for this group: redeliveries first (in order), then new messages. */
  #take(): number | undefined {
    const g = this.#group;
    while (g.redeliver.length > 0) {
      const seq = g.redeliver.shift() as number;
      if (this.#topic.get(seq)) return seq;
      g.deliveries.delete(seq); // discarded by retention meanwhile
    }
    if (g.cursor < this.#topic.firstSeq) g.cursor = this.#topic.firstSeq;
    if (g.cursor <= this.#topic.lastSeq) return g.cursor++;
    return undefined;
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      let room = this.#flow.freeCapacity();
      if (room <= 0) {
        await this.#flow.waitForCapacity(signal);
        continue;
      }
      if (this.#chaos && this.#chaos.maxDelayMs > 0) {
        await new Promise<void>((r) => this.#after(this.#random() * (this.#chaos?.maxDelayMs ?? 0), r));
        if (signal.aborted) break;
      }
      let delivered = 0;
      room = Math.min(room, BATCH);
      while (delivered < room) {
        const seq = this.#take();
        if (seq === undefined) break;
        const count = (this.#group.deliveries.get(seq) ?? 0) + 1;
        this.#group.deliveries.set(seq, count);
        this.#group.inflight.set(seq, this);
        const stored = this.#topic.get(seq) as StoredMessage;
        this.#flow.deliver(new Delivery(this.#topic.name, stored, count, this, undefined));
        delivered++;
      }
      if (delivered === 0) {
        await this.#idle(signal);
      } else {
        // Let handlers, timers and I/O run between batches.
        await yieldToEventLoop();
      }
    }
  }

  #after(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    this.#timers.add(t);
  }

  settle(seq: number, outcome: Outcome, delayMs: number): void {
    const g = this.#group;
    if (g.inflight.get(seq) !== this) return;
    g.inflight.delete(seq);
    // Raw messages are at-most-once: a nak does not bring them back.
    const redeliver = outcome === 'nak' && this.#options.kind === 'envelope';
    if (!redeliver) {
      const chaos = this.#chaos;
      if (chaos && outcome === 'ack' && chaos.duplicateRate > 0 && this.#random() < chaos.duplicateRate) {
        g.requeue(seq); // a lost ack: the broker delivers it once more
        g.wakeAll();
        return;
      }
      g.deliveries.delete(seq);
      return;
    }
    if (delayMs > 0) {
      this.#after(delayMs, () => {
        g.requeue(seq);
        g.wakeAll();
      });
    } else {
      g.requeue(seq);
      g.wakeAll();
    }
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    this.wake();
    await this.#loop;
  }

  async close(): Promise<void> {
    await this.stop();
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.#group.members.delete(this);
    // Anything this member still holds unsettled goes back to the group, like an ack-wait expiry.
    let returned = false;
    for (const [seq, holder] of this.#group.inflight) {
      if (holder !== this) continue;
      this.#group.inflight.delete(seq);
      if (this.#options.kind === 'envelope') {
        this.#group.requeue(seq);
        returned = true;
      }
    }
    if (returned) this.#group.wakeAll();
  }
}
