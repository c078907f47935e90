import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { createEventBus, createMemoryBroker, type EventBus } from '../../src/index.ts';
import { pollUntil } from '../../src/testing/waiters.ts';

/** Sum of a metric's samples (all label sets) in the registry, 0 when absent. */
async function total(registry: Registry, name: string): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (metric === undefined) return 0;
  const { values } = await metric.get();
  return values.filter((v) => !('metricName' in v) || v.metricName === name).reduce((s, v) => s + v.value, 0);
}

/** Polls (the code under test works on its own timers), through the one shared poller. */
const until = (condition: () => Promise<boolean>, what: string) =>
  pollUntil(condition, { what, intervalMs: 10 });

describe('group metrics (partition ownership)', () => {
  it('owned partitions, claims and graceful handoffs are counted per member', async () => {
    const broker = createMemoryBroker();
    const registries = [new Registry(), new Registry()];
    const buses: EventBus[] = [];
    try {
      for (const [i, registry] of registries.entries()) {
        buses.push(
          await createEventBus({
            transport: 'memory',
            clientId: `member${i}`,
            memory: { broker, partitions: 4, group: { leaseMs: 300 } },
            metrics: { registry },
          }),
        );
      }
      const [a, b] = buses as [EventBus, EventBus];
      const [ra, rb] = registries as [Registry, Registry];
      await a.subscribeEnvelope('metered', () => {}, { group: 'g' });
      await until(
        async () => (await total(ra, 'memory_eventbus_member0_group_partitions_owned')) === 5,
        'a owns 4 + plain',
      );
      await b.subscribeEnvelope('metered', () => {}, { group: 'g' });
      await until(async () => {
        const ofA = await total(ra, 'memory_eventbus_member0_group_partitions_owned');
        const ofB = await total(rb, 'memory_eventbus_member1_group_partitions_owned');
        return ofA > 0 && ofB > 0 && ofA + ofB === 5;
      }, 'a and b split the 5 lanes');
      assert.ok(
        (await total(ra, 'memory_eventbus_member0_group_handoffs_total')) >= 1,
        'a handed lanes over',
      );
      assert.equal(
        await total(rb, 'memory_eventbus_member1_group_partition_claims_total'),
        await total(rb, 'memory_eventbus_member1_group_partitions_owned'),
      );
      assert.equal(await total(ra, 'memory_eventbus_member0_group_leases_lost_total'), 0);
      assert.match(await ra.metrics(), /memory_eventbus_member0_group_handoff_seconds_bucket/);
    } finally {
      for (const bus of buses) await bus.close();
    }
  });
});
