/**
 * A fourth transport written only against the public seam (it imports from
 * the package's root entry point and nothing else), to prove that a transport
 * outside this package can be plugged in: `createEventBus({ transport: logTransport(broker) })`.
 *
 * An in-process append-only log per topic. A consumer group keeps a cursor,
 * the messages handed back for redelivery (nak-ed, or unsettled when a member
 * closed) and the acked ones. One member of a group receives at a time (an
 * exclusive consumer): the next member takes over when the active one closes,
 * after its in-flight messages were settled, so per-key order survives handoffs.
 */
import {
  type FlowControl,
  type InboundMessage,
  type OutboundMessage,
  PayloadTooLargeError,
  type PublishCallback,
  type Transport,
  type TransportFactory,
  type TransportFeatures,
  type TransportSubscribeOptions,
  type TransportSubscription,
} from '../../../src/index.ts';

interface Entry {
  readonly data: Uint8Array;
  readonly headers: Readonly<Record<string, string>>;
  readonly key: string | undefined;
}

class Group {
  next = 0;
  /** Handed back for redelivery; delivered before anything new, lowest first. */
  readonly again: number[] = [];
  readonly acked = new Set<number>();
  readonly inFlight = new Map<number, Member>();
  readonly deliveries = new Map<number, number>();
  readonly members: Member[] = [];
  readonly #wakers = new Set<() => void>();

  /** The next sequence for `member`, when it is the active one. */
  take(member: Member, log: readonly Entry[]): number | undefined {
    if (this.members[0] !== member) return undefined;
    this.again.sort((a, b) => a - b);
    let seq = this.again.shift();
    while (seq === undefined && this.next < log.length) {
      const candidate = this.next++;
      if (!this.acked.has(candidate)) seq = candidate;
    }
    if (seq === undefined) return undefined;
    this.inFlight.set(seq, member);
    this.deliveries.set(seq, (this.deliveries.get(seq) ?? 0) + 1);
    return seq;
  }

  settle(seq: number, member: Member, ok: boolean): void {
    if (this.inFlight.get(seq) !== member) return; // released already: someone else has it
    this.inFlight.delete(seq);
    if (ok) this.acked.add(seq);
    else this.again.push(seq);
    this.wake();
  }

  leave(member: Member): void {
    for (const [seq, owner] of this.inFlight) if (owner === member) this.settle(seq, member, false);
    const index = this.members.indexOf(member);
    if (index !== -1) this.members.splice(index, 1);
    this.wake();
  }

  /** Resolves on the next change (a message appended or handed back, a member gone) or abort. */
  changed(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.#wakers.delete(done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.#wakers.add(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  wake(): void {
    for (const waker of [...this.#wakers]) waker();
  }
}

class Topic {
  readonly log: Entry[] = [];
  readonly ids = new Set<string>();
  readonly groups = new Map<string, Group>();

  group(name: string): Group {
    let group = this.groups.get(name);
    if (group === undefined) {
      group = new Group();
      this.groups.set(name, group);
    }
    return group;
  }
}

/** The shared "broker": transports created on one broker see each other's messages. */
export class LogBroker {
  readonly #topics = new Map<string, Topic>();

  topic(name: string): Topic {
    let topic = this.#topics.get(name);
    if (topic === undefined) {
      topic = new Topic();
      this.#topics.set(name, topic);
    }
    return topic;
  }

  /** Appends, unless `msgId` was seen on the topic (de-duplication); returns the sequence or undefined. */
  append(name: string, entry: Entry, msgId: string | undefined): number | undefined {
    const topic = this.topic(name);
    if (msgId !== undefined && topic.ids.has(msgId)) return undefined;
    if (msgId !== undefined) topic.ids.add(msgId);
    topic.log.push(entry);
    for (const group of topic.groups.values()) group.wake();
    return topic.log.length - 1;
  }
}

class LogMessage implements InboundMessage {
  readonly lane = undefined;
  readonly topic: string;
  readonly sequence: number;
  readonly deliveryCount: number;
  readonly data: Uint8Array;
  readonly headers: Readonly<Record<string, string>>;
  readonly key: string | undefined;
  #settled = false;
  readonly #settle: (ok: boolean) => void;

  constructor(
    topic: string,
    sequence: number,
    deliveryCount: number,
    entry: Entry,
    settle: (ok: boolean) => void,
  ) {
    this.topic = topic;
    this.sequence = sequence;
    this.deliveryCount = deliveryCount;
    this.data = entry.data;
    this.headers = entry.headers;
    this.key = entry.key;
    this.#settle = settle;
  }
  ack(): void {
    this.#once(true);
  }
  nak(): void {
    this.#once(false);
  }
  term(): void {
    this.#once(true);
  }
  working(): void {}
  #once(ok: boolean): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#settle(ok);
  }
}

class Member implements TransportSubscription {
  readonly #stop = new AbortController();
  readonly #loop: Promise<void>;
  readonly #group: Group;

  constructor(topic: Topic, name: string, options: TransportSubscribeOptions, flow: FlowControl) {
    this.#group = topic.group(options.group);
    this.#group.members.push(this);
    this.#loop = this.#run(topic, name, flow);
  }

  async #run(topic: Topic, name: string, flow: FlowControl): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      // A batch sized to the pool's free room, as a broker pull would be.
      const room = flow.freeCapacity();
      if (room <= 0) {
        await flow.waitForCapacity(signal);
        continue;
      }
      let delivered = 0;
      for (; delivered < room; delivered++) {
        const seq = this.#group.take(this, topic.log);
        if (seq === undefined) break;
        const entry = topic.log[seq] as Entry;
        const count = this.#group.deliveries.get(seq) ?? 1;
        flow.deliver(new LogMessage(name, seq, count, entry, (ok) => this.#group.settle(seq, this, ok)));
      }
      if (delivered === 0) await this.#group.changed(signal);
      else await new Promise((resolve) => setImmediate(resolve)); // handlers and I/O run between batches
    }
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
  }

  async close(): Promise<void> {
    await this.stop();
    this.#group.leave(this);
  }
}

/** Declared honestly: the contract suite checks each one. */
const features: TransportFeatures = {
  persistent: true,
  consumerGroups: true,
  newSubscriberReceivesOldMessages: true,
  brokerDeduplication: true,
  nakRedelivers: true,
  nakDelay: false, // a nak hands the message back at once
};

class LogTransport implements Transport {
  readonly kind = 'log';
  readonly features = features;
  readonly maxPayloadBytes = 1024 * 1024;
  readonly #broker: LogBroker;
  readonly #members = new Set<Member>();
  #closed = false;

  constructor(broker: LogBroker) {
    this.#broker = broker;
  }

  async ensureTopic(topic: string): Promise<void> {
    this.#broker.topic(topic);
  }

  send(message: OutboundMessage, done: PublishCallback): void {
    let size = message.data.byteLength;
    for (const [name, value] of Object.entries(message.headers)) size += name.length + value.length;
    if (size > this.maxPayloadBytes) {
      const error = new PayloadTooLargeError(size, this.maxPayloadBytes);
      queueMicrotask(() => done({ ok: false, error }));
      return;
    }
    const entry = { data: message.data, headers: { ...message.headers }, key: message.key };
    const seq = this.#broker.append(message.topic, entry, message.msgId || undefined);
    queueMicrotask(() =>
      done(seq === undefined ? { ok: true, duplicate: true } : { ok: true, sequence: seq }),
    );
  }

  async subscribe(options: TransportSubscribeOptions, flow: FlowControl): Promise<TransportSubscription> {
    const member = new Member(this.#broker.topic(options.topic), options.topic, options, flow);
    this.#members.add(member);
    return member;
  }

  health(): { connected: boolean } {
    return { connected: !this.#closed };
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#members].map((member) => member.close()));
  }
}

export function logTransport(broker: LogBroker): TransportFactory {
  return { kind: 'log', create: async () => new LogTransport(broker) };
}
