import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TimeOrderedMerge } from './time-merge.ts';

interface E {
  readonly t: bigint;
  readonly name: string;
}
const e = (t: number, name: string): E => ({ t: BigInt(t), name });

function merge(): { m: TimeOrderedMerge<E>; released: string[] } {
  const released: string[] = [];
  const m = new TimeOrderedMerge<E>((events) => {
    for (const x of events) released.push(x.name);
  });
  return { m, released };
}

describe('time-ordered merge of several processes’ reports', () => {
  it('holds a report back until every open source has passed its time, then releases in time order', () => {
    const { m, released } = merge();
    m.open('A', 0n);
    m.open('B', 0n);
    m.push('A', [e(10, 'a10'), e(30, 'a30')], 35n);
    assert.deepEqual(released, [], 'B could still report something before 10');
    m.push('B', [e(20, 'b20')], 25n);
    assert.deepEqual(released, ['a10', 'b20']);
    m.push('B', [], 40n);
    assert.deepEqual(released, ['a10', 'b20', 'a30']);
    assert.equal(m.held(), 0);
  });

  it('a silent (stopped) source stalls the release; its late reports still come out in time order', () => {
    const { m, released } = merge();
    m.open('A', 0n);
    m.open('stopped', 0n);
    m.push('A', [e(5, 'a5'), e(50, 'a50')], 60n);
    assert.equal(m.held(), 2);
    // The stopped process resumes and sends what it had handled before the stop.
    m.push('stopped', [e(7, 's7')], 70n);
    assert.deepEqual(released, ['a5', 's7', 'a50']);
  });

  it('closing a source (its process exited) stops waiting for it, and keeps order with the others', () => {
    const { m, released } = merge();
    m.open('A', 0n);
    m.open('B', 0n);
    m.open('C', 0n);
    m.push('A', [e(100, 'a100')], 100n);
    m.push('B', [e(10, 'b10')], 10n);
    m.close('A'); // A's a100 must still wait for B and C to pass 100
    assert.deepEqual(released, []);
    m.push('C', [e(60, 'c60')], 200n);
    assert.deepEqual(released, ['b10']);
    m.push('B', [e(90, 'b90')], 300n);
    assert.deepEqual(released, ['b10', 'c60', 'b90', 'a100']);
    m.close('B');
    m.close('C');
    assert.equal(m.held(), 0);
  });

  it('a source opened later (at spawn: after everything released) holds back nothing before its start', () => {
    const { m, released } = merge();
    m.open('A', 0n);
    m.push('A', [e(10, 'a10')], 20n);
    m.open('late', 25n);
    m.push('A', [e(22, 'a22'), e(27, 'a27')], 30n);
    assert.deepEqual(released, ['a10', 'a22']);
    m.push('late', [], 28n);
    assert.deepEqual(released, ['a10', 'a22', 'a27']);
  });
});
