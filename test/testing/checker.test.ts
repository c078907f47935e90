import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkDelivery, createOrderChecker, formatReport } from '../../src/testing/checker.ts';

describe('order checker', () => {
  it('classifies ok, lost, duplicated, out of order, unexpected and recovered', () => {
    const c = createOrderChecker();
    for (let i = 0; i < 5; i++) c.expect(`a${i}`, 'A', i);
    c.expect('b0', 'B', 0);
    c.expect('b1', 'B', 1);
    for (let i = 0; i < 5; i++) c.acknowledged(`a${i}`);
    c.acknowledged('b0');
    c.failed('b1'); // unknown outcome, but it arrives anyway → recovered
    c.observe('a0', 'A', 0);
    c.observe('a2', 'A', 2);
    c.observe('a1', 'A', 1); // out of order
    c.observe('a2', 'A', 2); // duplicate, not an ordering event
    c.observe('a4', 'A', 4);
    c.observe('b1', 'B', 1);
    c.observe('zz', 'Z', 0); // never published
    const r = c.report();
    assert.equal(r.published, 7);
    assert.equal(r.acknowledged, 6);
    assert.equal(r.ok, 4); // a0 a1 a2 a4
    assert.equal(r.lost, 2); // a3, b0
    assert.equal(r.duplicated, 1);
    assert.equal(r.outOfOrder, 1);
    assert.equal(r.unexpected, 1);
    assert.equal(r.recovered, 1);
    assert.equal(r.unknown, 0);
    assert.deepEqual(r.examples.outOfOrder, ['A: #1 after #2']);
    assert.equal(c.outstanding(), 2);
  });

  it('counts an unacknowledged, unseen publish as unknown, not lost', () => {
    const c = createOrderChecker();
    c.expect('x', 'K', 0);
    c.failed('x');
    const r = c.report();
    assert.equal(r.lost, 0);
    assert.equal(r.unknown, 1);
  });
});

describe('order checker reports', () => {
  it('are snapshots: a message lost in an early report and consumed later is not listed again', () => {
    const c = createOrderChecker();
    c.expect('m', 'K', 0);
    c.acknowledged('m');
    assert.equal(c.report().examples.lost.length, 1);
    c.observe('m', 'K', 0);
    const r = c.report();
    assert.equal(r.lost, 0);
    assert.deepEqual(r.examples.lost, []);
  });
});

describe('checkDelivery (batch form)', () => {
  const expected = [
    { eventId: 'a0', aggregateId: 'A', index: 0 },
    { eventId: 'a1', aggregateId: 'A', index: 1 },
    { eventId: 'a2', aggregateId: 'A', index: 2 },
    { eventId: 'b0', aggregateId: 'B', index: 0 },
    { eventId: 'b1', aggregateId: 'B', index: 1 },
  ];

  it('every committed event once, in aggregate order → exactlyOnce equals the total', () => {
    const r = checkDelivery(expected, [
      { eventId: 'b0' },
      { eventId: 'a0' },
      { eventId: 'a1' },
      { eventId: 'b1' },
      { eventId: 'a2' },
    ]);
    assert.equal(r.exactlyOnce, 5);
    assert.equal(r.ok, 5);
    assert.equal(r.acknowledged, 5);
  });

  it('a loss, a duplicate, a reordering and a stranger each leave exactlyOnce short and say why', () => {
    const r = checkDelivery(expected, [
      { eventId: 'a0' },
      { eventId: 'a2' },
      { eventId: 'a1' }, // after a2: out of order
      { eventId: 'b0' },
      { eventId: 'b0' }, // duplicate
      { eventId: 'zz' }, // never committed
    ]); // b1 lost
    assert.equal(r.exactlyOnce, 2, formatReport(r)); // a0, a2
    assert.equal(r.lost, 1);
    assert.equal(r.duplicated, 1);
    assert.equal(r.outOfOrder, 1);
    assert.equal(r.unexpected, 1);
    assert.deepEqual(r.examples.lost, ['B#1 (b1)']);
  });
});
