import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ClusterMetadata, ExtendedGroupProtocolSubscription } from '@platformatic/kafka';
import { roundRobinAssigner } from '@platformatic/kafka';
import { subscriptionAwareAssigner } from '../../../src/transports/kafka/assigner.ts';

function metadata(partitions: Record<string, number>): ClusterMetadata {
  return {
    id: 'c',
    brokers: new Map(),
    controllerId: 1,
    lastUpdate: 0,
    topics: new Map(
      Object.entries(partitions).map(([topic, count]) => [topic, { partitionsCount: count } as never]),
    ),
  };
}

function members(subscriptions: Record<string, string[]>): Map<string, ExtendedGroupProtocolSubscription> {
  return new Map(
    Object.entries(subscriptions).map(([memberId, topics]) => [
      memberId,
      { memberId, topics, version: 0 } as never,
    ]),
  );
}

/** topic → partition → owners */
function owners(result: ReturnType<typeof subscriptionAwareAssigner>): Map<string, Map<number, string[]>> {
  const out = new Map<string, Map<number, string[]>>();
  for (const { memberId, assignments } of result) {
    for (const { topic, partitions } of assignments.values()) {
      const byPartition = out.get(topic) ?? new Map<number, string[]>();
      out.set(topic, byPartition);
      for (const p of partitions) byPartition.set(p, [...(byPartition.get(p) ?? []), memberId]);
    }
  }
  return out;
}

describe('kafka group assignment (leader side)', () => {
  // One bus, default group, two subscriptions: a member per topic.
  const group = members({ 'm-orders': ['orders'], 'm-payments': ['payments'] });
  const meta = metadata({ orders: 6, payments: 6 });

  it('deals each topic only to the members that subscribed to it, every partition once', () => {
    const result = owners(subscriptionAwareAssigner('m-orders', group, new Set(['orders']), meta));
    for (const [topic, member] of [
      ['orders', 'm-orders'],
      ['payments', 'm-payments'],
    ] as const) {
      const byPartition = result.get(topic);
      assert.ok(byPartition, `${topic} assigned`);
      assert.deepEqual([...byPartition.keys()].sort(), [0, 1, 2, 3, 4, 5]);
      for (const [p, who] of byPartition) assert.deepEqual(who, [member], `${topic}[${p}]`);
    }
  });

  it("the client's default round robin would starve the other topic (why we replace it)", () => {
    const result = owners(roundRobinAssigner('m-orders', group, new Set(['orders']), meta));
    assert.equal(result.get('payments'), undefined, 'payments partitions assigned to nobody');
  });

  it('members sharing a topic split it evenly; the layout does not depend on member order', () => {
    const a = members({ x: ['t', 'u'], y: ['t'], z: ['t', 'u'] });
    const b = members({ z: ['t', 'u'], x: ['t', 'u'], y: ['t'] });
    const meta2 = metadata({ t: 6, u: 3 });
    const ra = owners(subscriptionAwareAssigner('x', a, new Set(['t']), meta2));
    const rb = owners(subscriptionAwareAssigner('z', b, new Set(['t']), meta2));
    assert.deepEqual([...(ra.get('t') ?? [])].sort(), [...(rb.get('t') ?? [])].sort());
    const perMember = new Map<string, number>();
    for (const who of ra.get('t')?.values() ?? [])
      for (const m of who) perMember.set(m, (perMember.get(m) ?? 0) + 1);
    assert.deepEqual([...perMember.values()], [2, 2, 2]);
    for (const who of ra.get('u')?.values() ?? [])
      assert.ok(who.length === 1 && who[0] !== 'y', 'y did not subscribe to u');
    assert.equal(ra.get('u')?.size, 3);
  });

  it('a member with no topics gets an empty assignment, not an error', () => {
    const result = subscriptionAwareAssigner(
      'a',
      members({ a: ['t'], idle: [] }),
      new Set(['t']),
      metadata({ t: 2 }),
    );
    const idle = result.find((r) => r.memberId === 'idle');
    assert.equal(idle?.assignments.size, 0);
  });
});
