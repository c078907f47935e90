import assert from 'node:assert/strict';
import { describe, mock, test } from 'node:test';
import { HandlerTimeoutError } from '../../src/core/errors.ts';
import { deferred, flush, harness, recordingMetrics, settleAll, task } from './helpers.ts';

/** A handler that only ends when its signal aborts (it honours the timeout). */
const hang = (_attempt: number, _key: string, signal: AbortSignal): Promise<void> =>
  new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));

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

  test('a timed-out handler that ignores its abort: no retry and no next event until it settled; stuck meanwhile', {
    timeout: 5_000,
  }, async () => {
    const metrics = recordingMetrics();
    const stuck = deferred();
    const recordStuck = metrics.stuckHandlers.bind(metrics);
    metrics.stuckHandlers = (count) => {
      recordStuck(count);
      if (count === 1) stuck.resolve();
    };
    const { pool, logger } = harness({ handlerTimeoutMs: 20, maxAttempts: 2, metrics });
    const release = deferred();
    let running = 0;
    let mostAtOnce = 0;
    const track = async (work: Promise<void>): Promise<void> => {
      running++;
      mostAtOnce = Math.max(mostAtOnce, running);
      try {
        await work;
      } finally {
        running--;
      }
    };
    // Attempt 1 ignores its signal and ends only when released; attempt 2 succeeds.
    const t = task('a', (attempt) => track(attempt === 1 ? release.promise : Promise.resolve()));
    const next = task('a', () => track(Promise.resolve()));
    pool.submit(t);
    pool.submit(next);
    await stuck.promise;
    assert.equal(t.runs.length, 1, 'no retry while the timed-out execution still runs');
    assert.equal(next.runs.length, 0, "the aggregate's next event waits too");
    assert.equal(pool.stats().stuckHandlers, 1);
    assert.ok(
      logger.entries.some((e) => e.level === 'error' && /ignores its abort signal/.test(e.msg ?? '')),
    );
    release.resolve();
    assert.equal(await t.message.whenSettled, 'ack');
    assert.equal(await next.message.whenSettled, 'ack');
    assert.deepEqual(
      t.runs.map((r) => r.attempt),
      [1, 2],
    );
    assert.equal(mostAtOnce, 1, 'never two executions at once');
    assert.equal(pool.stats().stuckHandlers, 0);
    assert.equal(metrics.stuck.at(-1), 0);
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
