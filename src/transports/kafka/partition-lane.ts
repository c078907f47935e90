/**
 * One partition owned in one generation of the group: its commit watermark
 * and its {@link DeliveryLane} (src/core/transport.ts), which every delivered
 * message of the partition carries.
 *
 * Life of a lane: `owned` (handlers start) → `revoking` (the rebalance hook
 * runs: nothing new starts, running handlers may finish and their acks still
 * move the watermark) → `released` (the finished prefix was committed and the
 * group may give the partition to another member: nothing of this lane counts
 * any more, a late ack never moves a commit).
 */
import type { DeliveryLane, InboundMessage } from '../../core/transport.ts';
import { type CommitPoint, PartitionCommitTracker } from './commit-tracker.ts';

type LaneState = 'owned' | 'revoking' | 'released';

export class PartitionLane implements DeliveryLane {
  readonly id: string;
  readonly partition: number;
  readonly generation: number;
  readonly tracker = new PartitionCommitTracker();
  /** A nak outside shutdown was logged for this assignment. */
  warnedNak = false;
  /**
   * The first offset the stream handed over for this partition in this
   * assignment (delivered or not): where reading must start again when
   * nothing of it finished and the group has no committed offset.
   */
  firstOffset: bigint | undefined;
  #state: LaneState = 'owned';

  constructor(topic: string, group: string, partition: number, generation: number) {
    this.id = `${topic}/${group}/p${partition}`;
    this.partition = partition;
    this.generation = generation;
  }

  /** No longer owned for new work (revoking or released). */
  get revoking(): boolean {
    return this.#state !== 'owned';
  }

  get released(): boolean {
    return this.#state === 'released';
  }

  mayStart(): boolean {
    return this.#state === 'owned';
  }

  stillOwned(): boolean {
    return this.#state !== 'released';
  }

  /**
   * The pool let a message of this lane go unrun: it is not done, so it holds
   * the watermark (like a nak) and is read again by the partition's next owner.
   */
  dropped(message: InboundMessage): void {
    message.nak();
  }

  /** Nothing new starts from now on. */
  revoke(): void {
    if (this.#state === 'owned') this.#state = 'revoking';
  }

  /** The handoff is done: nothing of this lane counts any more. */
  release(): void {
    this.#state = 'released';
  }

  /**
   * Where the partition's next owner must read from: one past the finished
   * prefix, else the first offset this assignment saw; undefined when it saw
   * none (then the group's committed offset, or the reset policy, decides).
   */
  rewindPoint(): CommitPoint | undefined {
    const watermark = this.tracker.watermark;
    if (watermark !== undefined) return watermark;
    return this.firstOffset === undefined ? undefined : { offset: this.firstOffset, leaderEpoch: -1 };
  }

  /**
   * What to commit at the handoff: the watermark when it moved, else, when
   * nothing was committed in this assignment, the first offset seen. The
   * latter passes nothing undelivered and gives a group that had no
   * committed offset one, so the next owner does not fall back to the reset
   * policy (which for `latest` would skip the records in between).
   */
  handoffCommit(): CommitPoint | undefined {
    const moved = this.tracker.committable();
    if (moved !== undefined) return moved;
    if (this.tracker.committed !== undefined || this.tracker.watermark !== undefined) return undefined;
    return this.rewindPoint();
  }
}
