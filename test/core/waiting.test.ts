/** The abort-aware waiting kit, on node:test mock timers: no real sleeps. */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import { pause, raceSignal, sleep, wakeOrAbort, withTimeout } from '../../src/core/waiting.ts';

/** Lets resolved promises run their callbacks. */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Settles as 'pending' when `promise` has not settled after the microtasks ran. */
async function state(promise: Promise<unknown>): Promise<string> {
  let outcome = 'pending';
  promise.then(
    () => {
      outcome = 'resolved';
    },
    () => {
      outcome = 'rejected';
    },
  );
  await flush();
  return outcome;
}

beforeEach(() => mock.timers.enable({ apis: ['setTimeout'] }));
afterEach(() => mock.timers.reset());

describe('sleep', () => {
  test('resolves when its time has passed, not before', async () => {
    const slept = sleep(100);
    mock.timers.tick(99);
    assert.equal(await state(slept), 'pending');
    mock.timers.tick(1);
    assert.equal(await state(slept), 'resolved');
  });

  test('rejects with the signal reason when aborted first, and at once when already aborted', async () => {
    const controller = new AbortController();
    const slept = sleep(100, controller.signal);
    controller.abort(new Error('deadline'));
    await assert.rejects(slept, /deadline/);
    await assert.rejects(sleep(100, AbortSignal.abort(new Error('gone'))), /gone/);
  });

  test('pause resolves instead of rejecting on abort', async () => {
    const controller = new AbortController();
    const paused = pause(100, controller.signal);
    controller.abort();
    assert.equal(await state(paused), 'resolved');
  });
});

describe('raceSignal', () => {
  test('passes the value on when the promise wins', async () => {
    assert.equal(await raceSignal(Promise.resolve(7), new AbortController().signal), 7);
  });

  test('passes a rejection on when it comes before the abort', async () => {
    await assert.rejects(raceSignal(Promise.reject(new Error('no')), new AbortController().signal), /no/);
  });

  test('resolves undefined when the signal aborts first, or was aborted already', async () => {
    const controller = new AbortController();
    const never = new Promise<number>(() => {});
    const raced = raceSignal(never, controller.signal);
    assert.equal(await state(raced), 'pending');
    controller.abort();
    assert.equal(await raced, undefined);
    assert.equal(await raceSignal(Promise.reject(new Error('late')), AbortSignal.abort()), undefined);
  });
});

describe('withTimeout', () => {
  test('rejects with the given error after the timeout', async () => {
    const timed = withTimeout(new Promise(() => {}), 50, () => new Error('took too long'));
    mock.timers.tick(49);
    assert.equal(await state(timed), 'pending');
    mock.timers.tick(1);
    await assert.rejects(timed, /took too long/);
  });

  test('passes the outcome on when the promise settles first', async () => {
    assert.equal(await withTimeout(Promise.resolve('ok'), 50, () => new Error('x')), 'ok');
  });
});

describe('wakeOrAbort', () => {
  test('resolves when woken and runs the undo', async () => {
    const waiters = new Set<() => void>();
    const waited = wakeOrAbort(undefined, (wake) => {
      waiters.add(wake);
      return () => waiters.delete(wake);
    });
    assert.equal(waiters.size, 1);
    assert.equal(await state(waited), 'pending');
    for (const wake of [...waiters]) wake();
    assert.equal(await state(waited), 'resolved');
    assert.equal(waiters.size, 0);
  });

  test('resolves on abort, removes its waiter, and leaves no listener on the signal', async () => {
    const controller = new AbortController();
    const waiters = new Set<() => void>();
    const add = mock.method(controller.signal, 'addEventListener');
    const remove = mock.method(controller.signal, 'removeEventListener');
    const waited = wakeOrAbort(controller.signal, (wake) => {
      waiters.add(wake);
      return () => waiters.delete(wake);
    });
    controller.abort();
    assert.equal(await state(waited), 'resolved');
    assert.equal(waiters.size, 0);
    assert.equal(add.mock.callCount(), 1);
    assert.equal(remove.mock.callCount(), 1);
  });

  test('resolves after timeoutMs when nothing wakes it', async () => {
    const waited = wakeOrAbort(new AbortController().signal, () => undefined, 20);
    mock.timers.tick(19);
    assert.equal(await state(waited), 'pending');
    mock.timers.tick(1);
    assert.equal(await state(waited), 'resolved');
  });

  test('an aborted signal resolves at once without registering', async () => {
    let registered = false;
    await wakeOrAbort(AbortSignal.abort(), () => {
      registered = true;
      return undefined;
    });
    assert.equal(registered, false);
  });

  test('a wake inside register resolves and still undoes the registration', async () => {
    const waiters = new Set<() => void>();
    const waited = wakeOrAbort(undefined, (wake) => {
      waiters.add(wake);
      wake();
      return () => waiters.delete(wake);
    });
    assert.equal(await state(waited), 'resolved');
    assert.equal(waiters.size, 0);
  });
});
