/**
 * The group leader's partition assignment. Each subscription of ours is its
 * own group member with its own topic, and one group (the bus clientId by
 * default) commonly spans several topics. `@platformatic/kafka`'s default
 * round-robin assigner deals the *leader's* topics to every member, ignoring
 * what each member subscribed to: the partitions of the other members' topics
 * were never assigned, and those topics silently stalled. This one deals each
 * topic's partitions only among the members that subscribed to it, like the
 * Java client's assignors.
 */
import type {
  ClusterMetadata,
  ExtendedGroupProtocolSubscription,
  GroupAssignment,
  GroupPartitionsAssignments,
} from '@platformatic/kafka';

export function subscriptionAwareAssigner(
  _current: string,
  members: Map<string, ExtendedGroupProtocolSubscription>,
  _leaderTopics: Set<string>,
  metadata: ClusterMetadata,
): GroupPartitionsAssignments[] {
  const result = new Map<string, Map<string, GroupAssignment>>();
  const subscribers = new Map<string, string[]>();
  for (const [memberId, subscription] of members) {
    result.set(memberId, new Map());
    for (const topic of subscription.topics ?? []) {
      const list = subscribers.get(topic);
      if (list === undefined) subscribers.set(topic, [memberId]);
      else if (!list.includes(memberId)) list.push(memberId);
    }
  }
  // Sorted, so every leader computes the same layout; the running offset
  // spreads topics with few partitions over different members.
  let offset = 0;
  for (const topic of [...subscribers.keys()].sort()) {
    const memberIds = (subscribers.get(topic) as string[]).sort();
    const partitions = metadata.topics.get(topic)?.partitionsCount ?? 0;
    for (let partition = 0; partition < partitions; partition++) {
      const memberId = memberIds[(offset + partition) % memberIds.length] as string;
      const assignments = result.get(memberId) as Map<string, GroupAssignment>;
      const entry = assignments.get(topic);
      if (entry === undefined) assignments.set(topic, { topic, partitions: [partition] });
      else entry.partitions.push(partition);
    }
    offset += partitions;
  }
  return [...result].map(([memberId, assignments]) => ({ memberId, assignments }));
}
