/**
 * An in-process broker with the semantics of a durable stream: a log per
 * topic, named consumer groups (every group sees every message, a new group
 * starts from the beginning, or from the end with startFrom 'latest'), redelivery of nak-ed or abandoned messages, and
 * de-duplication of message ids within a window — the same contract the
 * brokers give, so tests on memory mean something on NATS.
 *
 * Envelope subscriptions split a topic's partitions between the members of a
 * group like NATS does (partitioned-subscription.ts): each message carries
 * its lane (p<fnv1a32(key) mod P>, or `plain` without a key), P is fixed when
 * the topic is created, and each group keeps one LaneQueue per lane plus a
 * lease store its members coordinate through. Raw subscriptions keep one
 * shared cursor per group (shared-subscription.ts).
 */

import type { StartFrom } from '../../core/types.ts';
import { laneNames, partitionOf, UNPARTITIONED_LANE } from '../../groups/lanes.ts';
import { MemoryLeaseStore } from '../../groups/lease-store.ts';
import { LaneQueue } from './lane-queue.ts';

export interface StoredMessage {
  readonly seq: number;
  readonly data: Uint8Array;
  readonly headers: Readonly<Record<string, string>>;
  readonly key: string | undefined;
  /** p<n> (n = fnv1a32(key) mod the topic's partitions) or `plain`. */
  readonly lane: string;
}

export interface GroupMember {
  /** Wakes the member's intake loop (new messages or redeliveries). */
  wake(): void;
}

export class ConsumerGroup {
  /** Where the group started: lanes begin here. */
  readonly startSeq: number;
  /** Next never-delivered sequence (shared-cursor members, raw topics). */
  cursor: number;
  /** Sequences to deliver again, kept sorted so redeliveries keep stream order. */
  readonly redeliver: number[] = [];
  /** seq → member currently holding it. */
  readonly inflight = new Map<number, GroupMember>();
  readonly deliveries = new Map<number, number>();
  readonly members = new Set<GroupMember>();
  /** Per-lane delivery state of partitioned members (envelope topics). */
  readonly #lanes = new Map<string, LaneQueue>();
  /** Leases of partitioned members; one store per group, so no key of one group can look like another's. */
  readonly leases = new MemoryLeaseStore();

  constructor(cursor: number) {
    this.startSeq = cursor;
    this.cursor = cursor;
  }

  lane(name: string): LaneQueue {
    let queue = this.#lanes.get(name);
    if (queue === undefined) {
      queue = new LaneQueue(name, this.startSeq);
      this.#lanes.set(name, queue);
    }
    return queue;
  }

  requeue(seq: number): void {
    const list = this.redeliver;
    let i = list.length;
    while (i > 0 && (list[i - 1] as number) > seq) i--;
    if (list[i - 1] !== seq) list.splice(i, 0, seq);
  }

  wakeAll(): void {
    for (const m of this.members) m.wake();
  }
}

export class TopicLog {
  readonly name: string;
  /** Fixed at creation, like the partition count NATS records with a stream. */
  readonly partitions: number;
  readonly #laneNames: readonly string[];
  #messages: StoredMessage[] = [];
  #head = 0;
  #nextSeq = 1;
  readonly #msgIds = new Map<string, { seq: number; at: number }>();
  readonly groups = new Map<string, ConsumerGroup>();
  readonly #maxMessages: number;
  readonly #duplicateWindowMs: number;

  constructor(name: string, partitions: number, maxMessages: number, duplicateWindowMs: number) {
    this.name = name;
    this.partitions = partitions;
    this.#laneNames = laneNames(partitions);
    this.#maxMessages = maxMessages;
    this.#duplicateWindowMs = duplicateWindowMs;
  }

  get firstSeq(): number {
    return this.#messages[this.#head]?.seq ?? this.#nextSeq;
  }

  get lastSeq(): number {
    return this.#nextSeq - 1;
  }

  get size(): number {
    return this.#messages.length - this.#head;
  }

  get(seq: number): StoredMessage | undefined {
    const first = this.firstSeq;
    return seq < first ? undefined : this.#messages[this.#head + (seq - first)];
  }

  /** Appends unless `msgId` was seen within the window; returns the sequence and whether it was a duplicate. */
  append(msg: Omit<StoredMessage, 'seq' | 'lane'>, msgId: string): { seq: number; duplicate: boolean } {
    const now = Date.now();
    this.#pruneIds(now);
    const seen = this.#msgIds.get(msgId);
    if (seen) return { seq: seen.seq, duplicate: true };
    const seq = this.#nextSeq++;
    const lane =
      msg.key === undefined
        ? UNPARTITIONED_LANE
        : (this.#laneNames[partitionOf(msg.key, this.partitions)] as string);
    this.#messages.push({ seq, ...msg, lane });
    this.#msgIds.set(msgId, { seq, at: now });
    if (this.size > this.#maxMessages) this.#trimOne();
    for (const g of this.groups.values()) g.wakeAll();
    return { seq, duplicate: false };
  }

  #pruneIds(now: number): void {
    for (const [id, entry] of this.#msgIds) {
      if (now - entry.at <= this.#duplicateWindowMs) break;
      this.#msgIds.delete(id);
    }
  }

  /** Drops the oldest message (stream limits: discard old). */
  #trimOne(): void {
    this.#head++;
    if (this.#head > 4096 && this.#head * 2 > this.#messages.length) {
      this.#messages = this.#messages.slice(this.#head);
      this.#head = 0;
    }
  }

  /** The group; a new one starts at the oldest message held, or after the newest with 'latest'. */
  group(name: string, startFrom: StartFrom = 'earliest'): ConsumerGroup {
    let g = this.groups.get(name);
    if (!g) {
      g = new ConsumerGroup(startFrom === 'latest' ? this.lastSeq + 1 : this.firstSeq);
      this.groups.set(name, g);
    }
    return g;
  }
}

export const defaultPartitions = 16;

export interface MemoryBrokerOptions {
  /** Per-topic retention (oldest discarded). Default 1,000,000, like the NATS stream default. */
  readonly maxMessagesPerTopic?: number;
  /** Message-id de-duplication window. Default 2 minutes, like JetStream. */
  readonly duplicateWindowMs?: number;
}

export class MemoryBroker {
  readonly #topics = new Map<string, TopicLog>();
  readonly #maxMessages: number;
  readonly #duplicateWindowMs: number;

  constructor(options: MemoryBrokerOptions = {}) {
    this.#maxMessages = options.maxMessagesPerTopic ?? 1_000_000;
    this.#duplicateWindowMs = options.duplicateWindowMs ?? 120_000;
  }

  /** Message-id de-duplication window of every topic of this broker. */
  get duplicateWindowMs(): number {
    return this.#duplicateWindowMs;
  }

  /** The topic's log; `partitions` counts only when this call creates it (default 16). */
  topic(name: string, partitions = defaultPartitions): TopicLog {
    let t = this.#topics.get(name);
    if (!t) {
      t = new TopicLog(name, partitions, this.#maxMessages, this.#duplicateWindowMs);
      this.#topics.set(name, t);
    }
    return t;
  }

  /** Read-only view for tools and tests (e.g. inspecting a dead-letter topic). */
  messages(topic: string): StoredMessage[] {
    const t = this.#topics.get(topic);
    if (!t) return [];
    const out: StoredMessage[] = [];
    for (let s = t.firstSeq; s <= t.lastSeq; s++) {
      const m = t.get(s);
      if (m) out.push(m);
    }
    return out;
  }

  topics(): string[] {
    return [...this.#topics.keys()];
  }
}

/** Creates an isolated in-process broker (tests use one each). */
export function createMemoryBroker(options?: MemoryBrokerOptions): MemoryBroker {
  return new MemoryBroker(options);
}

let processBroker: MemoryBroker | undefined;

/** The broker buses use when none is given: one per process. */
export function defaultMemoryBroker(): MemoryBroker {
  processBroker ??= new MemoryBroker();
  return processBroker;
}
