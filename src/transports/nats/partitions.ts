/**
 * Partition layout of an envelope topic's stream (src/transports/nats/README.md, Partitioned consumer groups; issue 9).
 *
 * An event of aggregate `a` on topic `t` is stored under `t._P_.<n>` with
 * n = fnv1a32(a) mod P, so each partition can have its own filtered durable
 * consumer; the stream captures `t` too (events without a partition: other
 * publishers such as the Go SDK, older versions of this package). P is fixed
 * when the stream is created and recorded in its description; later
 * subscribers and publishers read it from there, whatever their own option
 * says, because changing P would move aggregates between partitions and
 * reorder them. The `_P_` token is reserved: topics may not contain it, so a
 * topic `orders.eu` can never collide with a partition subject of `orders`.
 */
import { InvalidArgumentError } from '../../core/errors.ts';
import { UNPARTITIONED_LANE } from '../../groups/lanes.ts';

export const PARTITION_TOKEN = '_P_';
const MARKER = /jxt-eventbus partitions=(\d+)/;

export function partitionSubject(topic: string, partition: number): string {
  return `${topic}.${PARTITION_TOKEN}.${partition}`;
}

export function partitionWildcard(topic: string): string {
  return `${topic}.${PARTITION_TOKEN}.*`;
}

export function partitionDescription(partitions: number): string {
  return `jxt-eventbus partitions=${partitions}`;
}

/** The recorded partition count, 0 for a stream without one (created by an older version or by others). */
export function recordedPartitions(
  description: string | undefined,
  subjects: readonly string[],
  topic: string,
): number {
  const match = description === undefined ? null : MARKER.exec(description);
  if (match === null || !subjects.includes(partitionWildcard(topic))) return 0;
  return Number(match[1]);
}

export function validatePartitionToken(topic: string): void {
  if (topic.split('.').includes(PARTITION_TOKEN)) {
    throw new InvalidArgumentError(
      `Expected \`topic\` without a "${PARTITION_TOKEN}" token (reserved for partition subjects), got "${topic}"`,
    );
  }
}

/** The subject a lane's consumer filters on. */
export function laneFilter(topic: string, lane: string): string {
  return lane === UNPARTITIONED_LANE ? topic : partitionSubject(topic, Number(lane.slice(1)));
}

/** The topic of a subject this transport publishes to (a partition subject or the topic itself). */
export function topicOfSubject(subject: string): string {
  const at = subject.lastIndexOf(`.${PARTITION_TOKEN}.`);
  return at === -1 ? subject : subject.slice(0, at);
}
