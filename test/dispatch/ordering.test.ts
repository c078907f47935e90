import assert from 'node:assert/strict';
import { test } from 'node:test';
import { actorIndexFor } from '../../src/core/hash.ts';
import { harness, settleAll, task } from './helpers.ts';

/** Small deterministic PRNG (mulberry32) so a failure reproduces. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('per-key order holds, each actor runs one task at a time, actors interleave', async () => {
  const actors = 16;
  const keys = 200;
  const perKey = 20;
  const random = prng(42);
  const { pool } = harness({ actors, inboxSize: 1_000 });
  const processed = new Map<string, number[]>();
  const running = new Array<number>(actors).fill(0);
  let concurrent = 0;
  let maxConcurrent = 0;
  // Recorded, not asserted inside the handler: a throw there would only be retried.
  let overlaps = 0;

  const submitted: Array<[string, number]> = [];
  for (let seq = 0; seq < perKey; seq++) {
    for (let k = 0; k < keys; k++) submitted.push([`agg-${k}`, seq]);
  }
  // Shuffle across keys but keep each key's own sequence in order.
  const cursors = new Map<string, number>();
  const order = submitted.map(([key]) => key).sort(() => random() - 0.5);
  for (const key of order) {
    const seq = cursors.get(key) ?? 0;
    cursors.set(key, seq + 1);
    const delay = Math.floor(random() * 6);
    pool.submit(
      task(key, async () => {
        const actor = actorIndexFor(key, actors);
        running[actor] = (running[actor] ?? 0) + 1;
        if (running[actor] !== 1) overlaps++;
        concurrent++;
        maxConcurrent = Math.max(maxConcurrent, concurrent);
        // A random number of microtask hops: handlers finish out of submit order.
        for (let i = 0; i < delay; i++) await Promise.resolve();
        const list = processed.get(key) ?? [];
        list.push(seq);
        processed.set(key, list);
        concurrent--;
        running[actor] = (running[actor] ?? 0) - 1;
      }),
    );
  }
  const result = await settleAll(pool);
  assert.deepEqual(result, { completed: keys * perKey, abandoned: 0 });
  assert.equal(overlaps, 0, 'an actor ran two tasks at once');
  assert.equal(processed.size, keys);
  const expected = Array.from({ length: perKey }, (_, i) => i);
  for (const [key, list] of processed) assert.deepEqual(list, expected, `order of ${key}`);
  assert.ok(maxConcurrent > 1, 'different actors should interleave');
  assert.ok(maxConcurrent <= actors);
});
