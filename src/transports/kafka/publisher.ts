/**
 * Pipelined, confirmed publishing over an idempotent producer (acks=all).
 *
 * `send` only queues. Everything queued in the same event-loop turn (or
 * within `lingerMs`) leaves in one produce call; while a call is in flight
 * (`maxInFlight`, default 1) new messages accumulate and form the next batch,
 * so batches grow with load without a timer per message. Each message's
 * callback runs exactly once, never inside `send`:
 *  - success with the record's offset (a decimal string);
 *  - PayloadTooLargeError (before sending), PublishRejectedError (refused by
 *    the broker), TransportError (known not stored), TimeoutError (unknown
 *    outcome: no answer within `publishTimeoutMs`, found by one shared sweep);
 *  - BusClosedError for messages still queued when close's deadline passes.
 *
 * The partition of every record is chosen here (murmur2 of the key, as the
 * Java client; round-robin without a key) so a batch's per-partition base
 * offsets map back to each message's own offset.
 */
import type { MessageToProduce, ProduceResult } from '@platformatic/kafka';
import {
  BusClosedError,
  type EventBusError,
  PayloadTooLargeError,
  TimeoutError,
  TransportError,
} from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import type { OutboundMessage, PublishCallback, PublishOutcome } from '../../core/transport.ts';
import { wakeOrAbort } from '../../core/waiting.ts';
import { toPublishError } from './errors.ts';
import { keyHash, recordSize, toRecordHeaders, toRecordKey, toRecordValue } from './records.ts';

export type ProduceRecord = MessageToProduce<Buffer, Buffer, Buffer, Buffer>;

/** The part of the client's Producer the publisher uses (an adapter in client.ts; fakes in tests). */
export interface ProducerClient {
  /** One produce call; the callback may run synchronously. */
  send(records: ProduceRecord[], callback: (error: Error | null, result?: ProduceResult) => void): void;
  /** Partition count of a topic from the client's metadata cache, if known. */
  partitionCount(topic: string): number | undefined;
}

export interface PublisherOptions {
  readonly maxInFlight: number;
  readonly lingerMs: number;
  readonly maxBatchMessages: number;
  readonly maxBatchBytes: number;
  readonly publishTimeoutMs: number;
  readonly maxPayloadBytes: number;
}

export interface PublisherDeps {
  readonly logger: Logger;
  /** Makes sure a topic exists; undefined when it is known to exist (the fast path). */
  readonly ensureTopic?: (topic: string) => Promise<void> | undefined;
  readonly now?: () => number;
}

interface Pending {
  readonly topic: string;
  readonly record: ProduceRecord;
  /** Partition hash before the modulo (also the explicit partition handed to the client). */
  readonly hash: number;
  readonly size: number;
  readonly done: PublishCallback;
  readonly enqueuedAt: number;
  settled: boolean;
}

interface Batch {
  readonly items: Pending[];
  readonly startedAt: number;
}

/** Record framing in a batch (length, attributes, deltas, counts as varints), roughly, per record. */
const RECORD_OVERHEAD = 32;

const tpKey = (topic: string, partition: number): string => `${topic}\u0000${partition}`;

export class KafkaPublisher {
  readonly #client: ProducerClient;
  readonly #options: PublisherOptions;
  readonly #logger: Logger;
  readonly #ensureTopic: (topic: string) => Promise<void> | undefined;
  readonly #now: () => number;
  #queue: Pending[] = [];
  #head = 0;
  #inFlight = 0;
  readonly #batches = new Set<Batch>();
  #cancelFlush: (() => void) | undefined;
  #sweep: NodeJS.Timeout | undefined;
  readonly #roundRobin = new Map<string, number>();
  readonly #idleWaiters = new Set<() => void>();
  #closed = false;

  constructor(client: ProducerClient, options: PublisherOptions, deps: PublisherDeps) {
    this.#client = client;
    this.#options = options;
    this.#logger = deps.logger;
    this.#ensureTopic = deps.ensureTopic ?? (() => undefined);
    this.#now = deps.now ?? Date.now;
  }

  /** Queued plus in flight, not yet reported. */
  get pending(): number {
    let n = this.#queue.length - this.#head;
    for (const batch of this.#batches) for (const item of batch.items) if (!item.settled) n++;
    return n;
  }

  /** Produce calls in flight. */
  get inFlight(): number {
    return this.#inFlight;
  }

  send(message: OutboundMessage, done: PublishCallback): void {
    if (this.#closed) {
      this.#report(done, { ok: false, error: new BusClosedError('The Kafka transport is closed') }, true);
      return;
    }
    const value = toRecordValue(message.data);
    const key = toRecordKey(message.key);
    const headers = toRecordHeaders(message.headers);
    const size = recordSize(value, key, headers);
    if (size > this.#options.maxPayloadBytes) {
      this.#report(
        done,
        { ok: false, error: new PayloadTooLargeError(size, this.#options.maxPayloadBytes, 'Kafka record') },
        true,
      );
      return;
    }
    const hash = key === undefined ? this.#nextRoundRobin(message.topic) : keyHash(key);
    const record: ProduceRecord = { topic: message.topic, value, headers, partition: hash };
    if (key !== undefined) record.key = key;
    this.#queue.push({
      topic: message.topic,
      record,
      hash,
      size,
      done,
      enqueuedAt: this.#now(),
      settled: false,
    });
    this.#schedule();
    this.#ensureSweep();
  }

  /** Resolves once nothing is queued or in flight (or when `signal` aborts). */
  flush(signal?: AbortSignal): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    this.#flushSoon();
    return wakeOrAbort(signal, (wake) => {
      this.#idleWaiters.add(wake);
      return () => this.#idleWaiters.delete(wake);
    });
  }

  /**
   * Stops accepting messages, sends what is queued without lingering and
   * waits for every answer until `deadline`. Then reports the rest: queued
   * (never sent) as BusClosedError, in flight as TimeoutError (unknown).
   */
  async close(deadline: AbortSignal): Promise<void> {
    this.#closed = true;
    await this.flush(deadline);
    if (!this.#isIdle()) {
      const notSent = new BusClosedError('The Kafka transport closed before this message was sent');
      for (let i = this.#head; i < this.#queue.length; i++) {
        const item = this.#queue[i] as Pending;
        this.#settle(item, { ok: false, error: notSent });
      }
      this.#queue = [];
      this.#head = 0;
      const unknown = new TimeoutError(
        'The Kafka transport closed before the broker answered; the outcome is unknown',
      );
      for (const batch of this.#batches)
        for (const item of batch.items) this.#settle(item, { ok: false, error: unknown });
    }
    this.#cancelFlush?.();
    this.#cancelFlush = undefined;
    this.#stopSweep();
  }

  #nextRoundRobin(topic: string): number {
    const n = this.#roundRobin.get(topic) ?? 0;
    this.#roundRobin.set(topic, (n + 1) & 0x7fffffff);
    return n;
  }

  #isIdle(): boolean {
    return this.#head >= this.#queue.length && this.#inFlight === 0;
  }

  #schedule(): void {
    if (this.#cancelFlush !== undefined || this.#head >= this.#queue.length) return;
    if (this.#inFlight >= this.#options.maxInFlight) return; // the completion schedules the next batch
    const linger = this.#closed ? 0 : this.#options.lingerMs;
    if (linger > 0) {
      const timer = setTimeout(() => this.#flush(), linger);
      this.#cancelFlush = () => clearTimeout(timer);
    } else {
      const immediate = setImmediate(() => this.#flush());
      this.#cancelFlush = () => clearImmediate(immediate);
    }
  }

  /** Skips the linger (flush/close). */
  #flushSoon(): void {
    if (this.#cancelFlush !== undefined) {
      this.#cancelFlush();
      this.#cancelFlush = undefined;
    }
    const immediate = setImmediate(() => this.#flush());
    this.#cancelFlush = () => clearImmediate(immediate);
  }

  #flush(): void {
    this.#cancelFlush = undefined;
    while (this.#inFlight < this.#options.maxInFlight) {
      const items = this.#take();
      if (items.length === 0) break;
      this.#dispatch(items);
    }
  }

  /** The next batch: at least one message, then up to the message and byte limits. */
  #take(): Pending[] {
    const items: Pending[] = [];
    let bytes = 0;
    const queue = this.#queue;
    while (this.#head < queue.length && items.length < this.#options.maxBatchMessages) {
      const item = queue[this.#head] as Pending;
      if (item.settled) {
        this.#head++; // timed out while queued
        continue;
      }
      const cost = item.size + RECORD_OVERHEAD;
      if (items.length > 0 && bytes + cost > this.#options.maxBatchBytes) break;
      items.push(item);
      bytes += cost;
      this.#head++;
    }
    if (this.#head >= queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head > 4096 && this.#head * 2 > queue.length) {
      this.#queue = queue.slice(this.#head);
      this.#head = 0;
    }
    return items;
  }

  #dispatch(items: Pending[]): void {
    const batch: Batch = { items, startedAt: this.#now() };
    this.#inFlight++;
    this.#batches.add(batch);
    const topics = [...new Set(items.map((i) => i.topic))];
    const waits: Array<Promise<void>> = [];
    for (const topic of topics) {
      const wait = this.#ensureTopic(topic);
      if (wait !== undefined) waits.push(wait.catch((error: unknown) => Promise.reject({ topic, error })));
    }
    if (waits.length === 0) {
      this.#produce(batch, items);
      return;
    }
    void Promise.allSettled(waits).then((results) => {
      const failed = new Map<string, EventBusError>();
      for (const r of results) {
        if (r.status === 'rejected') {
          const { topic, error } = r.reason as { topic: string; error: unknown };
          failed.set(topic, toPublishError(error, topic));
        }
      }
      const ready: Pending[] = [];
      for (const item of items) {
        const error = failed.get(item.topic);
        if (error === undefined) ready.push(item);
        else this.#settle(item, { ok: false, error });
      }
      if (ready.length === 0) this.#complete(batch, [], null, undefined);
      else this.#produce(batch, ready);
    });
  }

  #produce(batch: Batch, items: Pending[]): void {
    let answered = false;
    const callback = (error: Error | null, result?: ProduceResult): void => {
      if (answered) return;
      answered = true;
      this.#complete(batch, items, error, result);
    };
    try {
      this.#client.send(
        items.map((i) => i.record),
        callback,
      );
    } catch (error) {
      callback(error as Error);
    }
  }

  #complete(batch: Batch, items: Pending[], error: Error | null, result: ProduceResult | undefined): void {
    this.#inFlight--;
    this.#batches.delete(batch);
    const produced = error === null ? result : (error as { produced?: ProduceResult }).produced;
    const base = new Map<string, bigint>();
    for (const o of produced?.offsets ?? []) base.set(tpKey(o.topic, o.partition), o.offset);
    const rank = new Map<string, bigint>();
    for (const item of items) {
      if (item.settled) continue;
      const count = this.#client.partitionCount(item.topic);
      const key = count !== undefined && count > 0 ? tpKey(item.topic, item.hash % count) : undefined;
      const first = key === undefined ? undefined : base.get(key);
      if (first !== undefined && key !== undefined) {
        const r = rank.get(key) ?? 0n;
        rank.set(key, r + 1n);
        this.#settle(item, { ok: true, offset: (first + r).toString() });
      } else if (error === null) {
        this.#settle(item, { ok: true }); // acked, but the offset could not be mapped back
      } else {
        this.#settle(item, { ok: false, error: toPublishError(error, item.topic) });
      }
    }
    if (error !== null) {
      this.#logger.warn(
        { err: error, messages: items.length },
        'Kafka produce request failed; the failed messages were reported',
      );
    }
    this.#schedule();
    this.#notifyIdle();
  }

  #settle(item: Pending, outcome: PublishOutcome): void {
    if (item.settled) return;
    item.settled = true;
    this.#report(item.done, outcome, false);
  }

  /** Calls a callback; `deferred` when we are still inside `send`. A throwing callback is logged, never propagated. */
  #report(done: PublishCallback, outcome: PublishOutcome, deferred: boolean): void {
    const call = (): void => {
      try {
        done(outcome);
      } catch (error) {
        this.#logger.error({ err: error }, 'A publish callback threw');
      }
    };
    if (deferred) queueMicrotask(call);
    else call();
  }

  #notifyIdle(): void {
    if (!this.#isIdle()) return;
    for (const waiter of [...this.#idleWaiters]) waiter();
    this.#stopSweep();
  }

  #ensureSweep(): void {
    if (this.#sweep !== undefined) return;
    const every = Math.max(10, Math.min(1_000, Math.floor(this.#options.publishTimeoutMs / 4)));
    this.#sweep = setInterval(() => this.#sweepTimeouts(), every);
    this.#sweep.unref();
  }

  #stopSweep(): void {
    if (this.#sweep === undefined) return;
    clearInterval(this.#sweep);
    this.#sweep = undefined;
  }

  /** One shared timer for all publishes: expires those waiting longer than publishTimeoutMs. */
  #sweepTimeouts(): void {
    const now = this.#now();
    const limit = this.#options.publishTimeoutMs;
    for (const batch of this.#batches) {
      if (now - batch.startedAt < limit) continue;
      const error = new TimeoutError(
        `Expected Kafka to acknowledge within ${limit} ms, it did not; the outcome is unknown`,
      );
      for (const item of batch.items) this.#settle(item, { ok: false, error });
    }
    const queue = this.#queue;
    for (let i = this.#head; i < queue.length; i++) {
      const item = queue[i] as Pending;
      if (now - item.enqueuedAt < limit) break; // queued in order
      if (item.settled) continue;
      this.#settle(item, {
        ok: false,
        error: new TransportError(
          `Expected to send the message to Kafka within ${limit} ms, it stayed queued behind unanswered requests`,
        ),
      });
    }
    if (this.#isIdle()) this.#stopSweep();
  }
}
