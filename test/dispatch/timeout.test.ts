import assert from 'node:assert/strict';
import { describe, mock, test } from 'node:test';
import { HandlerTimeoutError } from '../../src/core/errors.ts';
import { deferred, flush, harness, settleAll, task } from './helpers.ts';

/** A handler that never settles, whatever happens to its signal. */
const hang = (): Promise<void> => new Promise(() => {});

describe('handler timeout (shared sweep)', () => {
  test('aborts the handler signal with HandlerTimeoutError and counts the attempt as failed', {
    timeout: 5_000,
  }, async () => {
    const { pool, deadLetters } = harness({ handlerTimeoutMs: 20, maxAttempts: 2 });
    const t = task('a', hang);
    const next = task('a');
    pool.submit(t);
    pool.submit(next);
    assert.equal(await t.message.whenSettled, 'term');
    assert.deepEqual(
      t.runs.map((r) => r.attempt),
      [1, 2],
    );
    for (const run of t.runs) {
      assert.equal(run.signal.aborted, true);
      assert.ok(run.signal.reason instanceof HandlerTimeoutError);
    }
    assert.equal(deadLetters.length, 1);
    assert.ok(deadLetters[0]?.error instanceof HandlerTimeoutError);
    assert.equal(deadLetters[0]?.attempts, 2);
    // The aggregate's next message runs once the hung one was given up on.
    assert.equal(await next.message.whenSettled, 'ack');
    await settleAll(pool);
  });

  test('raw: a timed-out handler is counted and acked, not retried', { timeout: 5_000 }, async () => {
    const { pool, metrics } = harness({ kind: 'raw', handlerTimeoutMs: 20 });
    const t = task('a', hang);
    pool.submit(t);
    assert.equal(await t.message.whenSettled, 'ack');
    assert.equal(t.runs.length, 1);
    assert.equal(metrics.rawFailures, 1);
    await settleAll(pool);
  });

  test('one unref-ed interval timer per pool, no timer per message, stopped when idle', {
    timeout: 5_000,
  }, async () => {
    const setIntervalSpy = mock.method(globalThis, 'setInterval');
    const setTimeoutSpy = mock.method(globalThis, 'setTimeout');
    const cleared = deferred();
    const originalClearInterval = globalThis.clearInterval;
    const clearIntervalSpy = mock.method(globalThis, 'clearInterval', (timer: NodeJS.Timeout) => {
      cleared.resolve();
      originalClearInterval(timer);
    });
    try {
      const { pool } = harness({ handlerTimeoutMs: 1_000, workingIntervalMs: 1_000 });
      const gate = deferred();
      const tasks = Array.from({ length: 300 }, (_, i) => task(`k${i % 50}`, () => gate.promise));
      for (const t of tasks) pool.submit(t);
      await flush();
      assert.equal(setIntervalSpy.mock.callCount(), 1, 'exactly one sweep timer');
      assert.equal(setTimeoutSpy.mock.callCount(), 0, 'no per-message timers');
      const timer = setIntervalSpy.mock.calls[0]?.result as NodeJS.Timeout;
      assert.equal(timer.hasRef(), false, 'the sweep never keeps the process alive');
      gate.resolve();
      await Promise.all(tasks.map((t) => t.message.whenSettled));
      // The sweep stops itself on its first tick with nothing in flight.
      await cleared.promise;
      pool.submit(task('again'));
      assert.equal(setIntervalSpy.mock.callCount(), 2, 'restarted for new work');
      await settleAll(pool);
    } finally {
      setIntervalSpy.mock.restore();
      setTimeoutSpy.mock.restore();
      clearIntervalSpy.mock.restore();
    }
  });

  test('long handlers and the messages queued behind them call working() every workingIntervalMs', {
    timeout: 5_000,
  }, async () => {
    const { pool } = harness({ handlerTimeoutMs: 60_000, workingIntervalMs: 10 });
    const gate = deferred();
    const slow = task('a', () => gate.promise);
    const behind = task('a');
    pool.submit(slow);
    pool.submit(behind);
    await slow.message.workingCalls(3);
    await behind.message.workingCalls(1);
    assert.deepEqual(slow.message.calls, ['working', 'working', 'working']);
    gate.resolve();
    assert.equal(await slow.message.whenSettled, 'ack');
    assert.equal(await behind.message.whenSettled, 'ack');
    await settleAll(pool);
  });
});
