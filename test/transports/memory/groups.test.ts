/**
 * Consumer groups on the memory transport behave like partitioned groups on
 * NATS (issue 9, item 3): several subscriptions of one group on one broker
 * split the partitions, and an aggregate's events are never handled out of
 * order, lost, or by two subscriptions at once, also while members close and
 * join mid-stream. Judged by the order checker plus a per-aggregate overlap
 * count taken inside the handlers.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createEventBus, createMemoryBroker, InvalidArgumentError } from '../../../src/index.ts';
import { until } from '../../../src/testing/index.ts';
import { GroupRun, LANES, open, type SubscriptionView } from './group-run.ts';

after(async () => {
  await Promise.all([...open].map((b) => b.close()));
});

describe('memory transport: consumer groups split partitions like NATS', { timeout: 120_000 }, () => {
  for (const size of [2, 3]) {
    it(`${size} subscriptions in one group: 0 out of order, 0 lost, 0 overlapping executions`, async () => {
      const run = new GroupRun();
      for (let m = 0; m < size; m++) await run.join(`m${m}`);
      await run.until(
        () => run.balanced(),
        () => run.describeOwnership(),
      );
      await run.publish(4_000);
      await run.allConsumed();
      run.assertClean(`${size} members`);
      for (const [name, count] of run.handled) assert.ok(count > 0, `${name} handled nothing`);
    });
  }

  it('a subscription closing mid-stream with work queued drains and hands over: 0 lost, 0 out of order', async () => {
    const run = new GroupRun();
    await run.join('stays');
    await run.join('leaves');
    await run.until(
      () => run.balanced(),
      () => run.describeOwnership(),
    );
    run.closeGate();
    await run.publish(2_000);
    await run.until(
      () => run.holdingWork(5),
      () => `started ${[...run.started]}`,
    );
    // Its intake stops at once; its pool still holds running and queued work, released by the gate.
    await Promise.all([run.leave('leaves', 30_000, () => run.openGate()), run.publish(2_000)]);
    await run.allConsumed();
    run.assertClean('one of two closes mid-stream (drained)');
    assert.ok((run.handled.get('leaves') ?? 0) > 0, 'the leaving member finished its in-flight work');
    await run.until(
      () => run.membership('stays').owned.length === LANES,
      () => run.describeOwnership(),
    );
  });

  it('a subscription closing past its deadline: aborted work comes back to the next owner first', async () => {
    const run = new GroupRun();
    await run.join('stays');
    await run.join('leaves');
    await run.until(
      () => run.balanced(),
      () => run.describeOwnership(),
    );
    run.closeGate();
    await run.publish(2_000);
    await run.until(
      () => run.holdingWork(5),
      () => `started ${[...run.started]}`,
    );
    // Handlers of the leaving member stay blocked until its close deadline aborts them.
    await Promise.all([run.leave('leaves', 200), run.publish(1_000)]);
    run.openGate();
    await run.publish(1_000);
    await run.allConsumed();
    run.assertClean('one of two closes past its deadline');
    assert.equal(run.handled.get('leaves'), 0, 'nothing finished on the leaving member');
    assert.ok(run.checker.report().duplicated > 0, 'aborted executions were handled again by the next owner');
  });

  it('a third subscription joining mid-stream gets partitions handed over: 0 lost, 0 out of order', async () => {
    const run = new GroupRun();
    await run.join('m0');
    await run.join('m1');
    await run.until(
      () => run.balanced(),
      () => run.describeOwnership(),
    );
    run.closeGate();
    await run.publish(2_000);
    await run.until(
      () => run.holdingWork(5),
      () => `started ${[...run.started]}`,
    );
    // The old members hold queued work of lanes they must hand over; publishing goes on.
    await Promise.all([run.join('m2'), run.publish(1_000)]);
    await run.until(
      () => run.membership('m0').releasing.length + run.membership('m1').releasing.length > 0,
      () => run.describeOwnership(),
    );
    run.openGate();
    await run.until(
      () => run.balanced(),
      () => run.describeOwnership(),
    );
    await run.publish(1_000);
    await run.allConsumed();
    run.assertClean('third joins mid-stream');
    assert.ok((run.handled.get('m2') ?? 0) > 0, 'the new member handled events');
    const handoffs = run.membership('m0').handoffs + run.membership('m1').handoffs;
    assert.ok(handoffs > 0, `the old members handed lanes over (${run.describeOwnership()})`);
    assert.ok(run.droppedInAll() > 0, 'queued work of handed-over lanes was let go and redelivered');
  });

  it('chaos mode with 2 subscriptions in one group: duplicates and delays, still 0 out of order, 0 lost', async () => {
    const run = new GroupRun({ member: { chaos: { duplicateRate: 0.2, maxDelayMs: 2, seed: 7 } } });
    await run.join('m0');
    await run.join('m1');
    await run.until(
      () => run.balanced(),
      () => run.describeOwnership(),
    );
    await run.publish(2_000);
    await run.allConsumed();
    run.assertClean('chaos, 2 members');
    assert.ok(run.checker.report().duplicated > 100, 'chaos produced duplicates');
  });

  for (const synchronous of [true, false]) {
    const handlers = synchronous ? 'synchronous' : 'async';
    it(`a stalled event loop past the lease (${handlers} handlers): lanes are fenced and re-claimed, 0 lost, 0 out of order`, async () => {
      const leaseMs = 200;
      const run = new GroupRun({
        member: { group: { leaseMs } },
        synchronous,
        stall: { index: 1_000, ms: 3 * leaseMs },
      });
      await run.join('m0');
      await run.join('m1');
      await run.until(
        () => run.balanced(),
        () => run.describeOwnership(),
      );
      await run.publish(2_000);
      await run.allConsumed();
      await run.publish(1_000);
      await run.allConsumed();
      run.assertClean(`stall past the lease, 2 members, ${handlers} handlers`);
      const views = ['m0', 'm1'].map((m) => run.subscription(m));
      const lost = views.reduce((sum, v) => sum + v.membership.leasesLost, 0);
      const fenced = views.reduce((sum, v) => sum + v.fencedSettlements, 0);
      process.stdout.write(
        `# stall (${handlers}): leases lost ${lost}, settlements ignored after fencing ${fenced}\n`,
      );
      assert.ok(lost > 0, 'the stall outlasted the leases');
      assert.ok(fenced > 0, 'handlers settled after their lease lapsed: ignored');
      // Synchronous handlers are never suspended across the stall, so nothing can overlap even then.
      if (synchronous) assert.equal(run.fencedOverlaps, 0);
    });
  }

  it('the partition count is fixed by the first bus that uses a topic; later buses keep it', async () => {
    const broker = createMemoryBroker();
    const first = await createEventBus({
      transport: 'memory',
      clientId: 'first',
      memory: { broker, partitions: 4 },
      metrics: { enabled: false },
    });
    const warnings: string[] = [];
    const noop = (): void => {};
    const later = await createEventBus({
      transport: 'memory',
      clientId: 'later',
      memory: { broker, partitions: 8 },
      metrics: { enabled: false },
      logger: { debug: noop, info: noop, error: noop, warn: (_obj, msg) => warnings.push(msg ?? '') },
    });
    open.add(first);
    open.add(later);
    await first.publishEnvelope('fixed-p', { aggregateId: 'a', eventType: 'T', eventVersion: 1, payload: 1 });
    await later.subscribeEnvelope('fixed-p', () => {}, { group: 'g' });
    const details = later.health().details as { subscriptions: SubscriptionView[] };
    const stats = details.subscriptions[0] as SubscriptionView & { partitions: number };
    assert.equal(stats.partitions, 4);
    assert.deepEqual(
      warnings.filter((w) => w.includes('fixed-p has 4 partitions')).length,
      1,
      `one warning that memory.partitions does not apply: ${JSON.stringify(warnings)}`,
    );
    const signal = until(
      () =>
        (later.health().details as { subscriptions: SubscriptionView[] }).subscriptions[0]?.membership.owned
          .length === 5,
      () => JSON.stringify(later.health().details),
    );
    const poll = setInterval(() => signal.check(), 20);
    await signal.wait(10_000).finally(() => clearInterval(poll));
  });

  it('validates partitions and lease options', async () => {
    for (const memory of [{ partitions: 0 }, { partitions: 1.5 }, { group: { leaseMs: 10 } }]) {
      await assert.rejects(
        createEventBus({ transport: 'memory', clientId: 'x', memory, metrics: { enabled: false } }),
        InvalidArgumentError,
        JSON.stringify(memory),
      );
    }
  });
});
