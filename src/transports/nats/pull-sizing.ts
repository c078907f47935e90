/**
 * How much a pull loop's next pull asks for: doubled (up to fetchBatch) after
 * a pull that filled its batch (or expired while at least a batch arrived),
 * twice what arrived (at least MIN_PULL_BATCH) after one that expired. A loop whose partition is empty then holds little
 * of the pool's room in pulls that return nothing; with 17 loops per topic,
 * those pulls left the loops that still had messages a share too small to
 * pull at all until their own partly answered pulls ran out of grace (pauses
 * of up to 2 s at the end of a backlog).
 */
import type { PullOutcome } from './pull-wire.ts';

/** The smallest pull a loop whose last pull expired asks for. */
export const MIN_PULL_BATCH = 32;

export class PullSizing {
  readonly #fetchBatch: number;
  #limit: number;

  constructor(fetchBatch: number) {
    this.#fetchBatch = fetchBatch;
    this.#limit = fetchBatch;
  }

  /** What the next pull asks for when room allows (MIN_PULL_BATCH or less: the lane is idle). */
  get limit(): number {
    return this.#limit;
  }

  /** The next pull's batch, given what the loop may ask for. */
  batchFor(free: number): number {
    return Math.min(this.#limit, free);
  }

  /**
   * A pull of `batch` ended with `outcome` while `arrived` messages came in
   * (counted towards it or towards older open pulls: the lane's flow either way).
   */
  ended(batch: number, outcome: PullOutcome, arrived: number): void {
    const filled = outcome.kind === 'done' || (outcome.kind === 'expired' && arrived >= batch);
    if (filled) this.#limit = Math.min(this.#fetchBatch, Math.max(this.#limit, batch * 2));
    else if (outcome.kind === 'expired')
      this.#limit = Math.min(this.#fetchBatch, Math.max(MIN_PULL_BATCH, arrived * 2));
  }
}
