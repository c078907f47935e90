/**
 * The Kafka transport against a broker, through the Transport contract
 * directly: a small FlowControl (broker-kit.ts) stands in for the bus; the
 * checker (src/testing/checker.ts) judges loss and order.
 *
 * The broker: KAFKA_BROKERS (a real cluster, Kafka 3.5+) when set, else the
 * kfake test broker from KFAKE_BIN (scripts/test.sh sets it), started once for
 * this file. Without either the file skips with one line.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Admin } from '@platformatic/kafka';
import type { InboundMessage, Transport } from '../../../src/core/transport.ts';
import { createOrderChecker, formatReport, type OrderChecker } from '../../../src/testing/checker.ts';
import type { KafkaTransportOptions } from '../../../src/transports/kafka/index.ts';
import {
  announceKafkaSkip,
  type KafkaTestCluster,
  kafkaForTests,
  kafkaSkipReason,
} from '../../harness/kafka-broker.ts';
import {
  CheckedFlow,
  event,
  events,
  gate,
  kafkaTransport,
  keysOf,
  publishChecked,
  publishFailures,
  shutdown,
  subscriptionView,
  unique,
  until,
} from './broker-kit.ts';

announceKafkaSkip('the Kafka broker tests');

let cluster: KafkaTestCluster | undefined;

/** Topics created by this file, deleted at the end (matters on a real cluster). */
const createdTopics: string[] = [];
function topicName(name: string): string {
  const topic = unique(name);
  createdTopics.push(topic);
  return topic;
}

function transport(name: string, overrides: Partial<KafkaTransportOptions> = {}): Promise<Transport> {
  return kafkaTransport(cluster?.brokers ?? [], name, overrides);
}

function assertClean(checker: OrderChecker, what: string): void {
  const r = checker.report();
  assert.equal(r.lost, 0, `${what}: nothing lost (${formatReport(r)})`);
  assert.equal(r.outOfOrder, 0, `${what}: nothing out of order (${formatReport(r)})`);
  assert.equal(r.unexpected, 0, `${what}: nothing unexpected (${formatReport(r)})`);
  assert.equal(r.unknown, 0, `${what}: every publish acknowledged (${formatReport(r)})`);
}

describe('Kafka transport against a broker', {
  skip: kafkaSkipReason ?? false,
  timeout: 600_000,
}, () => {
  before(async () => {
    cluster = await kafkaForTests();
  });
  after(async () => {
    if (cluster === undefined) return;
    if (cluster.source === 'external' && createdTopics.length > 0) {
      const admin = new Admin({ clientId: unique('cleanup'), bootstrapBrokers: [...cluster.brokers] });
      try {
        await admin.deleteTopics({ topics: createdTopics });
      } catch {
        // best effort
      } finally {
        await admin.close();
      }
    }
    await cluster.stop();
  });

  it('round trip: body, headers, key, offset', async () => {
    const t = await transport('roundtrip');
    try {
      const topic = topicName('roundtrip');
      await t.ensureTopic(topic, 'envelope');
      const message = event(topic, 'order-42', 0);
      const checker = createOrderChecker();
      const [outcome] = await publishChecked(t, checker, [
        {
          ...message,
          headers: { ...message.headers, 'x-custom': 'Zürich ✓', 'Nats-Msg-Id': 'never-on-kafka' },
        },
      ]);
      assert.ok(outcome?.ok, 'published');
      assert.match(outcome.offset ?? '', /^\d+$/);
      const flow = new CheckedFlow(checker);
      const sub = await t.subscribe(
        { topic, group: unique('g'), kind: 'envelope', handlerTimeoutMs: 1_000 },
        flow,
      );
      await until('the message', () => flow.received.length === 1, 60_000);
      const got = flow.received[0] as InboundMessage;
      assert.equal(got.topic, topic);
      assert.deepEqual(JSON.parse(Buffer.from(got.data).toString()), { key: 'order-42', seq: 0, pad: '' });
      assert.equal(got.key, 'order-42');
      assert.equal(got.headers['X-Event-ID'], message.headers['X-Event-ID']);
      assert.equal(got.headers['X-Aggregate-ID'], 'order-42');
      assert.equal(got.headers['x-custom'], 'Zürich ✓');
      // A header named like NATS's own travels as any other: Kafka owns no such header (ownedHeaders).
      assert.equal(got.headers['Nats-Msg-Id'], 'never-on-kafka');
      assert.equal(got.sequence, Number(outcome.offset));
      assert.equal(got.deliveryCount, 1);
      assert.match(got.lane?.id ?? '', new RegExp(`^${topic}/`), 'the message carries its partition lane');
      await shutdown(sub, flow);
      assert.deepEqual(flow.errors, []);
    } finally {
      await t.close(AbortSignal.timeout(10_000));
    }
  });

  it('10,000 messages over 100 keys: every message, per-key order', async () => {
    const t = await transport('order');
    try {
      const topic = topicName('order');
      await t.ensureTopic(topic, 'envelope');
      const keys = keysOf(100);
      const perKey = 100;
      const checker = createOrderChecker();
      assert.deepEqual(publishFailures(await publishChecked(t, checker, events(topic, keys, perKey))), []);
      const flow = new CheckedFlow(checker, { capacity: 500 });
      const sub = await t.subscribe(
        { topic, group: unique('g'), kind: 'envelope', handlerTimeoutMs: 1_000 },
        flow,
      );
      await until('10,000 messages', () => checker.outstanding() === 0, 180_000);
      await shutdown(sub, flow);
      assertClean(checker, 'order');
      console.log(`# order: ${formatReport(checker.report())}`);
    } finally {
      await t.close(AbortSignal.timeout(10_000));
    }
  });

  it('consumer restarted mid-stream: nothing lost, nothing out of order, duplicates counted', async () => {
    const topic = topicName('restart');
    const group = unique('g');
    const keys = keysOf(100);
    const perKey = 100;
    const total = keys.length * perKey;
    const checker = createOrderChecker();
    const producer = await transport('restart-pub');
    try {
      await producer.ensureTopic(topic, 'envelope');
      assert.deepEqual(
        publishFailures(await publishChecked(producer, checker, events(topic, keys, perKey / 2))),
        [],
      );

      // First consumer: stops after roughly a third, while the rest is still being published.
      const first = await transport('restart-a');
      const flowA = new CheckedFlow(checker, { capacity: 300 });
      const subA = await first.subscribe({ topic, group, kind: 'envelope', handlerTimeoutMs: 1_000 }, flowA);
      const publishing = publishChecked(producer, checker, events(topic, keys, perKey, perKey / 2));
      await until('a third', () => checker.report().ok >= total / 3, 120_000);
      await shutdown(subA, flowA);
      await first.close(AbortSignal.timeout(10_000));
      const afterFirst = checker.report().ok;

      // Second consumer, same group: continues from the committed offsets.
      const second = await transport('restart-b');
      const flowB = new CheckedFlow(checker, { capacity: 300 });
      const subB = await second.subscribe({ topic, group, kind: 'envelope', handlerTimeoutMs: 1_000 }, flowB);
      assert.deepEqual(publishFailures(await publishing), []);
      await until('every message', () => checker.outstanding() === 0, 180_000);
      await shutdown(subB, flowB);
      await second.close(AbortSignal.timeout(10_000));

      assert.ok(afterFirst < total, 'the restart happened mid-stream');
      assertClean(checker, 'restart');
      console.log(`# restart: ${afterFirst} before the restart; ${formatReport(checker.report())}`);
    } finally {
      await producer.close(AbortSignal.timeout(10_000));
    }
  });

  it('a second member joining while the first still has work: partitions are handed over after draining', async () => {
    const topic = topicName('rebalance');
    const group = unique('g');
    const keys = keysOf(60);
    const perKey = 100;
    const total = keys.length * perKey;
    const checker = createOrderChecker();
    const producer = await transport('rebalance-pub');
    const a = await transport('rebalance-a');
    const b = await transport('rebalance-b');
    try {
      await producer.ensureTopic(topic, 'envelope');
      assert.deepEqual(
        publishFailures(await publishChecked(producer, checker, events(topic, keys, perKey))),
        [],
      );
      // A handles a quarter, then its handlers wait on a gate: A deterministically still has
      // three quarters of the backlog (and handlers running) when B joins.
      const held = gate();
      let handledByA = 0;
      const flowA = new CheckedFlow(checker, {
        capacity: 300,
        handler: async () => {
          if (++handledByA > total / 4) await held.promise;
        },
      });
      const subA = await a.subscribe({ topic, group, kind: 'envelope', handlerTimeoutMs: 1_000 }, flowA);
      await until('A blocked after a quarter', () => flowA.running > 0 && handledByA > total / 4, 120_000);
      const okBeforeJoin = checker.report().ok;
      const flowB = new CheckedFlow(checker, { capacity: 300 });
      // B's join completes only once A has revoked its partitions (A drains first), so do not await it yet.
      const subscribingB = b.subscribe({ topic, group, kind: 'envelope', handlerTimeoutMs: 1_000 }, flowB);
      await until(
        'A to start revoking its partitions',
        () => subscriptionView(a)?.paused.includes('rebalance') === true,
        60_000,
      );
      held.open(); // A's running handlers finish within the drain; A's queued ones are let go unrun
      const subB = await subscribingB;
      await until('B to own partitions', () => (subscriptionView(b)?.partitions.length ?? 0) > 0, 60_000);
      await until('every message', () => checker.outstanding() === 0, 180_000);
      await Promise.all([shutdown(subA, flowA), shutdown(subB, flowB)]);
      assert.ok(okBeforeJoin < total, 'A still had work when B joined');
      assertClean(checker, 'rebalance');
      assert.ok(flowB.received.length > 0, 'the second member got messages');
      console.log(
        `# rebalance: ${okBeforeJoin}/${total} done before the join, A let ${flowA.dropped} go unrun; ${formatReport(checker.report())}`,
      );
    } finally {
      await Promise.all([a, b, producer].map((t) => t.close(AbortSignal.timeout(10_000))));
    }
  });
});
