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
 *
 * The rooms: the client seam (consumer-port.ts), the delivered message
 * (delivery.ts), commit scheduling (commit-scheduler.ts), the partition
 * handover of steps 2–4 (rebalance.ts), pausing the stream (intake-gate.ts).
 * This file is intake, assignment and the subscription's life cycle (~430
 * lines, a tenth of them this description: the three share the map of owned
 * partitions and the stream, and split apart they would pass both around).
 */
import { Backoff } from '../../core/backoff.ts';
import { TransportError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import type { FlowControl, TransportSubscription } from '../../core/transport.ts';
import { raceSignal, wakeOrAbort } from '../../core/waiting.ts';
import { CommitScheduler } from './commit-scheduler.ts';
import type { Settlement } from './commit-tracker.ts';
import type {
  ConsumerClient,
  ConsumerFactory,
  RecordStream,
  StreamRecord,
  SubscriptionSettings,
  TopicAssignment,
} from './consumer-port.ts';
import { KafkaDelivery } from './delivery.ts';
import { describeKafkaError } from './errors.ts';
import { IntakeGate } from './intake-gate.ts';
import { PartitionLane } from './partition-lane.ts';
import { handOverPartitions } from './rebalance.ts';

export type {
  ConsumerClient,
  ConsumerFactory,
  ConsumerHooks,
  RecordStream,
  StreamRecord,
  SubscriptionSettings,
  TopicAssignment,
} from './consumer-port.ts';

/** Restarting a dead stream or a failed rejoin: 500 ms doubling up to 30 s. */
const RESTART_BACKOFF = { initialMs: 500, maxMs: 30_000, multiplier: 2, jitter: 0 };

function generationOf(record: StreamRecord): number | undefined {
  const consumer = record.metadata?.consumer as { generationId?: unknown } | undefined;
  return typeof consumer?.generationId === 'number' ? consumer.generationId : undefined;
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
  readonly #gate = new IntakeGate(() => this.#stream);
  #capacityWait: AbortController | undefined;
  readonly #drainWaiters = new Set<() => void>();
  readonly #commits: CommitScheduler;
  #inJoinHook = false;
  #stopped = false;
  #closing: Promise<void> | undefined;
  #restartTimer: NodeJS.Timeout | undefined;
  readonly #restartBackoff = new Backoff(RESTART_BACKOFF);
  /** Records still to hand over before asking the flow for its free capacity again. */
  #budget = 0;
  #delivered = 0;
  #dropped = 0;

  private constructor(settings: SubscriptionSettings, flow: FlowControl, logger: Logger) {
    this.#settings = settings;
    this.#flow = flow;
    this.#logger = logger;
    this.#commits = new CommitScheduler({
      topic: settings.topic,
      group: settings.group,
      commitIntervalMs: settings.commitIntervalMs,
      consumer: () => this.#consumer,
      owned: () => this.#owned.values(),
      inJoinHook: () => this.#inJoinHook,
      reportError: (error) => this.#flow.reportError(error),
    });
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
    sub.#commits.startTimer();
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
      commits: this.#commits.commits,
      inFlight,
      paused: this.#gate.reasons,
    };
  }

  isConnected(): boolean {
    return this.#consumer?.isConnected() ?? false;
  }

  /** Stops intake: records that still arrive are dropped (never committed, so read again later). */
  stop(): Promise<void> {
    if (!this.#stopped) {
      this.#stopped = true;
      this.#gate.pause('stop');
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
    this.#commits.stopTimer();
    clearTimeout(this.#restartTimer);
    const deadline = AbortSignal.timeout(this.#settings.closeTimeoutMs);
    try {
      const running = this.#commits.running;
      if (running !== undefined) await raceSignal(running, deadline).catch(() => {});
      // The same handoff commit as a revocation: the next owner never starts past an unfinished record.
      await this.#commits.commitNow(
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
    this.#gate.newStream();
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
    this.#gate.apply();
    this.#restartBackoff.reset();
  }

  /** The stream died (a fetch error the client could not recover from): read again through a fresh join. */
  #scheduleRestart(): void {
    if (this.#restartTimer !== undefined || this.#closing !== undefined) return;
    const delay = this.#restartBackoff.next();
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
    const delay = this.#restartBackoff.next();
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
    this.#gate.pause('capacity');
    const wait = new AbortController();
    this.#capacityWait = wait;
    const resume = (): void => {
      if (this.#capacityWait !== wait) return;
      this.#capacityWait = undefined;
      this.#budget = this.#flow.freeCapacity();
      this.#gate.unpause('capacity');
    };
    this.#flow.waitForCapacity(wait.signal).then(resume, (error: unknown) => {
      this.#logger.debug({ err: error }, 'Kafka: waiting for capacity failed');
      resume();
    });
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
    this.#restartBackoff.reset();
    this.#gate.unpause('rebalance');
  }

  /** The "partitions revoked" step, run by the client before every JoinGroup (see the file comment). */
  async #beforeJoin(): Promise<void> {
    if (this.#inJoinHook) return; // a join started by a commit inside this hook: nothing left to revoke
    const revoking = [...this.#owned.values()].filter((o) => !o.revoking);
    if (revoking.length === 0) return;
    this.#inJoinHook = true;
    try {
      this.#gate.pause('rebalance');
      for (const o of revoking) o.revoke();
      await handOverPartitions(
        {
          settings: this.#settings,
          logger: this.#logger,
          commits: this.#commits,
          consumer: () => this.#consumer,
          stream: () => this.#stream,
          waitSettled: (owned, signal) => this.#waitSettled(owned, signal),
        },
        revoking,
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
    if (idle()) return Promise.resolve();
    return wakeOrAbort(signal, (wake) => {
      const check = (): void => {
        if (idle() || this.#closing !== undefined) wake();
      };
      this.#drainWaiters.add(check);
      return () => this.#drainWaiters.delete(check);
    });
  }
}
