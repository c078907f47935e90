/**
 * The commit watermark: which offset a consumer may commit when messages of a
 * partition complete out of order (different aggregates of one partition run
 * on different actors).
 *
 * Pure logic, no client: per partition it records every delivered offset and
 * how it was settled. A Kafka commit means "everything below this offset is
 * done; read from here next", so the committable offset is one past the longest
 * prefix of delivered offsets that are all done:
 *
 *   delivered 10 11 12 13 14,  done 10 11 13 14  →  commit 12 (12 still runs)
 *   12 done                                       →  commit 15
 *
 * - `ack` and `term` are done (term = dead-lettered or given up on purpose).
 * - `nak` is *not* done: the message must be read again. It holds the
 *   watermark for as long as this assignment lives, so nothing at or after it
 *   is ever committed; after a restart or a rebalance the partition is read
 *   again from there. (The bus retries in place, so a nak only happens when
 *   it gives up at shutdown; see README.md.)
 * - Offsets that were never delivered (compaction holes, transaction markers)
 *   are not waited for: only delivered offsets can hold the watermark.
 */

export type Settlement = 'ack' | 'term' | 'nak';

const PENDING = 0;
const DONE = 1;
const HELD = 2;

interface Entry {
  readonly offset: bigint;
  readonly leaderEpoch: number;
  state: typeof PENDING | typeof DONE | typeof HELD;
}

/** An offset to commit: `offset` is the next offset to read (last done + 1). */
export interface CommitPoint {
  readonly offset: bigint;
  /** Leader epoch of the last done record (KIP-320), -1 when unknown. */
  readonly leaderEpoch: number;
}

/** One partition's watermark. Deliveries must come in increasing offset order. */
export class PartitionCommitTracker {
  /** Delivered offsets not yet below the watermark, ascending; `#head` is the first live one. */
  #entries: Entry[] = [];
  #head = 0;
  #lastDelivered: bigint | undefined;
  #watermark: CommitPoint | undefined;
  #committed: bigint | undefined;
  #pending = 0;
  #held = 0;

  /** Highest offset handed over, or undefined before the first. */
  get lastDelivered(): bigint | undefined {
    return this.#lastDelivered;
  }

  /** Next offset to read such that everything delivered below it is done; undefined until one is done. */
  get watermark(): CommitPoint | undefined {
    return this.#watermark;
  }

  /** The last offset reported committed (see {@link markCommitted}). */
  get committed(): bigint | undefined {
    return this.#committed;
  }

  /** Delivered and not settled yet. */
  get inFlight(): number {
    return this.#pending;
  }

  /** Nak'd: never committed in this assignment. */
  get held(): number {
    return this.#held;
  }

  /** Delivered messages at or above the watermark (pending, held, or done behind an unfinished one). */
  get outstanding(): number {
    return this.#entries.length - this.#head;
  }

  /**
   * Records a delivery. Offsets must increase: a repeated or lower offset is
   * a caller bug (a re-fetch must be filtered before) and throws RangeError.
   */
  deliver(offset: bigint, leaderEpoch = -1): void {
    if (this.#lastDelivered !== undefined && offset <= this.#lastDelivered) {
      throw new RangeError(
        `Expected offsets to increase: delivered ${offset} after ${this.#lastDelivered} on the same partition`,
      );
    }
    const entry: Entry = { offset, leaderEpoch, state: PENDING };
    this.#entries.push(entry);
    this.#lastDelivered = offset;
    this.#pending++;
  }

  /**
   * Settles a delivered offset. The first settlement wins: returns false for
   * an unknown offset or one already settled. Returns true when it was applied.
   */
  settle(offset: bigint, how: Settlement): boolean {
    const entry = this.#find(offset);
    if (entry === undefined || entry.state !== PENDING) return false;
    this.#pending--;
    if (how === 'nak') {
      entry.state = HELD;
      this.#held++;
      return true;
    }
    entry.state = DONE;
    if (this.#entries[this.#head] === entry) this.#advance();
    return true;
  }

  /** The commit point when it moved past the last committed one, else undefined. */
  committable(): CommitPoint | undefined {
    const w = this.#watermark;
    if (w === undefined) return undefined;
    if (this.#committed !== undefined && w.offset <= this.#committed) return undefined;
    return w;
  }

  /** Records a successful commit of `offset` (monotonic: a lower one is ignored). */
  markCommitted(offset: bigint): void {
    if (this.#committed === undefined || offset > this.#committed) this.#committed = offset;
  }

  /**
   * The live entry (at or above the watermark) for `offset`. Offsets are
   * ascending and mostly contiguous, so the first guess is direct; gaps
   * (compaction, transaction markers) fall back to a binary search.
   */
  #find(offset: bigint): Entry | undefined {
    const entries = this.#entries;
    let low = this.#head;
    let high = entries.length - 1;
    if (low > high) return undefined;
    const first = (entries[low] as Entry).offset;
    if (offset < first) return undefined;
    const guess = low + Number(offset - first);
    if (guess <= high && (entries[guess] as Entry).offset === offset) return entries[guess];
    while (low <= high) {
      const mid = (low + high) >>> 1;
      const entry = entries[mid] as Entry;
      if (entry.offset === offset) return entry;
      if (entry.offset < offset) low = mid + 1;
      else high = mid - 1;
    }
    return undefined;
  }

  #advance(): void {
    const entries = this.#entries;
    let head = this.#head;
    let last: Entry | undefined;
    while (head < entries.length) {
      const entry = entries[head] as Entry;
      if (entry.state !== DONE) break;
      last = entry;
      head++;
    }
    if (last !== undefined) this.#watermark = { offset: last.offset + 1n, leaderEpoch: last.leaderEpoch };
    if (head === entries.length) {
      this.#entries = [];
      this.#head = 0;
    } else if (head > 1024 && head * 2 > entries.length) {
      this.#entries = entries.slice(head);
      this.#head = 0;
    } else {
      this.#head = head;
    }
  }
}

export interface PartitionCommit extends CommitPoint {
  readonly topic: string;
  readonly partition: number;
}

/** Watermarks of many partitions (one per assigned topic-partition). */
export class CommitTracker {
  readonly #partitions = new Map<
    string,
    { topic: string; partition: number; tracker: PartitionCommitTracker }
  >();

  static key(topic: string, partition: number): string {
    return `${topic}\u0000${partition}`;
  }

  /** Starts a fresh watermark for a newly assigned partition (replacing any old one). */
  assign(topic: string, partition: number): PartitionCommitTracker {
    const tracker = new PartitionCommitTracker();
    this.#partitions.set(CommitTracker.key(topic, partition), { topic, partition, tracker });
    return tracker;
  }

  /** Forgets a partition; its tracker keeps working for late settlements but is never committed again. */
  revoke(topic: string, partition: number): PartitionCommitTracker | undefined {
    const key = CommitTracker.key(topic, partition);
    const found = this.#partitions.get(key);
    this.#partitions.delete(key);
    return found?.tracker;
  }

  get(topic: string, partition: number): PartitionCommitTracker | undefined {
    return this.#partitions.get(CommitTracker.key(topic, partition))?.tracker;
  }

  get size(): number {
    return this.#partitions.size;
  }

  /** Every partition whose watermark moved past its last commit. */
  collect(): PartitionCommit[] {
    const out: PartitionCommit[] = [];
    for (const { topic, partition, tracker } of this.#partitions.values()) {
      const point = tracker.committable();
      if (point !== undefined)
        out.push({ topic, partition, offset: point.offset, leaderEpoch: point.leaderEpoch });
    }
    return out;
  }

  /** Records a successful commit of what {@link collect} returned. */
  markCommitted(commits: readonly PartitionCommit[]): void {
    for (const c of commits) this.get(c.topic, c.partition)?.markCommitted(c.offset);
  }

  /** Delivered and unsettled messages over all partitions. */
  inFlight(): number {
    let n = 0;
    for (const { tracker } of this.#partitions.values()) n += tracker.inFlight;
    return n;
  }
}
