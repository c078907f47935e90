import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { actorIndexFor } from '../../src/core/hash.ts';
import { deferred, flush, harness, keysOnSameActor, settleAll, task } from './helpers.ts';

describe('routing', () => {
  test('a task without key gets the round-robin key rr-<n>, in submit order', async () => {
    const { pool } = harness({ actors: 4 });
    const tasks = [task(undefined), task('order-7'), task(undefined), task(undefined)];
    for (const t of tasks) pool.submit(t);
    await settleAll(pool);
    assert.deepEqual(
      tasks.map((t) => t.runs[0]?.key),
      ['rr-0', 'order-7', 'rr-1', 'rr-2'],
    );
  });

  test('keys the stable hash puts on one actor are serialised; other actors run meanwhile', {
    timeout: 5_000,
  }, async () => {
    const actors = 8;
    // Many key triples of different shapes: a wrong hash pairs some of them differently.
    const shapes: Array<(round: number) => (i: number) => string> = [
      (round) => (i) => `order-${round}-${i}`,
      (round) => (i) => `${i}:customer:${round}`,
      (round) => (i) => `${'x'.repeat(round % 5)}${i * 7919}`,
    ];
    for (let round = 0; round < 24; round++) {
      const make = shapes[round % shapes.length]!(round);
      const [first, sameActor, otherActor] = keysOnSameActor(actors, actorIndexFor, make);
      const { pool } = harness({ actors });
      const gate = deferred();
      const otherStarted = deferred();
      let sameStarted = false;
      pool.submit(task(first, () => gate.promise));
      pool.submit(
        task(sameActor, async () => {
          sameStarted = true;
        }),
      );
      pool.submit(
        task(otherActor, async () => {
          otherStarted.resolve();
        }),
      );
      // Runs although the first actor is blocked: different actors are concurrent.
      await otherStarted.promise;
      await flush();
      assert.equal(sameStarted, false, `${sameActor} shares ${first}'s actor and must wait`);
      gate.resolve();
      await settleAll(pool);
      assert.equal(sameStarted, true);
    }
  });
});
