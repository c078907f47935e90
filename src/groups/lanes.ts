/**
 * How a partitioned consumer group's work is cut into lanes, the same on
 * every transport: an event of aggregate `a` belongs to partition
 * fnv1a32(a) mod P, lane `p<n>`; events without an aggregate go to the lane
 * `plain`. P is fixed per topic by whoever created it (see the transports).
 */
import { fnv1a32 } from '../core/hash.ts';

/** The lane of events published without a partition (no aggregate, or a plain subject). */
export const UNPARTITIONED_LANE = 'plain';

export function partitionOf(key: string, partitions: number): number {
  return fnv1a32(key) % partitions;
}

/** Lanes of a topic: p0 … p<P-1>, then the unpartitioned lane. */
export function laneNames(partitions: number): string[] {
  const lanes = Array.from({ length: partitions }, (_, i) => `p${i}`);
  lanes.push(UNPARTITIONED_LANE);
  return lanes;
}
