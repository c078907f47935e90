import assert from 'node:assert/strict';
import { describe, mock, test } from 'node:test';
import { actorIndexFor } from '../../src/core/hash.ts';
import { deferred, flush, harness, keysOnSameActor, settleAll, task } from './helpers.ts';

describe('bounded inboxes and backpressure', () => {
  test('freeCapacity is actors*inboxSize minus queued and running tasks', async () => {
    const { pool } = harness({ actors: 4, inboxSize: 2 });
    assert.equal(pool.freeCapacity(), 8);
    const gate = deferred();
    // Keys on four different actors, so no single inbox reaches its bound.
    const keys: string[] = [];
    for (let i = 0; keys.length < 3; i++) {
      const key = `k${i}`;
      if (!keys.some((k) => actorIndexFor(k, 4) === actorIndexFor(key, 4))) keys.push(key);
    }
    for (const key of keys) pool.submit(task(key, () => gate.promise));
    assert.equal(pool.freeCapacity(), 5); // queued
    await flush();
    assert.equal(pool.freeCapacity(), 5); // now running: still counted
    assert.deepEqual(pool.stats(), {
      queued: 0,
      inFlight: 3,
      parkedAggregates: 0,
      intakePaused: false,
      restarts: 0,
      fenced: 0,
      stuckHandlers: 0,
      deadLetterFailing: 0,
    });
    gate.resolve();
    await settleAll(pool);
    assert.equal(pool.stats().inFlight, 0);
  });

  test('freeCapacity is 0 while one inbox is at its bound; submit still accepts (never refuses)', async () => {
    const [a, b] = keysOnSameActor(4, actorIndexFor);
    const { pool } = harness({ actors: 4, inboxSize: 2 });
    const gate = deferred();
    const first = task(a, () => gate.promise);
    pool.submit(first);
    await flush(); // first is running, the inbox is empty
    assert.equal(pool.freeCapacity(), 7);
    const queued = [task(b), task(a), task(b)];
    pool.submit(queued[0]!);
    assert.equal(pool.freeCapacity(), 6);
    assert.equal(pool.stats().intakePaused, false);
    pool.submit(queued[1]!);
    assert.equal(pool.freeCapacity(), 0, 'inbox at its bound');
    assert.equal(pool.stats().intakePaused, true, 'paused with 4 of 8 slots taken');
    pool.submit(queued[2]!); // over the bound: accepted anyway
    assert.equal(pool.freeCapacity(), 0);
    assert.equal(pool.stats().queued, 3);
    gate.resolve();
    await settleAll(pool);
    assert.equal(pool.stats().intakePaused, false);
    for (const t of [first, ...queued]) assert.equal(t.message.settled, 'ack');
  });

  test('waitForCapacity resolves when a task completes, without polling timers', async () => {
    const { pool } = harness({ actors: 1, inboxSize: 1 });
    const gate = deferred();
    pool.submit(task('a', () => gate.promise));
    pool.submit(task('a'));
    await flush();
    assert.equal(pool.freeCapacity(), 0);
    const setTimeoutSpy = mock.method(globalThis, 'setTimeout');
    const setIntervalSpy = mock.method(globalThis, 'setInterval');
    try {
      let resolved = false;
      const waiting = pool.waitForCapacity(new AbortController().signal).then(() => {
        resolved = true;
      });
      await flush();
      await flush();
      assert.equal(resolved, false, 'no capacity yet');
      assert.equal(setTimeoutSpy.mock.callCount(), 0);
      assert.equal(setIntervalSpy.mock.callCount(), 0);
      gate.resolve();
      await waiting;
      assert.ok(pool.freeCapacity() > 0);
    } finally {
      setTimeoutSpy.mock.restore();
      setIntervalSpy.mock.restore();
    }
    await settleAll(pool);
  });

  test('waitForCapacity resolves when its signal aborts', async () => {
    const { pool } = harness({ actors: 1, inboxSize: 1 });
    const gate = deferred();
    pool.submit(task('a', () => gate.promise));
    pool.submit(task('a'));
    await flush();
    const controller = new AbortController();
    const waiting = pool.waitForCapacity(controller.signal);
    controller.abort();
    await waiting;
    assert.equal(pool.freeCapacity(), 0);
    gate.resolve();
    await settleAll(pool);
  });

  test('memory stays bounded when intake respects freeCapacity', async () => {
    const { pool, options } = harness({ actors: 8, inboxSize: 4 });
    const capacity = options.actors * options.inboxSize;
    const never = new AbortController().signal;
    let maxHeld = 0;
    let done = 0;
    const total = 3_000;
    for (let i = 0; i < total; ) {
      let free = pool.freeCapacity();
      if (free === 0) {
        await pool.waitForCapacity(never);
        free = pool.freeCapacity();
      }
      for (const end = Math.min(total, i + free); i < end; i++) {
        // A hot key every 3rd message: inboxes fill unevenly.
        pool.submit(
          task(i % 3 === 0 ? 'hot' : `k${i % 97}`, async () => {
            await Promise.resolve();
            done++;
          }),
        );
      }
      const { queued, inFlight } = pool.stats();
      maxHeld = Math.max(maxHeld, queued + inFlight);
    }
    await settleAll(pool);
    assert.equal(done, total);
    assert.ok(maxHeld <= capacity, `held ${maxHeld} > capacity ${capacity}`);
  });
});
