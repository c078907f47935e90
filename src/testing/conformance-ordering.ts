/**
 * Conformance scenarios: ordering. Per-aggregate order holds under
 * concurrency and under handler failures, judged by the order checker.
 */
import assert from 'node:assert/strict';
import { createOrderChecker, formatReport } from './checker.ts';
import { ackInto, assertClean, type ConformanceKit, publishMany, uniqueTopic } from './conformance-kit.ts';
import { until } from './waiters.ts';

/** Registers the scenarios (inside the suite's describe). */
export function runOrderingScenarios(kit: ConformanceKit): void {
  const { it, bus, n, timeout } = kit;

  it(`per-key order holds for ${n(1000)} messages over 16 keys`, async () => {
    const topic = uniqueTopic('order');
    const checker = createOrderChecker();
    const producer = await bus({ onPublishResult: ackInto(checker) });
    const consumer = await bus();
    const done = until(
      () => checker.expectedCount() === n(1000) && checker.outstanding() === 0,
      () => formatReport(checker.report()),
    );
    await consumer.subscribeEnvelope(
      topic,
      async (env) => {
        // Uneven handler times across keys interleave actors.
        if (env.eventVersion % 7 === 0) await new Promise((r) => setImmediate(r));
        checker.observe(env.eventId, env.aggregateId, env.eventVersion);
        done.check();
      },
      { actors: 8 },
    );
    await publishMany(producer, topic, { total: n(1000), keys: 16, publishers: 16, checker });
    await producer.flush();
    done.check();
    await done.wait(timeout / 2);
    assertClean(checker, true);
  });

  it(`order under failure: 200 aggregates × 50 versions, 10% of first attempts throw`, async () => {
    const topic = uniqueTopic('orderfail');
    const checker = createOrderChecker();
    const producer = await bus({ onPublishResult: ackInto(checker) });
    const consumer = await bus();
    const total = n(200) * 50;
    let dead = 0;
    const done = until(
      () => checker.expectedCount() === total && checker.outstanding() === 0,
      () => formatReport(checker.report()),
    );
    await consumer.subscribe(`${topic}.DLQ`, () => {
      dead++;
    });
    let thrown = 0;
    await consumer.subscribeEnvelope(
      topic,
      (env, ctx) => {
        // Deterministic 10%: hash of the event id's last hex digits.
        if (ctx.attempt === 1 && Number.parseInt(env.eventId.slice(-2), 16) % 10 === 0) {
          thrown++;
          throw new Error('transient');
        }
        checker.observe(env.eventId, env.aggregateId, env.eventVersion);
        done.check();
      },
      { backoff: { initialMs: 1, maxMs: 10 } },
    );
    await publishMany(producer, topic, { total, keys: n(200), publishers: 20, checker });
    await producer.flush();
    done.check();
    await done.wait(timeout);
    assert.ok(thrown > total * 0.05, `expected ~10% failures, got ${thrown}`);
    assertClean(checker, false);
    assert.equal(dead, 0, 'nothing dead-lettered');
  });
}
