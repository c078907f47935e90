/**
 * When a Kafka subscription commits: a timer commits, at most every
 * `commitIntervalMs`, the highest offset of each owned partition below which
 * everything is done; a revocation or close commits the partitions it hands
 * over (their handoff point). One commit runs at a time per subscription.
 */
import { TransportError } from '../../core/errors.ts';
import { raceSignal } from '../../core/waiting.ts';
import type { PartitionCommit } from './commit-tracker.ts';
import type { ConsumerClient } from './consumer-port.ts';
import { describeKafkaError } from './errors.ts';
import type { PartitionLane } from './partition-lane.ts';

export interface CommitSchedulerDeps {
  readonly topic: string;
  readonly group: string;
  readonly commitIntervalMs: number;
  consumer(): ConsumerClient | undefined;
  /** The partitions owned now. */
  owned(): Iterable<PartitionLane>;
  /** True while the revocation hook runs: the timer leaves the commits to it. */
  inJoinHook(): boolean;
  reportError(error: TransportError): void;
}

export class CommitScheduler {
  readonly #d: CommitSchedulerDeps;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #commits = 0;

  constructor(deps: CommitSchedulerDeps) {
    this.#d = deps;
  }

  /** Commits accepted by the coordinator so far. */
  get commits(): number {
    return this.#commits;
  }

  /** The commit in flight, if any. */
  get running(): Promise<void> | undefined {
    return this.#running;
  }

  startTimer(): void {
    this.#timer = setInterval(() => this.#tick(), this.#d.commitIntervalMs);
    this.#timer.unref();
  }

  stopTimer(): void {
    clearInterval(this.#timer);
  }

  #tick(): void {
    if (this.#running !== undefined || this.#d.inJoinHook()) return;
    this.commitNow(undefined).catch((error: unknown) => {
      this.#d.reportError(
        new TransportError(
          `Expected the group coordinator to accept the offset commit of group "${this.#d.group}", got ${describeKafkaError(error)}`,
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
  async commitNow(only: readonly PartitionLane[] | undefined, signal?: AbortSignal): Promise<void> {
    const consumer = this.#d.consumer();
    if (consumer === undefined) return;
    const owners: PartitionLane[] = [];
    const commits: PartitionCommit[] = [];
    for (const o of only ?? this.#d.owned()) {
      if (only === undefined && o.revoking) continue;
      if (o.generation !== consumer.generationId) continue;
      // At the handoff, also give a group without a committed offset the position this assignment started at.
      const point = only === undefined ? o.tracker.committable() : o.handoffCommit();
      if (point === undefined) continue;
      owners.push(o);
      commits.push({ topic: this.#d.topic, partition: o.partition, ...point });
    }
    if (commits.length === 0) return;
    const run = consumer.commit(commits).then(() => {
      this.#commits++;
      for (let i = 0; i < commits.length; i++)
        (owners[i] as PartitionLane).tracker.markCommitted((commits[i] as PartitionCommit).offset);
    });
    const tracked = run.finally(() => {
      if (this.#running === tracked) this.#running = undefined;
    });
    this.#running = tracked;
    tracked.catch(() => {}); // observed below or by the caller
    if (signal === undefined) await run;
    else await raceSignal(run, signal);
  }
}
