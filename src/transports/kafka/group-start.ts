/**
 * Where a new Kafka group starts with SubscribeOptions.startFrom 'latest'.
 *
 * Kafka's own answer (auto.offset.reset) is per partition and applies every
 * time a partition without a committed offset is assigned: a 'latest' group
 * whose partition saw no traffic before its members left would skip what was
 * published there meanwhile, as if it were new again. So the start is
 * recorded once, when the group has no committed offset on the topic at all:
 * every partition's end offset is committed for the group before its first
 * member joins. Later members find committed offsets, which always win.
 * Kafka has no compare-and-set here: two members starting at the same moment
 * may both commit "the end", a few records apart; that only moves where a
 * brand-new group starts, never a running group's position (the broker
 * refuses the commit once the group has members).
 */
import type { Admin } from '@platformatic/kafka';
import { TransportError } from '../../core/errors.ts';
import { brokerErrorIds, describeKafkaError } from './errors.ts';

/** The offset Kafka reports for a partition the group never committed. */
const NO_COMMIT = -1n;
/** ListOffsets timestamp meaning "the log end offset". */
const LATEST = -1n;

type OffsetsAdmin = Pick<
  Admin,
  'listConsumerGroupOffsets' | 'listOffsets' | 'alterConsumerGroupOffsets' | 'metadata'
>;

/**
 * Commits the end offset of each of `topic`'s partitions for `group` when the
 * group has committed nothing on it. Returns whether it did; an active group
 * (the broker refuses) or one with offsets is left as it is.
 */
export async function recordLatestGroupStart(
  admin: OffsetsAdmin,
  topic: string,
  group: string,
): Promise<boolean> {
  try {
    return await record(admin, topic, group);
  } catch (error) {
    throw new TransportError(
      `Expected to record where group ${group} starts on ${topic} (startFrom 'latest'), got ${describeKafkaError(error)}`,
      { cause: error },
    );
  }
}

async function record(admin: OffsetsAdmin, topic: string, group: string): Promise<boolean> {
  const metadata = await admin.metadata({ topics: [topic] });
  const count = metadata.topics.get(topic)?.partitionsCount ?? 0;
  if (count === 0) return false;
  const partitionIndexes = Array.from({ length: count }, (_, i) => i);
  const committed = await admin
    .listConsumerGroupOffsets({ groups: [{ groupId: group, topics: [{ name: topic, partitionIndexes }] }] })
    .then(
      ([found]) => found,
      (error: unknown) => {
        // Some brokers answer for a group they never saw with an error, Kafka with no offsets.
        if (brokerErrorIds(error).includes('GROUP_ID_NOT_FOUND')) return undefined;
        throw error;
      },
    );
  const hasOffsets = (committed?.topics ?? []).some((t) =>
    t.partitions.some((p) => p.committedOffset !== NO_COMMIT),
  );
  if (hasOffsets) return false;
  const [listed] = await admin.listOffsets({
    topics: [
      {
        name: topic,
        partitions: partitionIndexes.map((partitionIndex) => ({ partitionIndex, timestamp: LATEST })),
      },
    ],
  });
  try {
    await admin.alterConsumerGroupOffsets({
      groupId: group,
      topics: [
        {
          name: topic,
          partitionOffsets: (listed?.partitions ?? []).map((p) => ({
            partition: p.partitionIndex,
            offset: p.offset,
          })),
        },
      ],
    });
    return true;
  } catch {
    // Members are active (they decide, with their own commits), or the group is being created right now.
    return false;
  }
}
