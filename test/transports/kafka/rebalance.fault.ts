/**
 * Kafka fault tests: group membership changes while the group has work
 * (issue 9's Kafka cases, design note case 15). Whole buses (real actor pool)
 * on the kfake test broker (or KAFKA_BROKERS), judged by the checker.
 *
 *   KFAKE_BIN=../shared/tools/kafka/kfake-server ./node_modules/.bin/node --test test/transports/kafka/rebalance.fault.ts
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Envelope } from '../../../src/index.ts';
import { createOrderChecker, formatReport, type OrderChecker } from '../../../src/testing/checker.ts';
import {
  announceKafkaSkip,
  type KafkaTestCluster,
  kafkaForTests,
  kafkaSkipReason,
} from '../../harness/kafka-broker.ts';
import {
  allConsumed,
  assertNoLossNoReorder,
  type CheckedBus,
  type EventPayload,
  kafkaBus,
  publishBacklog,
  uniqueName,
  waitFor,
} from './fault-kit.ts';

announceKafkaSkip('the Kafka rebalance fault tests');

const AGGREGATES = 60;
const PER_AGGREGATE = 100;

describe('Kafka faults: members joining a busy group', {
  skip: kafkaSkipReason ?? false,
  timeout: 300_000,
}, () => {
  let cluster: KafkaTestCluster | undefined;
  const open: CheckedBus[] = [];
  const bus = async (name: string): Promise<CheckedBus> => {
    const b = await kafkaBus(cluster?.brokers ?? [], name);
    open.push(b);
    return b;
  };
  before(async () => {
    cluster = await kafkaForTests();
  });
  after(async () => {
    await Promise.all(open.map((b) => b.bus.close({ timeoutMs: 5_000 })));
    await cluster?.stop();
  });

  /** A handler that records what it handled and takes `ms` of (simulated I/O) time per event. */
  const handler =
    (checker: OrderChecker, ms: number, counter: { handled: number }) =>
    async (env: Envelope<EventPayload>): Promise<void> => {
      await sleep(ms);
      checker.observe(env.eventId, env.aggregateId, env.payload.index);
      counter.handled++;
    };

  it('a member joins a group whose handlers are slow, before anything was committed: 0 lost', async () => {
    const topic = uniqueName('join-slow');
    const group = uniqueName('g');
    const checker = createOrderChecker();
    const producer = await bus('producer');
    await publishBacklog(producer, checker, topic, AGGREGATES, PER_AGGREGATE);
    const a = await bus('member-a');
    const b = await bus('member-b');
    const byA = { handled: 0 };
    const byB = { handled: 0 };
    // A handles its first events, then waits on a gate until B's join is under way: A still has
    // work by construction, and the partitions it gives up that it had not read from yet have no
    // committed offset (-1), the case that lost events before.
    const held = Promise.withResolvers<void>();
    let opened = false;
    const slowA = handler(checker, 5, byA);
    await a.bus.subscribeEnvelope(
      topic,
      async (env: Envelope<EventPayload>) => {
        if (!opened && byA.handled >= 10) await held.promise;
        await slowA(env);
      },
      { group },
    );
    await waitFor('A to handle its first events', () => byA.handled >= 10, 60_000);
    const handledBeforeJoin = byA.handled;
    const joining = b.bus.subscribeEnvelope(topic, handler(checker, 5, byB), { group });
    const view = () =>
      (a.bus.health().details?.subscriptions as Array<{ paused?: string[] }> | undefined)?.[0];
    await waitFor(
      'A to start revoking its partitions',
      () => view()?.paused?.includes('rebalance') === true,
      60_000,
    );
    opened = true;
    held.resolve();
    await joining;
    await allConsumed(checker, 180_000);
    const report = checker.report();
    console.log(
      `# join with slow handlers: A ${byA.handled} (${handledBeforeJoin} before B joined), B ${byB.handled}; ${formatReport(report)}`,
    );
    assertNoLossNoReorder(report, 'join with slow handlers');
    assert.ok(handledBeforeJoin < AGGREGATES * PER_AGGREGATE, 'B joined while A still had work');
    assert.ok(byB.handled > 0, 'B got partitions');
  });

  it('two members of a new group start 0.5 s apart on a backlog: 0 lost', async () => {
    const topic = uniqueName('two-start');
    const group = uniqueName('g');
    const checker = createOrderChecker();
    const producer = await bus('producer');
    await publishBacklog(producer, checker, topic, AGGREGATES, PER_AGGREGATE);
    const a = await bus('member-a');
    const b = await bus('member-b');
    const byA = { handled: 0 };
    const byB = { handled: 0 };
    await a.bus.subscribeEnvelope(topic, handler(checker, 2, byA), { group });
    await sleep(500); // the scenario itself (two deployments starting close together), not a synchronisation
    await b.bus.subscribeEnvelope(topic, handler(checker, 2, byB), { group });
    await allConsumed(checker, 180_000);
    const report = checker.report();
    console.log(`# two members 0.5 s apart: A ${byA.handled}, B ${byB.handled}; ${formatReport(report)}`);
    assertNoLossNoReorder(report, 'two members 0.5 s apart');
  });

  it('a member leaves mid-stream (graceful close) and another joins: 0 lost', async () => {
    const topic = uniqueName('leave');
    const group = uniqueName('g');
    const checker = createOrderChecker();
    const producer = await bus('producer');
    // Half the stream before the leave, half after it: the leave is mid-stream by construction.
    await publishBacklog(producer, checker, topic, AGGREGATES, PER_AGGREGATE / 2);
    const a = await bus('member-a');
    const b = await bus('member-b');
    const byA = { handled: 0 };
    const byB = { handled: 0 };
    // A handles 100, then its handlers wait on a gate: A deterministically still has work when B
    // joins (a plain race lost that under load: A finished the backlog before B's join completed).
    const held = Promise.withResolvers<void>();
    let opened = false;
    const slowA = handler(checker, 2, byA);
    await a.bus.subscribeEnvelope(
      topic,
      async (env: Envelope<EventPayload>) => {
        if (!opened && byA.handled >= 100) await held.promise;
        await slowA(env);
      },
      { group },
    );
    await waitFor('A busy, then held', () => byA.handled >= 100, 120_000);
    // B's join completes only once A revoked its partitions (A drains first): do not await it yet.
    const joining = b.bus.subscribeEnvelope(topic, handler(checker, 2, byB), { group });
    const view = () =>
      (a.bus.health().details?.subscriptions as Array<{ paused?: string[] }> | undefined)?.[0];
    await waitFor(
      'A to start revoking its partitions',
      () => view()?.paused?.includes('rebalance') === true,
      60_000,
    );
    opened = true;
    held.resolve();
    await joining;
    await waitFor('B busy', () => byB.handled >= 1, 120_000);
    await a.bus.close({ timeoutMs: 2_000 });
    await publishBacklog(producer, checker, topic, AGGREGATES, PER_AGGREGATE, PER_AGGREGATE / 2);
    const c = await bus('member-c');
    const byC = { handled: 0 };
    await c.bus.subscribeEnvelope(topic, handler(checker, 2, byC), { group });
    await allConsumed(checker, 180_000);
    const report = checker.report();
    console.log(
      `# leave and join: A ${byA.handled}, B ${byB.handled}, C ${byC.handled}; ${formatReport(report)}`,
    );
    assertNoLossNoReorder(report, 'leave and join');
  });
});
