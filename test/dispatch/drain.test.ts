import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BusClosedError } from '../../src/core/errors.ts';
import { actorIndexFor } from '../../src/core/hash.ts';
import { abortableSleep } from '../../src/dispatch/backoff.ts';
import { deferred, flush, harness, keysOnSameActor, task } from './helpers.ts';

const never = (): AbortSignal => new AbortController().signal;

describe('drain', () => {
  test('waits for queued and running tasks, then resolves with what completed', async () => {
    const { pool } = harness();
    const gate = deferred();
    const tasks = [task('a', () => gate.promise), task('a'), task('b', () => gate.promise)];
    for (const t of tasks) pool.submit(t);
    let result: unknown;
    const draining = pool.drain(never()).then((r) => {
      result = r;
    });
    await flush();
    assert.equal(result, undefined, 'still running');
    assert.equal(pool.freeCapacity(), 0, 'intake stops');
    gate.resolve();
    await draining;
    assert.deepEqual(result, { completed: 3, abandoned: 0 });
    for (const t of tasks) assert.deepEqual(t.message.calls, ['ack']);
  });

  test('an idle pool drains at once; concurrent calls share one promise', async () => {
    const { pool } = harness();
    const first = pool.drain(never());
    assert.equal(pool.drain(never()), first);
    assert.deepEqual(await first, { completed: 0, abandoned: 0 });
  });

  test('a task submitted after drain began is nak-ed immediately and never run', async () => {
    const { pool } = harness();
    const gate = deferred();
    pool.submit(task('a', () => gate.promise));
    const draining = pool.drain(never());
    const late = task('a');
    pool.submit(late);
    assert.deepEqual(late.message.calls, ['nak']);
    gate.resolve();
    assert.deepEqual(await draining, { completed: 1, abandoned: 0 });
    assert.equal(late.runs.length, 0);
  });

  test('at the deadline: aborts running handlers and naks every unfinished task, never acks them', async () => {
    const [key, , elsewhere] = keysOnSameActor(2, actorIndexFor);
    const { pool } = harness({ actors: 2 });
    const gate = deferred();
    const quickGate = deferred();
    const quick = task(elsewhere, () => quickGate.promise);
    const running = task(key, () => gate.promise);
    const queued = [task(key), task(key)];
    for (const t of [quick, running, ...queued]) pool.submit(t);
    const deadline = new AbortController();
    const draining = pool.drain(deadline.signal);
    quickGate.resolve();
    await quick.message.whenSettled;
    deadline.abort(new Error('close timeout'));
    assert.deepEqual(await draining, { completed: 1, abandoned: 3 });
    const signal = running.runs[0]?.signal;
    assert.equal(signal?.aborted, true);
    assert.ok(signal?.reason instanceof BusClosedError);
    assert.equal((signal!.reason as Error).cause instanceof Error, true);
    // The handler finishing after the deadline must not ack what was nak-ed.
    gate.resolve();
    await flush();
    assert.deepEqual(running.message.calls, ['nak']);
    for (const t of queued) {
      assert.deepEqual(t.message.calls, ['nak']);
      assert.equal(t.runs.length, 0);
    }
    assert.deepEqual(pool.stats(), {
      queued: 0,
      inFlight: 0,
      parkedAggregates: 0,
      intakePaused: false,
      restarts: 0,
      fenced: 0,
      stuckHandlers: 0,
      deadLetterFailing: 0,
    });
  });

  test('the deadline cancels backoff sleeps', { timeout: 5_000 }, async () => {
    const sleeping = deferred<AbortSignal>();
    const { pool } = harness({
      sleep: (ms, signal) => {
        sleeping.resolve(signal);
        return abortableSleep(ms * 1_000, signal); // would outlive the test if not cancelled
      },
    });
    const t = task('a', () => Promise.reject(new Error('transient')));
    pool.submit(t);
    const signal = await sleeping.promise;
    const deadline = new AbortController();
    const draining = pool.drain(deadline.signal);
    deadline.abort();
    assert.deepEqual(await draining, { completed: 0, abandoned: 1 });
    assert.equal(signal.aborted, true);
    await flush();
    assert.deepEqual(t.message.calls, ['nak']);
    assert.equal(t.runs.length, 1, 'no retry after the deadline');
  });

  test('the deadline naks a task whose dead letter or parking move is still pending', async () => {
    const pending = deferred();
    const { pool } = harness({ maxAttempts: 1, deadLetterPolicy: 'park', deadLetter: () => pending.promise });
    const poison = task('a', () => Promise.reject(new Error('poison')));
    const { pool: parkPool } = harness({
      maxAttempts: 1,
      deadLetterPolicy: 'park',
      deadLetter: (r) => (r.disposition === 'parked' ? pending.promise : Promise.resolve()),
    });
    pool.submit(poison);
    const parkedPoison = task('b', () => Promise.reject(new Error('poison')));
    const parked = task('b');
    parkPool.submit(parkedPoison);
    parkPool.submit(parked);
    await parkedPoison.message.whenSettled;
    await flush();
    const deadline = new AbortController();
    deadline.abort();
    assert.deepEqual(await pool.drain(deadline.signal), { completed: 0, abandoned: 1 });
    assert.deepEqual(await parkPool.drain(deadline.signal), { completed: 0, abandoned: 1 });
    pending.resolve();
    await flush();
    assert.deepEqual(poison.message.calls, ['nak'], 'not termed after the deadline');
    assert.deepEqual(parked.message.calls, ['nak']);
  });
});
