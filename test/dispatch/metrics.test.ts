import assert from 'node:assert/strict';
import { test } from 'node:test';
import { harness, settleAll, task } from './helpers.ts';

test('messageSent per accepted submit, messageProcessed per outcome, deadLettered by reason', async () => {
  const { pool, metrics } = harness({ maxAttempts: 2 });
  pool.submit(task('a', () => new Promise((resolve) => setImmediate(resolve))));
  pool.submit(task('b', () => Promise.reject(new Error('poison'))));
  pool.submit(task('c'));
  assert.equal(metrics.sent, 3);
  await settleAll(pool);
  pool.submit(task('late')); // after drain: nak-ed, not sent to an actor
  assert.equal(metrics.sent, 3);
  const outcomes = metrics.processed.map((p) => p.success).sort();
  assert.deepEqual(outcomes, [false, true, true]);
  for (const p of metrics.processed) assert.ok(p.seconds >= 0 && p.seconds < 5, `latency ${p.seconds}`);
  assert.deepEqual(metrics.deadLetters, ['max-attempts']);
});

test('inboxDepth is sampled, not reported per message', async () => {
  const { pool, metrics, options } = harness({ actors: 4, inboxSize: 1_000 });
  const total = 4_096;
  for (let i = 0; i < total; i++) pool.submit(task(`k${i % 13}`));
  await settleAll(pool);
  assert.ok(metrics.depth.length >= 4, `sampled ${metrics.depth.length} times`);
  assert.ok(
    metrics.depth.length <= total / 100,
    `sampled ${metrics.depth.length} times for ${total} messages`,
  );
  const capacity = options.actors * options.inboxSize;
  for (const { depth, utilization } of metrics.depth) {
    assert.ok(depth >= 0 && depth <= total);
    assert.equal(utilization, depth / capacity);
  }
  assert.ok(metrics.depth.some((d) => d.depth > 0));
  assert.deepEqual(metrics.depth.at(-1), { depth: 0, utilization: 0 }, 'reported empty once drained');
});
