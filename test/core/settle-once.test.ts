import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Settlement, SettleOnce } from '../../src/core/settle-once.ts';

class Recorded extends SettleOnce {
  readonly settlements: Settlement[] = [];
  workings = 0;
  fence = false;
  protected onSettle(settlement: Settlement): void {
    this.settlements.push(settlement);
  }
  protected override onWorking(): void {
    this.workings++;
  }
  protected override fenced(): boolean {
    return this.fence;
  }
}

describe('SettleOnce', () => {
  test('only the first of ack, nak and term is passed on', () => {
    const m = new Recorded();
    assert.equal(m.settled, false);
    m.nak(250);
    m.ack();
    m.term('late');
    assert.deepEqual(m.settlements, [{ how: 'nak', delayMs: 250 }]);
    assert.equal(m.settled, true);
  });

  test('term passes its reason, ack nothing more', () => {
    const t = new Recorded();
    t.term('poison');
    assert.deepEqual(t.settlements, [{ how: 'term', reason: 'poison' }]);
    const a = new Recorded();
    a.ack();
    assert.deepEqual(a.settlements, [{ how: 'ack' }]);
  });

  test('working() is passed on until the message is settled', () => {
    const m = new Recorded();
    m.working();
    m.working();
    m.ack();
    m.working();
    assert.equal(m.workings, 2);
  });

  test('a fenced message settles nothing and counts as settled', () => {
    const m = new Recorded();
    m.fence = true;
    m.ack();
    assert.deepEqual(m.settlements, []);
    assert.equal(m.settled, true);
    const w = new Recorded();
    w.fence = true;
    w.working();
    assert.equal(w.workings, 0);
    assert.equal(w.settled, true);
  });
});
