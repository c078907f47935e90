import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createExecutionChecker, formatExecutionReport } from '../../src/testing/checker.ts';

/** Records one whole execution [start, end] (ns) of `id` of `key` on `member`. */
function run(
  c: ReturnType<typeof createExecutionChecker>,
  key: string,
  id: string,
  member: string,
  start: number,
  end: number,
  applied = true,
): void {
  c.started(key, id, member, BigInt(start));
  c.finished(key, id, member, BigInt(end), applied);
}

describe('execution checker (overlaps)', () => {
  it('back-to-back executions of one key, across members, do not overlap', () => {
    const c = createExecutionChecker();
    run(c, 'A', 'a0', 'm1', 0, 10);
    run(c, 'A', 'a1', 'm2', 11, 20);
    run(c, 'A', 'a2', 'm1', 21, 30);
    run(c, 'B', 'b0', 'm2', 5, 25); // another key at the same time is fine
    const r = c.report();
    assert.equal(r.overlaps, 0, formatExecutionReport(r));
    assert.equal(r.applied, 4);
    assert.equal(r.started, 4);
    assert.equal(r.finished, 4);
  });

  it('two members running one key at once → an overlap naming both members and ids', () => {
    const c = createExecutionChecker();
    run(c, 'A', 'a0', 'm1', 0, 10);
    run(c, 'A', 'a1', 'm2', 5, 15);
    const r = c.report();
    assert.equal(r.overlaps, 1);
    assert.equal(r.examples.overlaps.length, 1);
    assert.match(r.examples.overlaps[0] ?? '', /^A: m1 ran a0 while m2 ran a1 \(together 0\.000 ms\)$/);
  });

  it('closed intervals: an execution starting at the very nanosecond another ends overlaps it', () => {
    const c = createExecutionChecker();
    run(c, 'A', 'a0', 'm1', 0, 10);
    run(c, 'A', 'a1', 'm2', 10, 20);
    assert.equal(c.report().overlaps, 1);
  });

  it('counts every intersecting pair, also within one member and when reported out of time order', () => {
    const c = createExecutionChecker();
    run(c, 'A', 'a2', 'm3', 8, 9); // inside both below
    run(c, 'A', 'a0', 'm1', 0, 100);
    run(c, 'A', 'a1', 'm1', 5, 50);
    run(c, 'A', 'a3', 'm2', 101, 110); // after all of them
    const r = c.report();
    assert.equal(r.overlaps, 3, formatExecutionReport(r)); // a0–a1, a0–a2, a1–a2
  });

  it('a fenced execution (applied = false) is counted as fenced, never as an overlap', () => {
    const c = createExecutionChecker();
    run(c, 'A', 'a0', 'old-owner', 0, 100, false);
    run(c, 'A', 'a0', 'new-owner', 50, 60);
    run(c, 'A', 'a1', 'new-owner', 61, 70);
    const r = c.report();
    assert.equal(r.overlaps, 0, formatExecutionReport(r));
    assert.equal(r.fenced, 1);
    assert.equal(r.applied, 2);
  });

  it('matches ends to starts per member and id, oldest first (an event retried in one member)', () => {
    const c = createExecutionChecker();
    c.started('A', 'a0', 'm1', 0n);
    c.finished('A', 'a0', 'm1', 10n, true);
    c.started('A', 'a0', 'm1', 20n);
    // m2 starts a1 at 25 while m1's second run of a0 (20..30) is going on.
    c.started('A', 'a1', 'm2', 25n);
    c.finished('A', 'a0', 'm1', 30n, true);
    c.finished('A', 'a1', 'm2', 40n, true);
    const r = c.report();
    assert.equal(r.overlaps, 1, formatExecutionReport(r));
    assert.match(r.examples.overlaps[0] ?? '', /m1 ran a0 while m2 ran a1/);
  });

  it('an execution whose member died before it finished is unfinished and overlaps nothing', () => {
    const c = createExecutionChecker();
    c.started('A', 'a0', 'm1#1', 0n); // m1's first incarnation was killed here
    run(c, 'A', 'a0', 'm2', 5, 15);
    run(c, 'A', 'a1', 'm1#2', 16, 20); // the restarted m1 goes on
    const r = c.report();
    assert.equal(r.unfinished, 1);
    assert.equal(r.overlaps, 0, formatExecutionReport(r));
  });

  it('an end without a start is reported as unmatched', () => {
    const c = createExecutionChecker();
    c.finished('A', 'a0', 'm1', 10n, true);
    assert.equal(c.report().unmatched, 1);
  });

  it('finds exactly the overlaps planted among 100,000 executions over 200 keys', () => {
    const c = createExecutionChecker();
    const keys = 200;
    const perKey = 500;
    // Each key's executions run back to back, alternating between three members...
    for (let k = 0; k < keys; k++) {
      for (let i = 0; i < perKey; i++) {
        const start = i * 1_000;
        run(c, `k${k}`, `k${k}-${i}`, `m${i % 3}`, start, start + 900);
      }
    }
    // ...except seven planted executions, each starting inside another of its key.
    const planted = [3, 17, 42, 99, 123, 150, 199];
    for (const k of planted) run(c, `k${k}`, `extra-${k}`, 'intruder', 250_500, 250_600);
    const r = c.report();
    assert.equal(r.applied, keys * perKey + planted.length);
    assert.equal(r.overlaps, planted.length, formatExecutionReport(r));
    assert.equal(r.examples.overlaps.length, planted.length);
    assert.ok(r.examples.overlaps.every((e) => e.includes('intruder ran extra-')));
    // A second report (after more executions) sees the same history plus the new ones.
    run(c, 'k0', 'late', 'intruder', 0, 1);
    assert.equal(c.report().overlaps, planted.length + 1);
  });
});
