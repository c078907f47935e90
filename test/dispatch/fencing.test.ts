import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DeliveryLane, InboundMessage } from '../../src/core/transport.ts';
import { deferred, type FakeTask, harness, settleAll, task } from './helpers.ts';

/** A lane whose ownership the test flips; records what the pool dropped. */
function lane(): DeliveryLane & { start: boolean; owned: boolean; dropped_: InboundMessage[] } {
  const l = {
    id: 'orders/g/p0',
    start: true,
    owned: true,
    dropped_: [] as InboundMessage[],
    mayStart: () => l.start,
    stillOwned: () => l.owned,
    dropped: (m: InboundMessage) => {
      l.dropped_.push(m);
    },
  };
  return l;
}

function onLane(t: FakeTask, l: DeliveryLane): FakeTask {
  Object.defineProperty(t.message, 'lane', { value: l });
  return t;
}

describe('lane fencing', () => {
  test('queued tasks of a revoked lane never start and are dropped unsettled; the running one finishes', async () => {
    const { pool } = harness({ actors: 1 });
    const l = lane();
    const release = deferred();
    const started = deferred();
    const running = onLane(
      task('a', () => {
        started.resolve();
        return release.promise;
      }),
      l,
    );
    const queued = [onLane(task('a'), l), onLane(task('b'), l)];
    const other = task('c');
    for (const t of [running, ...queued, other]) pool.submit(t);
    await started.promise;
    assert.equal(running.runs.length, 1);
    l.start = false; // graceful handoff: nothing new starts
    release.resolve();
    assert.equal(await running.message.whenSettled, 'ack', 'a running handler may finish and settle');
    assert.equal(await other.message.whenSettled, 'ack', 'unpartitioned work flows on');
    await settleAll(pool);
    for (const t of queued) {
      assert.equal(t.runs.length, 0);
      assert.equal(t.message.settled, undefined, 'a fenced message is neither acked nor nak-ed');
    }
    assert.deepEqual(
      l.dropped_,
      queued.map((t) => t.message),
    );
    assert.equal(pool.stats().fenced, 2);
    assert.equal(pool.stats().queued, 0);
  });

  test('a failing task whose lane is lost is neither retried nor dead-lettered', async () => {
    const l = lane();
    const failed = deferred();
    let deadLetters = 0;
    const { pool } = harness({
      maxAttempts: 5,
      backoff: { initialMs: 1, maxMs: 1, multiplier: 1, jitter: 0 },
      deadLetter: () => {
        deadLetters++;
        return Promise.resolve();
      },
    });
    const poison = onLane(
      task('a', () => {
        l.start = false; // the lease is lost while the attempt runs
        failed.resolve();
        return Promise.reject(new Error('boom'));
      }),
      l,
    );
    pool.submit(poison);
    await failed.promise;
    await settleAll(pool);
    assert.equal(poison.runs.length, 1);
    assert.equal(deadLetters, 0);
    assert.equal(poison.message.settled, undefined);
    assert.deepEqual(l.dropped_, [poison.message]);
  });
});
