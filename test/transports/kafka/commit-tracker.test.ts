/**
 * The commit watermark (no broker): a commit may never pass an unfinished
 * message, whatever order messages complete in.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CommitTracker,
  PartitionCommitTracker,
  type Settlement,
} from '../../../src/transports/kafka/commit-tracker.ts';

/** mulberry32: a small seeded PRNG so a failing property run can be replayed. */
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

const offsets = (t: PartitionCommitTracker): string | undefined => t.watermark?.offset.toString();

describe('PartitionCommitTracker', () => {
  it('in order: the watermark follows each completion, commits are offset + 1', () => {
    const t = new PartitionCommitTracker();
    for (let i = 0n; i < 5n; i++) t.deliver(i);
    assert.equal(t.committable(), undefined);
    assert.equal(t.inFlight, 5);
    for (let i = 0n; i < 5n; i++) {
      assert.equal(t.settle(i, 'ack'), true);
      assert.equal(t.watermark?.offset, i + 1n);
    }
    assert.deepEqual(t.committable(), { offset: 5n, leaderEpoch: -1 });
    t.markCommitted(5n);
    assert.equal(t.committable(), undefined, 'nothing new to commit');
    assert.equal(t.inFlight, 0);
    assert.equal(t.outstanding, 0);
  });

  it('out of order: never commits past an unfinished message', () => {
    const t = new PartitionCommitTracker();
    for (let i = 10n; i <= 14n; i++) t.deliver(i);
    t.settle(11n, 'ack');
    t.settle(13n, 'ack');
    t.settle(14n, 'ack');
    assert.equal(t.committable(), undefined, '10 is still running');
    t.settle(10n, 'ack');
    assert.equal(offsets(t), '12', '12 is still running');
    t.settle(12n, 'ack');
    assert.equal(offsets(t), '15');
    assert.equal(t.inFlight, 0);
  });

  it('gaps (compaction holes, transaction markers) do not hold the watermark', () => {
    const t = new PartitionCommitTracker();
    t.deliver(5n);
    t.deliver(7n);
    t.deliver(9n);
    t.settle(7n, 'ack');
    assert.equal(t.committable(), undefined);
    t.settle(5n, 'ack');
    assert.equal(offsets(t), '8');
    t.settle(9n, 'ack');
    assert.equal(offsets(t), '10');
  });

  it('a nak holds the watermark at its offset for good; a later ack of it is ignored', () => {
    const t = new PartitionCommitTracker();
    for (let i = 0n; i < 6n; i++) t.deliver(i);
    t.settle(0n, 'ack');
    t.settle(1n, 'ack');
    t.settle(2n, 'nak');
    t.settle(3n, 'ack');
    t.settle(4n, 'term');
    t.settle(5n, 'ack');
    assert.equal(offsets(t), '2', 'nothing at or after the nak-ed offset');
    assert.equal(t.held, 1);
    assert.equal(t.inFlight, 0);
    assert.equal(t.settle(2n, 'ack'), false, 'the first settlement wins');
    assert.equal(offsets(t), '2');
    t.deliver(6n);
    t.settle(6n, 'ack');
    assert.equal(offsets(t), '2');
  });

  it('term counts as done', () => {
    const t = new PartitionCommitTracker();
    t.deliver(0n);
    t.deliver(1n);
    t.settle(0n, 'term');
    t.settle(1n, 'ack');
    assert.equal(offsets(t), '2');
  });

  it('settlement is idempotent and unknown offsets are ignored', () => {
    const t = new PartitionCommitTracker();
    t.deliver(3n);
    assert.equal(t.settle(3n, 'ack'), true);
    assert.equal(t.settle(3n, 'ack'), false);
    assert.equal(t.settle(3n, 'nak'), false);
    assert.equal(t.settle(99n, 'ack'), false);
    assert.equal(offsets(t), '4');
  });

  it('rejects offsets that do not increase (re-fetches must be filtered before)', () => {
    const t = new PartitionCommitTracker();
    t.deliver(5n);
    assert.throws(() => t.deliver(5n), RangeError);
    assert.throws(() => t.deliver(4n), RangeError);
  });

  it('carries the leader epoch of the last done record', () => {
    const t = new PartitionCommitTracker();
    t.deliver(0n, 3);
    t.deliver(1n, 4);
    t.settle(1n, 'ack');
    t.settle(0n, 'ack');
    assert.deepEqual(t.committable(), { offset: 2n, leaderEpoch: 4 });
  });

  it('markCommitted is monotonic', () => {
    const t = new PartitionCommitTracker();
    t.deliver(0n);
    t.deliver(1n);
    t.settle(0n, 'ack');
    t.markCommitted(1n);
    t.settle(1n, 'ack');
    t.markCommitted(0n);
    assert.equal(t.committed, 1n);
    assert.deepEqual(t.committable(), { offset: 2n, leaderEpoch: -1 });
  });

  it('handles offsets above 2^53 exactly (bigint)', () => {
    const t = new PartitionCommitTracker();
    const big = 2n ** 60n;
    t.deliver(big);
    t.deliver(big + 1n);
    t.settle(big + 1n, 'ack');
    t.settle(big, 'ack');
    assert.equal(t.watermark?.offset, big + 2n);
  });

  it('stays exact over 100,000 messages completing in shuffled windows', () => {
    const random = prng(7);
    const t = new PartitionCommitTracker();
    const n = 100_000;
    const window: bigint[] = [];
    let next = 0n;
    let lowestUnfinished = 0n;
    const done = new Set<bigint>();
    while (next < BigInt(n) || window.length > 0) {
      while (window.length < 500 && next < BigInt(n)) {
        t.deliver(next);
        window.push(next++);
      }
      const i = Math.floor(random() * window.length);
      const offset = window[i] as bigint;
      window[i] = window[window.length - 1] as bigint;
      window.pop();
      t.settle(offset, 'ack');
      done.add(offset);
      while (done.has(lowestUnfinished)) done.delete(lowestUnfinished++);
      if (lowestUnfinished > 0n) assert.equal(t.watermark?.offset, lowestUnfinished);
    }
    assert.equal(t.watermark?.offset, BigInt(n));
    assert.equal(t.outstanding, 0);
  });
});

describe('CommitTracker (many partitions)', () => {
  it('tracks partitions independently and collects only moved watermarks', () => {
    const c = new CommitTracker();
    const partitions = 64;
    for (let p = 0; p < partitions; p++) {
      const t = c.assign('orders', p);
      for (let o = 0n; o < 10n; o++) t.deliver(BigInt(p) * 1000n + o);
    }
    assert.equal(c.size, partitions);
    assert.equal(c.inFlight(), partitions * 10);
    // Finish everything on even partitions, all but the first message on odd ones.
    for (let p = 0; p < partitions; p++) {
      const t = c.get('orders', p) as PartitionCommitTracker;
      for (let o = 9n; o >= (p % 2 === 0 ? 0n : 1n); o--) t.settle(BigInt(p) * 1000n + o, 'ack');
    }
    const commits = c.collect();
    assert.equal(commits.length, partitions / 2);
    for (const commit of commits) {
      assert.equal(commit.partition % 2, 0);
      assert.equal(commit.offset, BigInt(commit.partition) * 1000n + 10n);
    }
    c.markCommitted(commits);
    assert.equal(c.collect().length, 0, 'committed watermarks are not collected again');
    (c.get('orders', 1) as PartitionCommitTracker).settle(1000n, 'ack');
    assert.deepEqual(c.collect(), [{ topic: 'orders', partition: 1, offset: 1010n, leaderEpoch: -1 }]);
  });

  it('a revoked partition is never collected, even when its messages finish later', () => {
    const c = new CommitTracker();
    const t = c.assign('orders', 3);
    t.deliver(0n);
    const revoked = c.revoke('orders', 3);
    assert.equal(revoked, t);
    t.settle(0n, 'ack');
    assert.deepEqual(c.collect(), []);
    const fresh = c.assign('orders', 3);
    assert.notEqual(fresh, t);
    assert.equal(fresh.lastDelivered, undefined);
  });
});

/**
 * Property: against a reference model (the plain definition, recomputed from
 * scratch), for random interleavings of deliveries (with gaps), acks, terms
 * and naks, the watermark is always exactly "one past the longest done
 * prefix" and never passes an unfinished offset.
 */
describe('watermark property (reference model)', () => {
  type State = 'pending' | 'done' | 'held';

  function reference(delivered: Array<{ offset: bigint; state: State }>): bigint | undefined {
    let watermark: bigint | undefined;
    for (const d of delivered) {
      if (d.state !== 'done') break;
      watermark = d.offset + 1n;
    }
    return watermark;
  }

  it('matches the reference model over 500 random runs', () => {
    for (let seed = 1; seed <= 500; seed++) {
      const random = prng(seed);
      const t = new PartitionCommitTracker();
      const model: Array<{ offset: bigint; state: State }> = [];
      let next = BigInt(Math.floor(random() * 1000));
      let committed: bigint | undefined;
      const steps = 50 + Math.floor(random() * 250);
      for (let step = 0; step < steps; step++) {
        const r = random();
        const pending = model.filter((m) => m.state === 'pending');
        if (r < 0.45 || pending.length === 0) {
          next += 1n + (random() < 0.1 ? BigInt(Math.floor(random() * 5)) : 0n); // sometimes a gap
          t.deliver(next);
          model.push({ offset: next, state: 'pending' });
        } else {
          const target = pending[Math.floor(random() * pending.length)] as { offset: bigint; state: State };
          const roll = random();
          const how: Settlement = roll < 0.03 ? 'nak' : roll < 0.13 ? 'term' : 'ack';
          assert.equal(t.settle(target.offset, how), true);
          target.state = how === 'nak' ? 'held' : 'done';
          if (random() < 0.2) {
            // a duplicate settlement of something already settled changes nothing
            const any = model[Math.floor(random() * model.length)] as { offset: bigint; state: State };
            if (any.state !== 'pending') assert.equal(t.settle(any.offset, 'ack'), false);
          }
        }
        const expected = reference(model);
        assert.equal(t.watermark?.offset, expected, `seed ${seed}, step ${step}`);
        const firstUnfinished = model.find((m) => m.state !== 'done');
        if (firstUnfinished !== undefined && t.watermark !== undefined) {
          assert.ok(
            t.watermark.offset <= firstUnfinished.offset,
            `seed ${seed}: passed an unfinished message`,
          );
        }
        assert.equal(t.inFlight, model.filter((m) => m.state === 'pending').length);
        assert.equal(t.held, model.filter((m) => m.state === 'held').length);
        if (random() < 0.3) {
          const point = t.committable();
          if (point !== undefined) {
            assert.ok(committed === undefined || point.offset > committed, 'commits only move forward');
            t.markCommitted(point.offset);
            committed = point.offset;
          }
        }
      }
    }
  });
});
