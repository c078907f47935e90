import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FlowControl } from '../../../src/core/transport.ts';
import { LaneBudget, type OwedSource } from '../../../src/transports/nats/lane-budget.ts';

/** A lane as the budget sees it: what its pulls owe and what its next pull wants. */
function lane(wanted: number, live = 0, owed = live): OwedSource & { fences: number } {
  const source = {
    fences: 0,
    owed: () => owed,
    liveOwed: () => live,
    wanted: () => wanted,
    requestFence: () => {
      source.fences++;
    },
  };
  return source;
}

function pool(free: number): FlowControl {
  return {
    freeCapacity: () => free,
    waitForCapacity: () => Promise.resolve(),
    deliver: () => {},
    reportError: () => {},
  };
}

/** The share `self` may ask for, with `others` beside it on a pool with `free` room. */
function shareOf(free: number, self: OwedSource, others: OwedSource[]): number {
  const budget = new LaneBudget(pool(free));
  for (const other of others) budget.add(other);
  budget.add(self);
  return budget.flowFor(() => self).freeCapacity();
}

describe('lane budget', () => {
  it('the last busy lane beside drained ones gets the pool, less what the idle lanes ask for', () => {
    const idle = Array.from({ length: 16 }, () => lane(32, 32));
    // 4,096 free + 512 live − 512 reserved for the idle lanes, one busy lane: all of it, within the pool bound.
    assert.equal(shareOf(4_096, lane(500), idle), 4_096 - 16 * 32);
  });

  it('busy lanes split the pool evenly', () => {
    const busy = Array.from({ length: 3 }, () => lane(500));
    assert.equal(shareOf(1_000, lane(500), busy), 250);
  });

  it('never more than the pool minus what the other lanes’ live pulls may still deliver', () => {
    const others = [lane(500, 300), lane(500, 300)];
    assert.equal(shareOf(500, lane(500), others), 0, 'their 600 could overfill a pool with 500 free');
    assert.equal(shareOf(700, lane(500), others), 100, 'the even 234 is more than the 100 left');
  });

  it('an even share is of the room, not of the room plus what is already promised', () => {
    const others = [lane(500, 300), lane(500, 300)];
    // 1,000 free among 3 busy lanes: 334 each (the others already hold 300 of theirs).
    assert.equal(shareOf(1_000, lane(500), others), 334);
  });

  it('lanes attaching one by one each get an even share of the lanes expected, the last as much as the first', () => {
    const budget = new LaneBudget(pool(4_096));
    budget.expect(17);
    const shares: number[] = [];
    for (let i = 0; i < 17; i++) {
      const self = lane(500);
      budget.add(self);
      const share = budget.flowFor(() => self).freeCapacity();
      shares.push(share);
      // Its pull now holds that share (live), as a pull loop's would.
      const live = share;
      Object.assign(self, { owed: () => live, liveOwed: () => live });
    }
    assert.deepEqual(new Set(shares.slice(0, 16)), new Set([241]), `shares: ${shares.join(', ')}`);
    assert.equal(shares[16], 4_096 - 16 * 241, 'the last lane gets the rest, not nothing');
    budget.expect(0);
  });

  it('idle lanes that hold nothing reserve nothing: a small pool is not starved', () => {
    const idle = Array.from({ length: 16 }, () => lane(32));
    assert.equal(shareOf(10, lane(500), idle), 10);
  });

  it('a full pool leaves nothing to anyone', () => {
    assert.equal(shareOf(0, lane(500), [lane(32)]), 0);
  });

  it('a lane held back by pulls (its own or others) asks every lane to fence its expired pulls', async () => {
    const busy = lane(500, 256);
    const self = lane(500, 0);
    const budget = new LaneBudget(pool(256));
    budget.add(busy);
    budget.add(self);
    const flow = budget.flowFor(() => self);
    assert.equal(flow.freeCapacity(), 0, 'the other lane holds the whole pool in pulls');
    const signal = new AbortController();
    const waiting = flow.waitForCapacity(signal.signal);
    assert.deepEqual([busy.fences, self.fences], [1, 1]);
    signal.abort();
    await waiting;
  });
});
