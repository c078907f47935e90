/**
 * A set of stream sequences stored as sorted, disjoint ranges. Settlements
 * arrive roughly in order, so a single subscriber's history stays one range;
 * gaps (messages still in flight, or taken by other members of the group)
 * become range boundaries. When more than `maxRanges` exist, the lowest ones
 * are forgotten: that only makes very old redeliveries count as new again
 * (at-least-once), never the other way round.
 */
export class SequenceSet {
  readonly #maxRanges: number;
  #starts: number[] = [];
  #ends: number[] = [];

  constructor(maxRanges = 4096) {
    this.#maxRanges = maxRanges;
  }

  get ranges(): number {
    return this.#starts.length;
  }

  /** Index of the last range whose start is <= seq, or -1. */
  #floorIndex(seq: number): number {
    const starts = this.#starts;
    const last = starts.length - 1;
    if (last < 0) return -1;
    if ((starts[last] as number) <= seq) return last; // the common case: appending
    let lo = 0;
    let hi = last - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if ((starts[mid] as number) <= seq) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found;
  }

  has(seq: number): boolean {
    const i = this.#floorIndex(seq);
    return i >= 0 && seq <= (this.#ends[i] as number);
  }

  add(seq: number): void {
    const starts = this.#starts;
    const ends = this.#ends;
    const i = this.#floorIndex(seq);
    if (i >= 0 && seq <= (ends[i] as number)) return;
    const joinsLeft = i >= 0 && (ends[i] as number) + 1 === seq;
    const joinsRight = i + 1 < starts.length && (starts[i + 1] as number) - 1 === seq;
    if (joinsLeft && joinsRight) {
      ends[i] = ends[i + 1] as number;
      starts.splice(i + 1, 1);
      ends.splice(i + 1, 1);
    } else if (joinsLeft) {
      ends[i] = seq;
    } else if (joinsRight) {
      starts[i + 1] = seq;
    } else {
      starts.splice(i + 1, 0, seq);
      ends.splice(i + 1, 0, seq);
      if (starts.length > this.#maxRanges) {
        const drop = starts.length - this.#maxRanges;
        starts.splice(0, drop);
        ends.splice(0, drop);
      }
    }
  }

  /** The lowest sequence > floor that is not in the set. */
  firstMissingAbove(floor: number): number {
    let candidate = floor + 1;
    for (let i = 0; i < this.#starts.length; i++) {
      const end = this.#ends[i] as number;
      if (end < candidate) continue;
      if ((this.#starts[i] as number) > candidate) break;
      candidate = end + 1;
    }
    return candidate;
  }

  clear(): void {
    this.#starts = [];
    this.#ends = [];
  }
}
