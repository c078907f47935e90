/**
 * Conformance scenarios: failures and shutdown. Handler errors are retried,
 * poison events dead-lettered (or parked), malformed bytes dead-lettered with
 * a reason; subscriptions closing concurrently, a publisher closing with
 * thousands of publishes pending, and a consumer closing with work in flight
 * lose nothing.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Headers } from '../core/envelope.ts';
import type { PublishResult } from '../core/types.ts';
import { createOrderChecker, formatReport } from './checker.ts';
import { ackInto, assertClean, type ConformanceKit, publishMany, uniqueTopic } from './conformance-kit.ts';
import { deferred, until } from './waiters.ts';

/** Registers the scenarios (inside the suite's describe). */
export function runFailureScenarios(kit: ConformanceKit): void {
  const { it, bus, open, n, timeout, target } = kit;

  it('a failed first delivery is retried and everything arrives (resend on error)', async () => {
    const topic = uniqueTopic('resend');
    const checker = createOrderChecker();
    const producer = await bus({ onPublishResult: ackInto(checker) });
    const consumer = await bus();
    let failures = 0;
    const done = until(
      () => checker.expectedCount() === 100 && checker.outstanding() === 0,
      () => formatReport(checker.report()),
    );
    await consumer.subscribeEnvelope(
      topic,
      (env, ctx) => {
        if (failures < 2 && ctx.attempt === 1) {
          failures++;
          throw new Error('nack the first deliveries');
        }
        checker.observe(env.eventId, env.aggregateId, env.eventVersion);
        done.check();
      },
      { backoff: { initialMs: 5, maxMs: 20 } },
    );
    await publishMany(producer, topic, { total: 100, keys: 10, publishers: 1, checker });
    await producer.flush();
    done.check();
    await done.wait(timeout / 2);
    assert.equal(failures, 2);
    assertClean(checker);
  });

  it('continues after handler errors (each message fails several times first)', async () => {
    const topic = uniqueTopic('errors');
    const checker = createOrderChecker();
    const producer = await bus({ onPublishResult: ackInto(checker) });
    const consumer = await bus();
    const done = until(
      () => checker.expectedCount() === 50 && checker.outstanding() === 0,
      () => formatReport(checker.report()),
    );
    await consumer.subscribeEnvelope(
      topic,
      (env, ctx) => {
        if (ctx.attempt <= 3) throw new Error(`attempt ${ctx.attempt} fails`);
        checker.observe(env.eventId, env.aggregateId, env.eventVersion);
        done.check();
      },
      { maxAttempts: 10, backoff: { initialMs: 1, maxMs: 5 } },
    );
    await publishMany(producer, topic, { total: 50, keys: 50, publishers: 5, checker });
    await producer.flush();
    done.check();
    await done.wait(timeout / 2);
    assertClean(checker);
  });

  for (const policy of ['continue', 'park'] as const) {
    it(`poison event: dead-lettered after maxAttempts with its reason (policy ${policy})`, async () => {
      const topic = uniqueTopic(`poison-${policy}`);
      const producer = await bus();
      const consumer = await bus();
      const versions = 10;
      const processed = new Map<string, number[]>();
      const dlq: Array<{ headers: Record<string, string> }> = [];
      const parked: Array<{ headers: Record<string, string> }> = [];
      const expectedOthers = 19 * versions;
      const expectedPoisonAgg = policy === 'continue' ? versions - 1 : 4; // versions 0..3 before the poison
      const processedCount = (): number => [...processed.values()].reduce((s, l) => s + l.length, 0);
      const done = until(
        () =>
          processedCount() === expectedOthers + expectedPoisonAgg &&
          dlq.length === 1 &&
          (policy === 'continue' || parked.length === versions - 5),
        () => `processed=${processedCount()} dlq=${dlq.length} parked=${parked.length}`,
      );
      await consumer.subscribe(`${topic}.DLQ`, (_d, ctx) => {
        dlq.push({ headers: { ...ctx.headers } });
        done.check();
      });
      await consumer.subscribe(`${topic}.PARKED`, (_d, ctx) => {
        parked.push({ headers: { ...ctx.headers } });
        done.check();
      });
      let poisonAttempts = 0;
      await consumer.subscribeEnvelope(
        topic,
        (env) => {
          if (env.aggregateId === 'agg-0' && env.eventVersion === 4) {
            poisonAttempts++;
            throw new Error('poison: cannot apply');
          }
          const list = processed.get(env.aggregateId) ?? [];
          list.push(env.eventVersion);
          processed.set(env.aggregateId, list);
          done.check();
        },
        { maxAttempts: 3, deadLetterPolicy: policy, backoff: { initialMs: 1, maxMs: 5 } },
      );
      await publishMany(producer, topic, { total: 20 * versions, keys: 20, publishers: 4 });
      await producer.flush();
      await done.wait(timeout / 2);
      assert.equal(poisonAttempts, 3);
      const dl = dlq[0]?.headers ?? {};
      assert.match(dl[Headers.deadLetterReason] ?? '', /poison: cannot apply/);
      assert.equal(dl[Headers.deadLetterAttempts], '3');
      assert.equal(dl[Headers.deadLetterTopic], topic);
      assert.equal(dl[Headers.aggregateId], 'agg-0');
      for (let k = 1; k < 20; k++) {
        assert.deepEqual(
          processed.get(`agg-${k}`),
          Array.from({ length: versions }, (_, i) => i),
          `agg-${k} processed in order`,
        );
      }
      const agg0 = processed.get('agg-0');
      if (policy === 'continue') {
        assert.deepEqual(agg0, [0, 1, 2, 3, 5, 6, 7, 8, 9]);
      } else {
        assert.deepEqual(agg0, [0, 1, 2, 3]);
        assert.equal(parked.length, versions - 5);
        for (const p of parked) assert.equal(p.headers[Headers.aggregateId], 'agg-0');
        assert.deepEqual(consumer.health().subscriptions.find((s) => s.topic === topic)?.parkedAggregates, 1);
      }
    });
  }

  it('malformed bytes on an envelope topic are dead-lettered with a reason; the stream keeps flowing', {
    skip: !target.injectRaw && 'transport cannot inject raw bytes',
  }, async () => {
    const topic = uniqueTopic('malformed');
    const producer = await bus();
    const consumer = await bus();
    const good: number[] = [];
    const dlq: Array<{ data: string; reason: string }> = [];
    const done = until(
      () => good.length === 3 && dlq.length === 3,
      () => `good=${good.length} dlq=${dlq.length}`,
    );
    await consumer.subscribe(`${topic}.DLQ`, (data, ctx) => {
      dlq.push({ data: Buffer.from(data).toString(), reason: ctx.headers[Headers.deadLetterReason] ?? '' });
      done.check();
    });
    await consumer.subscribeEnvelope<number>(topic, (env) => {
      good.push(env.payload);
      done.check();
    });
    await producer.publishEnvelope(topic, {
      aggregateId: 'm',
      eventType: 'T',
      eventVersion: 0,
      payload: 0,
    });
    await producer.flush();
    await target.injectRaw?.(topic, Buffer.from('this is not json {'));
    await producer.publishEnvelope(topic, {
      aggregateId: 'm',
      eventType: 'T',
      eventVersion: 1,
      payload: 1,
    });
    await producer.flush();
    await target.injectRaw?.(topic, Buffer.from(JSON.stringify({ aggregateId: 'no-id' })));
    await target.injectRaw?.(topic, new Uint8Array());
    await producer.publishEnvelope(topic, {
      aggregateId: 'm',
      eventType: 'T',
      eventVersion: 2,
      payload: 2,
    });
    await done.wait(timeout / 2);
    assert.deepEqual(good, [0, 1, 2]);
    const reasons = dlq.map((d) => d.reason);
    assert.ok(
      reasons.some((r) => /do not parse/.test(r)),
      `reasons: ${reasons.join(' | ')}`,
    );
    assert.ok(
      reasons.some((r) => /eventId/.test(r)),
      `reasons: ${reasons.join(' | ')}`,
    );
    assert.ok(
      reasons.some((r) => /empty body/.test(r)),
      `reasons: ${reasons.join(' | ')}`,
    );
  });

  it('concurrent subscribe/close leaves the group working', async () => {
    const topic = uniqueTopic('concurrent-close');
    const consumer = await bus();
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        const s = await consumer.subscribeEnvelope(topic, () => {}, { group: 'cc' });
        await s.close();
      }),
    );
    const checker = createOrderChecker();
    const producer = await bus({ onPublishResult: ackInto(checker) });
    await publishMany(producer, topic, { total: 50, keys: 5, publishers: 5, checker });
    await producer.flush();
    const done = until(
      () => checker.outstanding() === 0,
      () => formatReport(checker.report()),
    );
    await consumer.subscribeEnvelope(
      topic,
      (env) => {
        checker.observe(env.eventId, env.aggregateId, env.eventVersion);
        done.check();
      },
      { group: 'cc' },
    );
    await done.wait(timeout / 2);
    assertClean(checker);
  });

  it(`${n(10_000)} messages then publisher close: every accepted publish has a result and arrives`, async () => {
    const topic = uniqueTopic('pubclose');
    const checker = createOrderChecker();
    const results: PublishResult[] = [];
    const producer = await bus({
      onPublishResult: (r) => {
        results.push(r);
        ackInto(checker)(r);
      },
    });
    const ids = await publishMany(producer, topic, {
      total: n(10_000),
      keys: 100,
      publishers: 20,
      checker,
    });
    await producer.close();
    open.delete(producer);
    assert.equal(results.length, ids.length, 'exactly one result per accepted publish');
    assert.equal(new Set(results.map((r) => r.eventId)).size, ids.length);
    const consumer = await bus();
    const done = until(
      () => checker.outstanding() === 0,
      () => formatReport(checker.report()),
    );
    await consumer.subscribeEnvelope(topic, (env) => {
      checker.observe(env.eventId, env.aggregateId, env.eventVersion);
      done.check();
    });
    await done.wait(timeout / 2);
    assertClean(checker);
  });

  it('close with in-flight work: every publish settles, nothing acked that was not processed', async () => {
    const topic = uniqueTopic('closeinflight');
    const results = new Map<string, PublishResult>();
    const producer = await bus({ onPublishResult: (r) => results.set(r.eventId, r) });
    const group = `close-${randomUUID().slice(0, 6)}`;
    const first = await bus();
    const processed = new Set<string>();
    const entered = until(
      () => processed.size >= 20,
      () => `${processed.size} processed`,
    );
    const hang = deferred();
    await first.subscribeEnvelope(
      topic,
      async (env, ctx) => {
        if (processed.size >= 20 && env.eventVersion % 2 === 1) {
          // Some handlers are still running when close() arrives; they never finish in time.
          await Promise.race([hang.promise, new Promise((r) => ctx.signal.addEventListener('abort', r))]);
          throw new Error('aborted by shutdown');
        }
        processed.add(env.eventId);
        entered.check();
      },
      { group, handlerTimeoutMs: 60_000 },
    );
    const accepted: string[] = [];
    const publishes = Array.from({ length: 200 }, (_, i) =>
      producer
        .publishEnvelope(topic, { aggregateId: `c-${i % 20}`, eventType: 'T', eventVersion: i, payload: i })
        .then((a) => accepted.push(a.eventId)),
    );
    await entered.wait(timeout / 2);
    const closing = Promise.all([first.close({ timeoutMs: 500 }), producer.close()]);
    const settled = await Promise.allSettled(publishes);
    await closing;
    open.delete(first);
    open.delete(producer);
    for (const s of settled) {
      if (s.status === 'rejected') assert.equal((s.reason as { code?: string }).code, 'EVENTBUS_CLOSED');
    }
    assert.equal(results.size, accepted.length, 'one result per accepted publish');
    const stored = accepted.filter((id) => results.get(id)?.success);
    // Restart the group: everything stored but not processed must come back (it was never acked).
    const second = await bus();
    const secondSeen = new Set<string>();
    const all = until(
      () => stored.every((id) => processed.has(id) || secondSeen.has(id)),
      () => `${stored.filter((id) => !processed.has(id) && !secondSeen.has(id)).length} never processed`,
    );
    await second.subscribeEnvelope(
      topic,
      (env) => {
        secondSeen.add(env.eventId);
        all.check();
      },
      { group },
    );
    await all.wait(timeout / 2);
  });
}
