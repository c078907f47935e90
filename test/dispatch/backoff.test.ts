import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { abortableSleep, backoffDelay } from '../../src/dispatch/backoff.ts';

const backoff = { initialMs: 100, maxMs: 5_000, multiplier: 2, jitter: 0.2 };

describe('backoffDelay', () => {
  test('grows exponentially from initialMs and is capped at maxMs', () => {
    const noJitter = { ...backoff, jitter: 0 };
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffDelay(n, noJitter)),
      [100, 200, 400, 800, 1600, 3200, 5000, 5000],
    );
  });

  test('randomises the jitter fraction of each delay downwards, never above the cap', () => {
    assert.equal(
      backoffDelay(1, backoff, () => 0),
      100,
    );
    assert.equal(
      backoffDelay(1, backoff, () => 0.999999),
      80,
    );
    assert.equal(
      backoffDelay(3, backoff, () => 0.5),
      360,
    );
    assert.equal(
      backoffDelay(20, backoff, () => 0),
      5000,
    );
    for (let i = 0; i < 1000; i++) {
      const d = backoffDelay(2, backoff);
      assert.ok(d >= 160 && d <= 200, `delay ${d} out of [160, 200]`);
    }
  });
});

describe('abortableSleep', () => {
  test('resolves after the delay, not before', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    let resolved = false;
    const sleeping = abortableSleep(5, new AbortController().signal).then(() => {
      resolved = true;
    });
    t.mock.timers.tick(4);
    await new Promise(setImmediate); // every promise hop of an early resolve has run
    assert.equal(resolved, false, 'resolved before its delay');
    t.mock.timers.tick(1);
    await sleeping;
    assert.equal(resolved, true);
  });

  test('rejects with the reason as soon as the signal aborts, without waiting out the delay', async () => {
    const controller = new AbortController();
    const reason = new Error('deadline');
    const sleeping = abortableSleep(60_000, controller.signal);
    controller.abort(reason);
    await assert.rejects(sleeping, (error) => error === reason);
    await assert.rejects(abortableSleep(60_000, controller.signal), (error) => error === reason);
  });
});
