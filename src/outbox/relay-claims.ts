/**
 * When and how much a relay claims. Every trigger (a lane retiring, NOTIFY,
 * notify(), the poll tick) goes through `request()`: it claims now, or right
 * after the claim in progress (requests in between coalesce into one), so
 * none is lost while a claim runs. While the database fails, claims back off
 * (200 ms doubling up to 10 s) and the outage is logged once.
 */
import { Backoff } from '../core/backoff.ts';
import { toError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { ClaimedRow, RelayStore } from './types.ts';

/** Between claims while the database fails. */
const CLAIM_BACKOFF = { initialMs: 200, maxMs: 10_000, multiplier: 2, jitter: 0.2 };

export interface ClaimDeps {
  readonly relayId: string;
  readonly store: RelayStore;
  readonly batchSize: number;
  readonly minClaim: number;
  readonly leaseMs: number;
  readonly logger: Logger;
  /** Rows held now (the batch is what is left of batchSize). */
  held(): number;
  running(): boolean;
  aborted(): boolean;
  /** Takes claimed rows; `claimedAt` is when the claim was sent (the lease runs from there). */
  ingest(rows: readonly ClaimedRow[], claimedAt: number): void;
}

export class Claimer {
  readonly #d: ClaimDeps;
  readonly #backoff = new Backoff(CLAIM_BACKOFF);
  #claiming: Promise<void> | undefined;
  #claimAgain = false;
  #blockedUntil = 0;

  constructor(deps: ClaimDeps) {
    this.#d = deps;
  }

  /** The claim in progress, if any (close waits for it). */
  get inProgress(): Promise<void> | undefined {
    return this.#claiming;
  }

  request(): void {
    if (!this.#d.running()) return;
    if (Date.now() < this.#blockedUntil) return; // backing off: a later tick claims
    if (this.#claiming !== undefined) {
      this.#claimAgain = true;
      return;
    }
    this.#claimAgain = false;
    this.#claiming = this.#claimOnce().finally(() => {
      this.#claiming = undefined;
      if (this.#claimAgain) this.request();
    });
  }

  async #claimOnce(): Promise<void> {
    const d = this.#d;
    const held = d.held();
    const capacity = d.batchSize - held;
    // Wait for a worthwhile batch unless idle (the lanes still running will ask again).
    if (capacity <= 0 || (capacity < d.minClaim && held > 0)) return;
    const startedAt = Date.now();
    let rows: ClaimedRow[];
    try {
      rows = await d.store.claim(d.relayId, capacity, d.leaseMs);
    } catch (error) {
      // No hot loop against a failing database: back off (poll ticks skip until then).
      this.#claimAgain = false;
      this.#blockedUntil = Date.now() + this.#backoff.next();
      if (d.running() && this.#backoff.failures === 1) {
        d.logger.error(
          { relayId: d.relayId, err: toError(error) },
          'Outbox relay: claim failed; retrying with backoff until the database answers again',
        );
      }
      return;
    }
    if (this.#backoff.failures > 0) {
      d.logger.info(
        { relayId: d.relayId, failedClaims: this.#backoff.failures },
        'Outbox relay: claiming works again',
      );
      this.#backoff.reset();
      this.#blockedUntil = 0;
    }
    if (d.aborted()) return;
    if (rows.length > 0) {
      d.logger.debug({ relayId: d.relayId, rows: rows.length }, 'Outbox relay: claimed');
      d.ingest(rows, startedAt);
    }
    // A full batch: there is probably more.
    if (rows.length >= capacity) this.#claimAgain = true;
  }
}
