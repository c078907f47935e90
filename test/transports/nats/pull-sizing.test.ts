import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PullSizing } from '../../../src/transports/nats/pull-sizing.ts';

describe('pull sizing', () => {
  it('shrinks to twice what came (at least 32) after an expired pull, doubles after a filled one', () => {
    const sizing = new PullSizing(500);
    assert.equal(sizing.batchFor(10_000), 500, 'starts at fetchBatch');
    assert.equal(sizing.batchFor(40), 40, 'never more than is free');
    sizing.ended(500, { kind: 'expired' }, 0);
    assert.equal(sizing.batchFor(10_000), 32);
    sizing.ended(32, { kind: 'done' }, 32);
    assert.equal(sizing.batchFor(10_000), 64);
    sizing.ended(64, { kind: 'expired' }, 50);
    assert.equal(sizing.batchFor(10_000), 100);
    for (let batch = 100; batch < 500; batch *= 2) sizing.ended(batch, { kind: 'done' }, batch);
    assert.equal(sizing.batchFor(10_000), 500, 'capped at fetchBatch');
    sizing.ended(500, { kind: 'unanswered' }, 0);
    assert.equal(sizing.batchFor(10_000), 500, 'other endings leave the size alone');
  });

  it('an expired pull while at least a batch arrived counts as filled (the lane has a backlog)', () => {
    const sizing = new PullSizing(500);
    sizing.ended(500, { kind: 'expired' }, 0);
    assert.equal(sizing.batchFor(10_000), 32);
    // The loop moved on before expiry; the messages went to older open pulls but arrived all the same.
    sizing.ended(32, { kind: 'expired' }, 40);
    assert.equal(sizing.batchFor(10_000), 64);
    sizing.ended(64, { kind: 'expired' }, 64);
    assert.equal(sizing.batchFor(10_000), 128);
    sizing.ended(128, { kind: 'expired' }, 10);
    assert.equal(sizing.batchFor(10_000), 32, 'a trickle shrinks it again');
  });

  it('a fetchBatch below the minimum stays the cap', () => {
    const sizing = new PullSizing(10);
    sizing.ended(10, { kind: 'expired' }, 0);
    assert.equal(sizing.batchFor(10_000), 10);
  });
});
