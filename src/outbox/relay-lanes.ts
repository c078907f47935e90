/**
 * The rows a relay holds, per aggregate ("lane"): at most one publish of a
 * lane is in flight, its next row goes out only after the previous one's
 * success (see relay.ts). This file is the bookkeeping only: which rows are
 * held, in which state, in which lane; the relay decides what to send.
 */
import type { ClaimedRow } from './types.ts';

/** queued → sending → acked (→ marked and forgotten), or → releasing after a failure. */
export type RowState = 'queued' | 'sending' | 'acked' | 'releasing';

export interface Lane {
  readonly aggregateId: string;
  queue: ClaimedRow[];
  inFlight: ClaimedRow | undefined;
  awaitingMark: number;
  releasing: number;
  /** Local clock: stop sending after this unless a renewal extends it. */
  leaseValidUntil: number;
}

export interface Held {
  readonly row: ClaimedRow;
  readonly lane: Lane;
  state: RowState;
}

/** Until when a lease granted at `grantedAt` may be used: its length less a safety margin. */
export function leaseValidUntil(grantedAt: number, leaseMs: number, leaseMarginMs: number): number {
  return grantedAt + leaseMs - leaseMarginMs;
}

export class LaneBook {
  readonly lanes = new Map<string, Lane>();
  readonly held = new Map<string, Held>();

  /**
   * Tracks freshly claimed rows in their lanes (seq order) and returns the
   * lanes that got rows, and how many rows were new to us.
   */
  ingest(rows: readonly ClaimedRow[], validUntil: number): { touched: Set<Lane>; added: number } {
    const touched = new Set<Lane>();
    let added = 0;
    for (const row of rows) {
      const known = this.held.get(row.id);
      // Already ours and tracked (the claim merely re-leased it).
      if (known !== undefined && known.state !== 'releasing') continue;
      // A row we were releasing came back: the release committed (else the claim could not
      // have taken it), so this claim's grant is current. Track it afresh, in seq order with
      // the rest of its aggregate, so nothing later of the aggregate can overtake it.
      let lane = this.lanes.get(row.aggregateId);
      if (lane === undefined) {
        lane = {
          aggregateId: row.aggregateId,
          queue: [],
          inFlight: undefined,
          awaitingMark: 0,
          releasing: 0,
          leaseValidUntil: validUntil,
        };
        this.lanes.set(row.aggregateId, lane);
      }
      lane.queue.push(row);
      lane.leaseValidUntil = validUntil;
      this.held.set(row.id, { row, lane, state: 'queued' });
      added++;
      touched.add(lane);
    }
    for (const lane of touched) lane.queue.sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
    return { touched, added };
  }

  /** Removes the lane when nothing of it is queued, in flight, awaiting its mark or being released. */
  retireIfDone(lane: Lane): boolean {
    if (
      lane.inFlight !== undefined ||
      lane.queue.length > 0 ||
      lane.awaitingMark > 0 ||
      lane.releasing > 0 ||
      this.lanes.get(lane.aggregateId) !== lane
    ) {
      return false;
    }
    this.lanes.delete(lane.aggregateId);
    return true;
  }

  /** Ids of held rows whose lease is still ours to renew or release (not already being released). */
  leasedIds(): string[] {
    const ids: string[] = [];
    for (const [id, held] of this.held) if (held.state !== 'releasing') ids.push(id);
    return ids;
  }

  /** Lanes with a row among `renewed` that the renewal did not return (another relay has it). */
  lostLanes(renewed: readonly string[], stillMine: ReadonlySet<string>): Set<Lane> {
    const lost = new Set<Lane>();
    for (const id of renewed) {
      const held = this.held.get(id);
      // Gone (marked or released meanwhile), or acked (marking it is harmless either way).
      if (held === undefined || held.state === 'acked' || held.state === 'releasing') continue;
      if (!stillMine.has(id)) lost.add(held.lane);
    }
    return lost;
  }

  /** Forgets the lane's queued rows (another relay owns the aggregate) and stops it sending. */
  dropQueued(lane: Lane): void {
    for (const row of lane.queue) this.held.delete(row.id);
    lane.queue = [];
    lane.leaseValidUntil = 0;
  }

  clear(): void {
    this.held.clear();
    this.lanes.clear();
  }
}
