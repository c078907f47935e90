import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { harness, recordingMetrics, settleAll, task } from './helpers.ts';

// A handler must never take the process down: any unhandled rejection fails the file.
const unhandled: unknown[] = [];
process.on('unhandledRejection', (reason) => unhandled.push(reason));
after(() => {
  assert.deepEqual(unhandled, [], 'no unhandled rejections');
});

describe('supervisor', () => {
  test('a synchronous throw from run restarts the actor and retries the in-flight task', async () => {
    const { pool, metrics } = harness();
    const t = task('a', (attempt) => {
      if (attempt === 1) throw new Error('crash outside the promise');
      return Promise.resolve();
    });
    const next = task('a');
    pool.submit(t);
    pool.submit(next);
    await settleAll(pool);
    assert.deepEqual(
      t.runs.map((r) => r.attempt),
      [1, 2],
    );
    assert.deepEqual(t.message.calls, ['ack']);
    assert.deepEqual(next.message.calls, ['ack']);
    assert.equal(metrics.restarts, 1);
    assert.equal(pool.stats().restarts, 1);
  });

  test('a task that always crashes ends in the dead letter after maxAttempts', async () => {
    const { pool, metrics, deadLetters } = harness({ maxAttempts: 3 });
    const t = task('a', () => {
      throw 'not even an Error';
    });
    pool.submit(t);
    await settleAll(pool);
    assert.equal(t.runs.length, 3);
    assert.equal(metrics.restarts, 3);
    assert.equal(deadLetters[0]?.attempts, 3);
    assert.match(deadLetters[0]?.error.message ?? '', /not even an Error/);
    assert.equal(t.message.settled, 'term');
  });

  test('raw: a task that always crashes is retried, then counted and acked', async () => {
    const { pool, metrics } = harness({ kind: 'raw', maxAttempts: 2 });
    const t = task('a', () => {
      throw new Error('crash');
    });
    pool.submit(t);
    await settleAll(pool);
    assert.equal(t.runs.length, 2);
    assert.equal(metrics.restarts, 2);
    assert.equal(metrics.rawFailures, 1);
    assert.deepEqual(t.message.calls, ['ack']);
  });

  test('a crash of the actor loop itself restarts it; finished work is not redone', async () => {
    const metrics = recordingMetrics();
    const original = metrics.messageProcessed;
    let thrown = false;
    metrics.messageProcessed = (success, seconds) => {
      if (!thrown) {
        thrown = true;
        throw new Error('metrics exploded');
      }
      original(success, seconds);
    };
    const { pool, logger } = harness({ metrics });
    const tasks = [task('a'), task('a'), task('a')];
    for (const t of tasks) pool.submit(t);
    await settleAll(pool);
    for (const t of tasks) {
      assert.equal(t.runs.length, 1);
      assert.deepEqual(t.message.calls, ['ack']);
    }
    assert.equal(metrics.restarts, 1);
    assert.equal(pool.stats().restarts, 1);
    assert.ok(logger.entries.some((e) => e.level === 'error' && /Actor crashed/.test(e.msg ?? '')));
  });
});
