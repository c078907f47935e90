/** Counting a consumer's fetches in flight through the client's diagnostics channel (no broker). */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { consumerFetchesChannel } from '@platformatic/kafka';
import {
  fetchesInFlight,
  fetchesSettled,
  trackFetches,
} from '../../../src/transports/kafka/fetch-tracker.ts';

/** What Consumer#fetch does: a traced callback-style call. */
function fakeFetch(client: object, ms: number, fail = false): Promise<void> {
  return new Promise((resolve) => {
    consumerFetchesChannel.traceCallback(
      (callback: (error: Error | null) => void) => {
        setTimeout(() => callback(fail ? new Error('fetch failed') : null), ms);
      },
      0,
      { client, operation: 'fetch' } as never,
      undefined,
      () => resolve(),
    );
  });
}

/** 'pending' when `promise` has not settled once the callbacks queued so far ran. */
async function state(promise: Promise<unknown>): Promise<string> {
  let outcome = 'pending';
  promise.then(
    () => {
      outcome = 'settled';
    },
    () => {
      outcome = 'settled';
    },
  );
  await new Promise<void>((resolve) => setImmediate(resolve));
  return outcome;
}

describe('fetch tracker', () => {
  // The fetches' durations run on mock timers: the test moves the clock, nothing sleeps.
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout'] }));
  afterEach(() => mock.timers.reset());

  it('counts in-flight fetches of a tracked client only, and resolves when they settle', async () => {
    const mine = {};
    const other = {};
    const untrack = trackFetches(mine);
    try {
      const a = fakeFetch(mine, 30);
      const b = fakeFetch(mine, 60, true);
      void fakeFetch(other, 200);
      assert.equal(fetchesInFlight(mine), 2);
      assert.equal(fetchesInFlight(other), 0, 'untracked clients are ignored');
      const settled = fetchesSettled(mine, new AbortController().signal);
      mock.timers.tick(30);
      await a;
      assert.equal(fetchesInFlight(mine), 1);
      assert.equal(await state(settled), 'pending', 'waits for the slower (failing) fetch');
      mock.timers.tick(30);
      await b;
      await settled;
      assert.equal(fetchesInFlight(mine), 0);
      mock.timers.tick(140); // the untracked client's fetch ends too
    } finally {
      untrack();
    }
  });

  it('gives up at the signal', async () => {
    const mine = {};
    const untrack = trackFetches(mine);
    try {
      const fetch = fakeFetch(mine, 300);
      const deadline = new AbortController();
      const settled = fetchesSettled(mine, deadline.signal);
      assert.equal(await state(settled), 'pending');
      deadline.abort();
      await settled;
      assert.equal(fetchesInFlight(mine), 1, 'gave up while the fetch was still in flight');
      mock.timers.tick(300);
      await fetch;
      assert.equal(fetchesInFlight(mine), 0);
    } finally {
      untrack();
    }
  });
});
