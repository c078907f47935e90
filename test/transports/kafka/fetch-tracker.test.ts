/** Counting a consumer's fetches in flight through the client's diagnostics channel (no broker). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
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

describe('fetch tracker', () => {
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
      const started = Date.now();
      await fetchesSettled(mine, AbortSignal.timeout(1_000));
      assert.ok(Date.now() - started >= 50, 'waited for the slower (failing) fetch');
      assert.equal(fetchesInFlight(mine), 0);
      await Promise.all([a, b]);
    } finally {
      untrack();
    }
  });

  it('gives up at the signal', async () => {
    const mine = {};
    const untrack = trackFetches(mine);
    try {
      void fakeFetch(mine, 300);
      const started = Date.now();
      await fetchesSettled(mine, AbortSignal.timeout(30));
      assert.ok(Date.now() - started < 250);
      await sleep(300);
    } finally {
      untrack();
    }
  });
});
