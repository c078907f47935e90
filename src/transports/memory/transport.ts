/** The in-memory transport: the embedded default, same contract as the brokers. */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { encodedSize } from '../../core/envelope.ts';
import { PayloadTooLargeError } from '../../core/errors.ts';
import type {
  FlowControl,
  InboundMessage,
  OutboundMessage,
  ParkingLot,
  PublishCallback,
  PublishOutcome,
  Transport,
  TransportContext,
  TransportFeatures,
  TransportHealth,
  TransportSubscribeOptions,
  TransportSubscription,
} from '../../core/transport.ts';
import {
  type ConsumerGroup,
  defaultMemoryBroker,
  type GroupMember,
  type MemoryBroker,
  type TopicLog,
} from './broker.ts';
import { type MemoryTransportOptions, type ResolvedMemoryOptions, resolveMemoryOptions } from './options.ts';
import { memoryParkingLot } from './parking-lot.ts';

const BATCH = 256;

/** Small deterministic PRNG (mulberry32) so chaos runs can be replayed by seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Delivery implements InboundMessage {
  readonly topic: string;
  readonly data: Uint8Array;
  readonly headers: Readonly<Record<string, string>>;
  readonly key: string | undefined;
  readonly deliveryCount: number;
  readonly sequence: number;
  readonly #member: Member;
  #settled = false;

  constructor(topic: string, seq: number, log: TopicLog, count: number, member: Member) {
    const stored = log.get(seq);
    this.topic = topic;
    this.sequence = seq;
    this.data = stored?.data ?? new Uint8Array();
    this.headers = stored?.headers ?? {};
    this.key = stored?.key;
    this.deliveryCount = count;
    this.#member = member;
  }

  ack(): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#member.settle(this.sequence, 'ack', 0);
  }
  nak(delayMs = 0): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#member.settle(this.sequence, 'nak', delayMs);
  }
  term(_reason: string): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#member.settle(this.sequence, 'ack', 0);
  }
  working(): void {}
}

class Member implements GroupMember, TransportSubscription {
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

  #idle(): Promise<void> {
    return new Promise((resolve) => {
      this.#wakeUp = resolve;
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
        this.#flow.deliver(new Delivery(this.#topic.name, seq, this.#topic, count, this));
        delivered++;
      }
      if (delivered === 0) {
        const idle = this.#idle();
        const onAbort = (): void => this.wake();
        signal.addEventListener('abort', onAbort, { once: true });
        await idle;
        signal.removeEventListener('abort', onAbort);
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

  settle(seq: number, outcome: 'ack' | 'nak', delayMs: number): void {
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

class MemoryTransport implements Transport {
  readonly kind = 'memory' as const;
  readonly features: TransportFeatures = {
    persistent: true,
    consumerGroups: true,
    newSubscriberReceivesOldMessages: true,
    brokerDeduplication: true,
  };
  readonly maxPayloadBytes: number;
  readonly #broker: MemoryBroker;
  readonly #options: ResolvedMemoryOptions;
  readonly #members = new Set<Member>();
  #done: Array<[PublishCallback, PublishOutcome]> = [];
  #flushScheduled = false;
  #closed = false;

  constructor(broker: MemoryBroker, options: ResolvedMemoryOptions) {
    this.#broker = broker;
    this.#options = options;
    this.maxPayloadBytes = options.maxPayloadBytes;
  }

  async parkingLot(topic: string, group: string): Promise<ParkingLot> {
    return memoryParkingLot(this.#broker, topic, group);
  }

  async ensureTopic(topic: string): Promise<void> {
    this.#broker.topic(topic);
  }

  send(message: OutboundMessage, done: PublishCallback): void {
    let outcome: PublishOutcome;
    const size = encodedSize(message.data, message.headers, message.msgId);
    if (size > this.maxPayloadBytes) {
      outcome = { ok: false, error: new PayloadTooLargeError(size, this.maxPayloadBytes) };
    } else {
      const { seq, duplicate } = this.#broker
        .topic(message.topic)
        .append({ data: message.data, headers: message.headers, key: message.key }, message.msgId);
      outcome = duplicate ? { ok: true, sequence: seq, duplicate: true } : { ok: true, sequence: seq };
    }
    // Results are reported asynchronously (never inside send), batched per microtask.
    this.#done.push([done, outcome]);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(() => this.#flushDone());
    }
  }

  #flushDone(): void {
    this.#flushScheduled = false;
    const batch = this.#done;
    this.#done = [];
    for (const [done, outcome] of batch) done(outcome);
  }

  async subscribe(options: TransportSubscribeOptions, flow: FlowControl): Promise<TransportSubscription> {
    const topic = this.#broker.topic(options.topic);
    const member = new Member(topic, topic.group(options.group), flow, options, this.#options.chaos);
    this.#members.add(member);
    member.start();
    return {
      stop: () => member.stop(),
      close: async () => {
        await member.close();
        this.#members.delete(member);
      },
    };
  }

  health(): TransportHealth {
    return { connected: !this.#closed, details: { topics: this.#broker.topics().length } };
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const m of this.#members) await m.close();
    this.#members.clear();
  }
}

export async function createMemoryTransport(
  options: MemoryTransportOptions | undefined,
  _ctx: TransportContext,
): Promise<Transport> {
  const resolved = resolveMemoryOptions(options);
  return new MemoryTransport(options?.broker ?? defaultMemoryBroker(), resolved);
}
