/**
 * A member's hold on one lane (see membership.ts): what the pool and the
 * transport ask before starting work or counting a settlement. Valid until
 * `validUntil` on this process's monotonic clock; moved forward only by the
 * membership's renewals, and never again once it lapsed.
 */

export interface LaneOwnership {
  readonly lane: string;
  /** Lease revision of the claim: unique and increasing per lane; names consumer generations. */
  readonly epoch: number;
  /** No handoff started and the lease is surely still ours. */
  mayStart(): boolean;
  /** The lease is surely still ours (also while a handoff drains). */
  stillOwned(): boolean;
}

export type LaneState = 'owned' | 'releasing' | 'drained' | 'gone';

export class Ownership implements LaneOwnership {
  readonly lane: string;
  readonly epoch: number;
  revision: number;
  validUntil: number;
  state: LaneState = 'owned';
  readonly #now: () => number;
  /** Our clock passed validUntil once: final, whatever a late renewal reply says. */
  #lapsed = false;

  constructor(lane: string, revision: number, validUntil: number, now: () => number) {
    this.lane = lane;
    this.epoch = revision;
    this.revision = revision;
    this.validUntil = validUntil;
    this.#now = now;
  }

  mayStart(): boolean {
    return this.state === 'owned' && this.#live();
  }

  stillOwned(): boolean {
    return this.state !== 'gone' && this.#live();
  }

  /** Lapsed for good: the lane must be dropped and claimed anew (a rewind), never revived. */
  get lapsed(): boolean {
    return !this.#live();
  }

  /**
   * Sticky: once false, false for this ownership. A caller that saw it false
   * acted on it (the pool let a queued message go unrun, a settlement was not
   * counted); if a renewal reply could turn it true again, later messages of
   * the same aggregates would start before the ones let go.
   */
  #live(): boolean {
    if (this.#lapsed) return false;
    if (this.#now() < this.validUntil) return true;
    this.#lapsed = true;
    return false;
  }
}
