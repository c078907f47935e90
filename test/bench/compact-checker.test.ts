/** The soak's compact checker must classify exactly like the order checker it stands in for. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createCompactChecker } from '../../bench/compact-checker.ts';
import { createWorkload } from '../../bench/workload.ts';
import { createOrderChecker, type OrderChecker } from '../../src/testing/checker.ts';

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('compact checker', () => {
  it('agrees with createOrderChecker on lost, duplicated, out-of-order, unknown and unexpected messages', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const random = seeded(seed);
      const w = createWorkload({ name: `cc${seed}`, topics: 4, aggregates: 50, payloadBytes: 64 });
      const n = 3_000;
      const full = createOrderChecker();
      const compact = createCompactChecker(w, n);
      const both = (f: (c: OrderChecker) => void) => {
        f(full);
        f(compact);
      };
      for (let i = 0; i < n; i++) both((c) => w.expect(c, i));
      for (let i = 0; i < n; i++) {
        const r = random();
        if (r < 0.9) both((c) => c.acknowledged(w.eventIdOf(i)));
        else if (r < 0.95) both((c) => c.failed(w.eventIdOf(i)));
      }
      // Delivery order: stream order with some messages held back (arrive late), some
      // duplicated, some dropped, plus a few foreign ids.
      const order: number[] = [];
      const late: number[] = [];
      for (let i = 0; i < n; i++) {
        const r = random();
        if (r < 0.02) continue;
        if (r < 0.04) late.push(i);
        else order.push(i);
        if (r > 0.98) order.push(i);
      }
      order.push(...late);
      for (const i of order) {
        both((c) => c.observe(w.eventIdOf(i), w.aggregateOf(i), w.versionOf(i)));
      }
      both((c) => c.observe('foreign-1', 'agg-x', 0));
      const a = full.report();
      const b = compact.report();
      const counts = (r: typeof a) => ({
        published: r.published,
        acknowledged: r.acknowledged,
        unknown: r.unknown,
        consumed: r.consumed,
        ok: r.ok,
        lost: r.lost,
        duplicated: r.duplicated,
        outOfOrder: r.outOfOrder,
        unexpected: r.unexpected,
        recovered: r.recovered,
      });
      assert.deepEqual(counts(b), counts(a), `seed ${seed}`);
      assert.ok(a.outOfOrder > 0 && a.lost > 0 && a.duplicated > 0, 'the scenario exercises every class');
      assert.equal(compact.outstanding(), full.outstanding());
      assert.equal(compact.expectedCount(), full.expectedCount());
    }
  });
});
