/**
 * One subscription = one consumer group member reading one topic.
 *
 * Intake: records come from the client's stream in partition order and are
 * handed to `flow.deliver()`, each carrying its partition's lane
 * ({@link PartitionLane}). Like a pull sized to the pool's free capacity,
 * the subscription takes `flow.freeCapacity()` records before it asks again
 * (asking after every record would stop at the first full actor inbox, well
 * below the pool's capacity); when it is 0 the stream is paused (no more
 * fetches) and resumed when `flow.waitForCapacity()` resolves.
 *
 * Commits: every delivered offset is tracked per partition
 * ({@link PartitionCommitTracker}); a timer commits, at most every
 * `commitIntervalMs`, the highest offset below which everything is done.
 *
 * Revocation: the client calls `protocolsMetadata` before every JoinGroup
 * (documented: "invoked once per join or rebalance, before sending
 * JoinGroup"). With the classic eager protocol that is the moment all owned
 * partitions are given up, so it is our "partitions revoked" hook, and it is
 * asynchronous, so the join waits for it:
 *   1. stop intake (pause the stream, drop records of these partitions) and
 *      revoke their lanes: the pool starts nothing more of them and lets
 *      their queued messages go unrun (`lane.dropped`);
 *   2. wait, up to `revokeTimeoutMs`, for their running handlers;
 *   3. wait for fetch requests in flight (their answers are dropped);
 *   4. commit their finished prefixes (the generation is still valid while
 *      the group prepares the rebalance), and rewind the stream's read
 *      position of each to that prefix: the client keeps its in-memory
 *      position when the group has no committed offset, which would skip
 *      records fetched but never delivered;
 *   5. release the lanes (a late ack no longer counts); then the client
 *      sends JoinGroup.
 * After the join (`consumer:group:join`) the new assignment starts fresh
 * lanes at the new generation and intake resumes; the stream re-reads every
 * partition from its committed offset (or our rewind point). Records stamped
 * with an older generation, or at/below the last delivered offset, are dropped.
 */
import { TransportError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import type {
  FlowControl,
  InboundMessage,
  MessageKind,
  TransportSubscription,
} from '../../core/transport.ts';
import type { PartitionCommit, Settlement } from './commit-tracker.ts';
import { describeKafkaError } from './errors.ts';
import { PartitionLane } from './partition-lane.ts';
import { fromRecordHeaders, fromRecordKey, fromRecordValue } from './records.ts';

/** A record as the client's stream emits it (structurally the client's `Message`). */
export interface StreamRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
  readonly leaderEpoch: number;
  readonly key?: Buffer | null;
  readonly value?: Buffer | null;
  readonly headerEntries: ReadonlyArray<readonly [Buffer | null, Buffer | null]>;
  readonly metadata?: Readonly<Record<string, unknown>>;
}

export interface RecordStream {
  onRecord(listener: (record: StreamRecord) => void): void;
  onError(listener: (error: Error) => void): void;
  onClose(listener: () => void): void;
  pause(): void;
  resume(): void;
  /**
   * Sets where the stream reads `partition` from after the next join when the
   * group has no committed offset for it (a committed offset still wins);
   * undefined: from the reset policy.
   */
  rewind(topic: string, partition: number, offset: bigint | undefined): void;
  close(): Promise<void>;
}

export interface TopicAssignment {
  readonly topic: string;
  readonly partitions: readonly number[];
}

/** What the subscription needs from a consumer group member (client.ts adapts the real one). */
export interface ConsumerClient {
  readonly generationId: number;
  readonly assignments: readonly TopicAssignment[] | null;
  /** Joins the group (running `beforeJoin`) and starts a stream reading from the committed offsets. */
  consume(): Promise<RecordStream>;
  commit(commits: readonly PartitionCommit[]): Promise<void>;
  /** Resolves when no fetch request is in flight, or when `signal` aborts. */
  fetchesSettled(signal: AbortSignal): Promise<void>;
  /** Joins again after a failed rejoin left the member without a group. */
  rejoin(): Promise<void>;
  isActive(): boolean;
  isConnected(): boolean;
  /** Leaves the group and disconnects. */
  close(): Promise<void>;
}

/** The callbacks the consumer adapter wires to the client. */
export interface ConsumerHooks {
  /** Before every JoinGroup; the join waits for it. Never rejects. */
  beforeJoin(): Promise<void>;
  /** After every completed join. */
  onJoin(generationId: number, assignments: readonly TopicAssignment[]): void;
  /** A group error the client reports asynchronously (e.g. a failed rejoin). */
  onError(error: unknown): void;
}

export type ConsumerFactory = (hooks: ConsumerHooks) => ConsumerClient;

export interface SubscriptionSettings {
  readonly topic: string;
  readonly group: string;
  readonly kind: MessageKind;
  readonly commitIntervalMs: number;
  readonly revokeTimeoutMs: number;
  readonly closeTimeoutMs: number;
}

type PauseReason = 'capacity' | 'rebalance' | 'stop';

/** How long the revocation waits for a commit that is already running before sending its own. */
const RUNNING_COMMIT_GRACE_MS = 1_000;
const RESTART_MIN_MS = 500;
const RESTART_MAX_MS = 30_000;

function raceSignal<T>(promise: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise<T | undefined>((resolve, reject) => {
    const onAbort = (): void => resolve(undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

function generationOf(record: StreamRecord): number | undefined {
  const consumer = record.metadata?.consumer as { generationId?: unknown } | undefined;
  return typeof consumer?.generationId === 'number' ? consumer.generationId : undefined;
}

/**
 * A delivered record. Headers and key are decoded on first use: the bus reads
 * an envelope's aggregate and metadata from its body, and decoding every
 * header to strings was a tenth of the consume path's CPU.
 */
class KafkaDelivery implements InboundMessage {
  readonly topic: string;
  readonly lane: PartitionLane;
  readonly data: Uint8Array;
  readonly deliveryCount: number;
  /** The offset as a number: exact below 2^53 (Kafka offsets never get near it in practice). */
  readonly sequence: number;
  readonly #offset: bigint;
  readonly #subscription: KafkaSubscription;
  #record: StreamRecord | undefined;
  #headers: Readonly<Record<string, string>> | undefined;
  #key: string | undefined;
  #settled = false;

  constructor(
    record: StreamRecord,
    deliveryCount: number,
    lane: PartitionLane,
    subscription: KafkaSubscription,
  ) {
    this.topic = record.topic;
    this.data = fromRecordValue(record.value);
    this.#record = record;
    this.deliveryCount = deliveryCount;
    this.sequence = Number(record.offset);
    this.lane = lane;
    this.#offset = record.offset;
    this.#subscription = subscription;
  }

  get headers(): Readonly<Record<string, string>> {
    this.#decode();
    return this.#headers as Readonly<Record<string, string>>;
  }

  get key(): string | undefined {
    this.#decode();
    return this.#key;
  }

  #decode(): void {
    const record = this.#record;
    if (record === undefined) return;
    this.#record = undefined; // decoded once; the record's buffers can go
    this.#headers = fromRecordHeaders(record.headerEntries);
    this.#key = fromRecordKey(record.key);
  }

  ack(): void {
    this.#settle('ack');
  }
  nak(_delayMs?: number): void {
    this.#settle('nak');
  }
  term(_reason: string): void {
    this.#settle('term');
  }
  /** Kafka has no per-message ack deadline (the group session is kept alive by heartbeats): nothing to extend. */
  working(): void {}

  #settle(how: Settlement): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#subscription.settle(this.lane, this.#offset, how);
  }
}

export class KafkaSubscription implements TransportSubscription {
  readonly #settings: SubscriptionSettings;
  readonly #flow: FlowControl;
  readonly #logger: Logger;
  #consumer: ConsumerClient | undefined;
  #stream: RecordStream | undefined;
  readonly #owned = new Map<number, PartitionLane>();
  /** Highest offset ever delivered per partition in this process, to flag redeliveries. */
  readonly #everDelivered = new Map<number, bigint>();
  readonly #pauses = new Set<PauseReason>();
  #streamPaused = false;
  #capacityWait: AbortController | undefined;
  readonly #drainWaiters = new Set<() => void>();
  #commitTimer: NodeJS.Timeout | undefined;
  #commitRunning: Promise<void> | undefined;
  #inJoinHook = false;
  #stopped = false;
  #closing: Promise<void> | undefined;
  #restartTimer: NodeJS.Timeout | undefined;
  #restartDelay = RESTART_MIN_MS;
  /** Records still to hand over before asking the flow for its free capacity again. */
  #budget = 0;
  #delivered = 0;
  #dropped = 0;
  #commits = 0;

  private constructor(settings: SubscriptionSettings, flow: FlowControl, logger: Logger) {
    this.#settings = settings;
    this.#flow = flow;
    this.#logger = logger;
  }

  /** Creates the group member, joins, and starts reading. */
  static async start(
    factory: ConsumerFactory,
    settings: SubscriptionSettings,
    flow: FlowControl,
    logger: Logger,
  ): Promise<KafkaSubscription> {
    const sub = new KafkaSubscription(settings, flow, logger);
    const consumer = factory({
      beforeJoin: () => sub.#beforeJoin(),
      onJoin: (generation, assignments) => sub.#onJoin(generation, assignments),
      onError: (error) => sub.#onGroupError(error),
    });
    sub.#consumer = consumer;
    try {
      await sub.#openStream();
    } catch (error) {
      await consumer.close().catch(() => {});
      throw new TransportError(
        `Expected to join consumer group "${settings.group}" on topic "${settings.topic}", got ${describeKafkaError(error)}`,
        { cause: error },
      );
    }
    sub.#commitTimer = setInterval(() => sub.#tick(), settings.commitIntervalMs);
    sub.#commitTimer.unref();
    return sub;
  }

  /** Partitions this member owns now. */
  get partitions(): number[] {
    return [...this.#owned.keys()].sort((a, b) => a - b);
  }

  get stats(): { delivered: number; dropped: number; commits: number; inFlight: number; paused: string[] } {
    let inFlight = 0;
    for (const o of this.#owned.values()) inFlight += o.tracker.inFlight;
    return {
      delivered: this.#delivered,
      dropped: this.#dropped,
      commits: this.#commits,
      inFlight,
      paused: [...this.#pauses],
    };
  }

  isConnected(): boolean {
    return this.#consumer?.isConnected() ?? false;
  }

  /** Stops intake: records that still arrive are dropped (never committed, so read again later). */
  stop(): Promise<void> {
    if (!this.#stopped) {
      this.#stopped = true;
      this.#pause('stop');
      this.#capacityWait?.abort();
      this.#capacityWait = undefined;
    }
    return Promise.resolve();
  }

  /**
   * Commits what is done, closes the stream and leaves the group (so the
   * partitions move to other members at once), bounded by closeTimeoutMs.
   * Messages not settled by now stay uncommitted and are read again.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    await this.stop();
    clearInterval(this.#commitTimer);
    clearTimeout(this.#restartTimer);
    const deadline = AbortSignal.timeout(this.#settings.closeTimeoutMs);
    try {
      if (this.#commitRunning !== undefined) await raceSignal(this.#commitRunning, deadline).catch(() => {});
      // The same handoff commit as a revocation: the next owner never starts past an unfinished record.
      await this.#commitNow(
        [...this.#owned.values()].filter((o) => !o.revoking),
        deadline,
      );
    } catch (error) {
      this.#logger.warn({ err: error, topic: this.#settings.topic }, 'Kafka: final offset commit failed');
    }
    let unsettled = 0;
    for (const o of this.#owned.values()) unsettled += o.tracker.inFlight + o.tracker.held;
    if (unsettled > 0) {
      this.#logger.warn(
        { topic: this.#settings.topic, group: this.#settings.group, unsettled },
        'Kafka: closing with unsettled messages; they stay uncommitted and will be delivered again',
      );
    }
    const stream = this.#stream;
    this.#stream = undefined;
    try {
      if (stream !== undefined) await raceSignal(stream.close(), deadline);
    } catch (error) {
      this.#logger.debug({ err: error }, 'Kafka: closing the stream failed');
    }
    try {
      await raceSignal(this.#consumer?.close() ?? Promise.resolve(), deadline);
    } catch (error) {
      this.#logger.warn(
        { err: error, group: this.#settings.group },
        'Kafka: leaving the consumer group failed',
      );
    }
    for (const o of this.#owned.values()) o.release();
    this.#owned.clear();
    for (const w of [...this.#drainWaiters]) w();
  }

  /** Called by a delivery when it is settled (first settlement only). */
  settle(owner: PartitionLane, offset: bigint, how: Settlement): void {
    // Released: the partition may be another member's by now; nothing of it counts any more.
    if (owner.released) return;
    if (!owner.tracker.settle(offset, how)) return;
    if (how === 'nak' && !owner.warnedNak && !owner.revoking && !this.#stopped) {
      owner.warnedNak = true;
      this.#logger.warn(
        { topic: this.#settings.topic, partition: owner.partition, offset: offset.toString() },
        'Kafka: a message was nak-ed; partition commits stop at its offset until the partition is reassigned or the consumer restarts, then it is read again',
      );
    }
    if (this.#drainWaiters.size > 0) for (const w of [...this.#drainWaiters]) w();
  }

  async #openStream(): Promise<void> {
    const consumer = this.#consumer as ConsumerClient;
    const stream = await consumer.consume();
    if (this.#closing !== undefined) {
      await stream.close().catch(() => {});
      return;
    }
    this.#stream = stream;
    this.#streamPaused = false;
    // The first join may complete before our listener sees it; align with the client's view.
    this.#onJoin(consumer.generationId, consumer.assignments ?? []);
    stream.onRecord((record) => this.#onRecord(record));
    stream.onError((error) => {
      this.#flow.reportError(
        new TransportError(
          `Expected the Kafka consumer of topic "${this.#settings.topic}" (group "${this.#settings.group}") to keep reading, got ${describeKafkaError(error)}`,
          { cause: error },
        ),
      );
    });
    stream.onClose(() => {
      if (this.#stream !== stream) return;
      this.#stream = undefined;
      if (this.#closing === undefined) this.#scheduleRestart();
    });
    this.#applyPause();
    this.#restartDelay = RESTART_MIN_MS;
  }

  /** The stream died (a fetch error the client could not recover from): read again through a fresh join. */
  #scheduleRestart(): void {
    if (this.#restartTimer !== undefined || this.#closing !== undefined) return;
    const delay = this.#restartDelay;
    this.#restartDelay = Math.min(this.#restartDelay * 2, RESTART_MAX_MS);
    this.#logger.warn(
      { topic: this.#settings.topic, delayMs: delay },
      'Kafka: consumer stream ended; restarting',
    );
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      this.#openStream().catch((error: unknown) => {
        this.#flow.reportError(
          new TransportError(
            `Expected to restart the Kafka consumer of topic "${this.#settings.topic}", got ${describeKafkaError(error)}`,
            { cause: error },
          ),
        );
        this.#scheduleRestart();
      });
    }, delay);
    this.#restartTimer.unref();
  }

  #onGroupError(error: unknown): void {
    this.#flow.reportError(
      new TransportError(
        `Expected consumer group "${this.#settings.group}" to stay joined, got ${describeKafkaError(error)}`,
        { cause: error },
      ),
    );
    const consumer = this.#consumer;
    if (consumer === undefined || this.#closing !== undefined || consumer.isActive()) return;
    // A failed rejoin leaves the member without a group and without heartbeats: join again.
    if (this.#restartTimer !== undefined) return;
    const delay = this.#restartDelay;
    this.#restartDelay = Math.min(this.#restartDelay * 2, RESTART_MAX_MS);
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      if (this.#closing !== undefined || consumer.isActive()) return;
      consumer.rejoin().catch((e: unknown) => this.#onGroupError(e));
    }, delay);
    this.#restartTimer.unref();
  }

  #onRecord(record: StreamRecord): void {
    const owned = this.#owned.get(record.partition);
    const generation = generationOf(record);
    if (
      owned === undefined ||
      record.topic !== this.#settings.topic ||
      (generation !== undefined && generation !== owned.generation)
    ) {
      this.#dropped++; // not ours, or fetched for an older assignment
      return;
    }
    owned.firstOffset ??= record.offset;
    const last = owned.tracker.lastDelivered;
    if (this.#stopped || owned.revoking || (last !== undefined && record.offset <= last)) {
      this.#dropped++; // intake stopped, or a re-fetch of what this assignment already has
      return;
    }
    owned.tracker.deliver(record.offset, record.leaderEpoch);
    const seen = this.#everDelivered.get(record.partition);
    const redelivery = seen !== undefined && record.offset <= seen;
    if (!redelivery) this.#everDelivered.set(record.partition, record.offset);
    this.#delivered++;
    this.#flow.deliver(new KafkaDelivery(record, redelivery ? 2 : 1, owned, this));
    if (--this.#budget > 0) return;
    this.#budget = this.#flow.freeCapacity();
    if (this.#budget <= 0) this.#waitForCapacity();
  }

  #waitForCapacity(): void {
    if (this.#capacityWait !== undefined || this.#stopped) return;
    this.#pause('capacity');
    const wait = new AbortController();
    this.#capacityWait = wait;
    const resume = (): void => {
      if (this.#capacityWait !== wait) return;
      this.#capacityWait = undefined;
      this.#budget = this.#flow.freeCapacity();
      this.#unpause('capacity');
    };
    this.#flow.waitForCapacity(wait.signal).then(resume, (error: unknown) => {
      this.#logger.debug({ err: error }, 'Kafka: waiting for capacity failed');
      resume();
    });
  }

  #pause(reason: PauseReason): void {
    this.#pauses.add(reason);
    this.#applyPause();
  }

  #unpause(reason: PauseReason): void {
    this.#pauses.delete(reason);
    this.#applyPause();
  }

  #applyPause(): void {
    const stream = this.#stream;
    if (stream === undefined) return;
    const want = this.#pauses.size > 0;
    if (want && !this.#streamPaused) {
      this.#streamPaused = true;
      stream.pause();
    } else if (!want && this.#streamPaused) {
      this.#streamPaused = false;
      stream.resume();
    }
  }

  #onJoin(generation: number, assignments: readonly TopicAssignment[]): void {
    const mine = new Set<number>();
    for (const a of assignments)
      if (a.topic === this.#settings.topic) for (const p of a.partitions) mine.add(p);
    for (const [partition, owned] of this.#owned) {
      if (mine.has(partition) && owned.generation === generation) continue;
      // Normally already revoked by #beforeJoin; a join that bypassed it (or a newer generation) starts fresh.
      owned.release();
      this.#owned.delete(partition);
    }
    for (const partition of mine) {
      if (this.#owned.has(partition)) continue;
      this.#owned.set(
        partition,
        new PartitionLane(this.#settings.topic, this.#settings.group, partition, generation),
      );
    }
    this.#logger.debug(
      { topic: this.#settings.topic, group: this.#settings.group, generation, partitions: [...mine] },
      'Kafka: partitions assigned',
    );
    this.#restartDelay = RESTART_MIN_MS;
    this.#unpause('rebalance');
  }

  /** The "partitions revoked" step, run by the client before every JoinGroup (see the file comment). */
  async #beforeJoin(): Promise<void> {
    if (this.#inJoinHook) return; // a join started by a commit inside this hook: nothing left to revoke
    const revoking = [...this.#owned.values()].filter((o) => !o.revoking);
    if (revoking.length === 0) return;
    this.#inJoinHook = true;
    const started = Date.now();
    try {
      this.#pause('rebalance');
      for (const o of revoking) o.revoke();
      const deadline = AbortSignal.timeout(this.#settings.revokeTimeoutMs);
      await this.#waitSettled(revoking, deadline);
      await this.#consumer?.fetchesSettled(deadline);
      if (this.#commitRunning !== undefined) {
        await raceSignal(
          this.#commitRunning,
          AbortSignal.any([deadline, AbortSignal.timeout(RUNNING_COMMIT_GRACE_MS)]),
        ).catch(() => {});
      }
      await this.#commitNow(revoking, deadline).catch((error: unknown) => {
        this.#logger.warn(
          { err: error, topic: this.#settings.topic },
          'Kafka: committing before the rebalance failed; uncommitted messages will be delivered again',
        );
      });
      // Whoever reads these partitions next starts at the finished prefix, never past a record
      // that was fetched but not finished (the client would keep its read position otherwise).
      for (const o of revoking)
        this.#stream?.rewind(this.#settings.topic, o.partition, o.rewindPoint()?.offset);
      let abandoned = 0;
      for (const o of revoking) abandoned += o.tracker.inFlight;
      if (abandoned > 0) {
        this.#logger.warn(
          { topic: this.#settings.topic, group: this.#settings.group, abandoned },
          'Kafka: rebalance drain deadline reached; unfinished messages stay uncommitted and go to the next owner',
        );
      }
      this.#logger.debug(
        {
          topic: this.#settings.topic,
          partitions: revoking.map((o) => o.partition),
          ms: Date.now() - started,
        },
        'Kafka: partitions revoked',
      );
    } catch (error) {
      this.#logger.warn({ err: error, topic: this.#settings.topic }, 'Kafka: revoking partitions failed');
    } finally {
      for (const o of revoking) {
        o.release();
        if (this.#owned.get(o.partition) === o) this.#owned.delete(o.partition);
      }
      this.#inJoinHook = false;
    }
  }

  /** Resolves when the given partitions have nothing in flight, or when `signal` aborts. */
  #waitSettled(owned: readonly PartitionLane[], signal: AbortSignal): Promise<void> {
    const idle = (): boolean => owned.every((o) => o.tracker.inFlight === 0);
    if (idle() || signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const check = (): void => {
        if (!idle() && !signal.aborted && this.#closing === undefined) return;
        this.#drainWaiters.delete(check);
        signal.removeEventListener('abort', check);
        resolve();
      };
      this.#drainWaiters.add(check);
      signal.addEventListener('abort', check, { once: true });
    });
  }

  #tick(): void {
    if (this.#commitRunning !== undefined || this.#inJoinHook) return;
    this.#commitNow(undefined).catch((error: unknown) => {
      this.#flow.reportError(
        new TransportError(
          `Expected the group coordinator to accept the offset commit of group "${this.#settings.group}", got ${describeKafkaError(error)}`,
          { cause: error },
        ),
      );
    });
  }

  /**
   * Commits the watermarks that moved: of `only` (revocation), or of every
   * partition owned and not being revoked. Only partitions of the consumer's
   * current generation are committed: a partition of an older generation may
   * belong to another member by now.
   */
  async #commitNow(only: readonly PartitionLane[] | undefined, signal?: AbortSignal): Promise<void> {
    const consumer = this.#consumer;
    if (consumer === undefined) return;
    const owners: PartitionLane[] = [];
    const commits: PartitionCommit[] = [];
    for (const o of only ?? this.#owned.values()) {
      if (only === undefined && o.revoking) continue;
      if (o.generation !== consumer.generationId) continue;
      // At the handoff, also give a group without a committed offset the position this assignment started at.
      const point = only === undefined ? o.tracker.committable() : o.handoffCommit();
      if (point === undefined) continue;
      owners.push(o);
      commits.push({ topic: this.#settings.topic, partition: o.partition, ...point });
    }
    if (commits.length === 0) return;
    const run = consumer.commit(commits).then(() => {
      this.#commits++;
      for (let i = 0; i < commits.length; i++)
        (owners[i] as PartitionLane).tracker.markCommitted((commits[i] as PartitionCommit).offset);
    });
    const tracked = run.finally(() => {
      if (this.#commitRunning === tracked) this.#commitRunning = undefined;
    });
    this.#commitRunning = tracked;
    tracked.catch(() => {}); // observed below or by the caller
    if (signal === undefined) await run;
    else await raceSignal(run, signal);
  }
}
