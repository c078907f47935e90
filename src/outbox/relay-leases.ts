/**
 * Lease renewal. Held rows are renewed every leaseMs/3. A lane stops sending
 * when its lease may have lapsed locally (relay-lanes.ts, leaseValidUntil),
 * and is dropped when the renewal shows another relay took it over.
 */
import { toError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { type Lane, type LaneBook, leaseValidUntil } from './relay-lanes.ts';
import type { SerialWrites } from './serial-writes.ts';
import type { RelayStore } from './types.ts';

export interface RenewalDeps {
  readonly relayId: string;
  readonly store: RelayStore;
  readonly leaseMs: number;
  readonly leaseMarginMs: number;
  readonly logger: Logger;
  readonly book: LaneBook;
  readonly writes: SerialWrites;
  aborted(): boolean;
  /** The lane's lease was extended: it may send again. */
  resume(lane: Lane): void;
  /** The lane lost its queued rows: retire it if nothing else of it is pending. */
  retire(lane: Lane): void;
}

/** Renews every held lease once; extends the lanes still ours, drops the ones taken over. */
export async function renewHeldLeases(d: RenewalDeps): Promise<void> {
  const ids = d.book.leasedIds();
  if (ids.length === 0) return;
  const startedAt = Date.now();
  let mine: string[];
  try {
    mine = await d.writes.enqueue(() => d.store.renewLeases(d.relayId, ids, d.leaseMs));
  } catch (error) {
    if (!d.aborted()) {
      d.logger.error({ relayId: d.relayId, err: toError(error) }, 'Outbox relay: lease renewal failed');
    }
    return;
  }
  if (d.aborted()) return;
  const lost = d.book.lostLanes(ids, new Set(mine));
  const validUntil = leaseValidUntil(startedAt, d.leaseMs, d.leaseMarginMs);
  for (const lane of d.book.lanes.values()) {
    if (lost.has(lane)) continue;
    lane.leaseValidUntil = validUntil;
    d.resume(lane);
  }
  for (const lane of lost) {
    // Another relay owns this aggregate now: send nothing more of it.
    d.logger.warn(
      { relayId: d.relayId, aggregateId: lane.aggregateId, dropped: lane.queue.length },
      'Outbox relay: lease lost (expired and taken over); dropping the aggregate',
    );
    d.book.dropQueued(lane);
    d.retire(lane);
  }
}
