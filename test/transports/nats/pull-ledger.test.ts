import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PullLedger } from '../../../src/transports/nats/pull-ledger.ts';
import type { PullOutcome } from '../../../src/transports/nats/pull-wire.ts';

function ledger(): PullLedger {
  return new PullLedger({
    fetchMaxWaitMs: 100,
    connected: () => true,
    onServerDone: () => {},
  });
}

describe('pull ledger: unanswered pulls', () => {
  it('a pull with no answer, checked after its expiry, owes nothing any more', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] }); // the safety timers never fire: the test decides
    const l = ledger();
    const outcomes: PullOutcome[] = [];
    const silent = l.begin(50, (o) => outcomes.push(o));
    l.finish(silent, { kind: 'unanswered' });
    assert.equal(l.owed(), 50, 'until checked, it may still deliver');
    assert.equal(l.mayDropUnanswered(silent.serverExpiresAt + 999), false);
    assert.equal(l.mayDropUnanswered(silent.serverExpiresAt + 1_000), true, 'a check would drop it');
    l.dropUnanswered(silent.serverExpiresAt + 999); // checked too early: a busy server may hold it still
    assert.equal(l.owed(), 50);
    l.dropUnanswered(silent.serverExpiresAt + 1_000);
    assert.equal(l.owed(), 0);
    assert.deepEqual(outcomes, [{ kind: 'unanswered' }]);
  });

  it('a pull with no answer at all ends for the loop just after its expiry, and stays owed', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const l = ledger();
    const outcomes: PullOutcome[] = [];
    l.begin(32, (o) => outcomes.push(o));
    t.mock.timers.tick(75); // its renewal point: nothing came, so no renewal
    t.mock.timers.tick(25); // its expiry
    assert.deepEqual(outcomes, [], 'a 408 may still be on its way');
    t.mock.timers.tick(25);
    // nats-server 2.9.10 drops an expired pull without a 408 now and then: the loop
    // pulls again at once instead of waiting on it for a second.
    assert.deepEqual(outcomes, [{ kind: 'unanswered' }]);
    assert.equal(l.current, undefined);
    assert.equal(l.owed(), 32, 'until the server ends it or a check drops it, it may still deliver');
  });

  it('a pull that got messages ends as expired at its renewal point, not as unanswered', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const l = ledger();
    const outcomes: PullOutcome[] = [];
    l.begin(32, (o) => outcomes.push(o));
    l.received();
    t.mock.timers.tick(75);
    assert.deepEqual(outcomes, [{ kind: 'expired' }]);
  });

  it('keeps a pull that got messages, and the one the loop waits on', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const l = ledger();
    const partly = l.begin(50, () => {});
    l.received(); // counted towards the oldest open pull
    l.finish(partly, { kind: 'expired' });
    const current = l.begin(20, () => {});
    assert.equal(l.mayDropUnanswered(current.serverExpiresAt + 1_000), false);
    l.dropUnanswered(current.serverExpiresAt + 1_000);
    assert.equal(l.owed(), 49 + 20, 'the partly answered pull and the current one stay owed');
    l.finish(current, { kind: 'aborted' });
  });
});

describe('pull ledger: what arrived while a pull was open', () => {
  it('counts every message that came while the pull was open, also those counted towards an older pull', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const l = ledger();
    const older = l.begin(500, () => {});
    for (let i = 0; i < 10; i++) l.received();
    l.finish(older, { kind: 'expired' }); // moved on; the server may still deliver to it
    const current = l.begin(32, () => {});
    for (let i = 0; i < 40; i++) l.received();
    assert.equal(current.received, 0, 'counted towards the older open pull');
    assert.equal(older.received, 50);
    assert.equal(l.arrivedDuring(current), 40, 'but they arrived while the current pull was open');
    assert.equal(l.arrivedDuring(older), 50);
    l.finish(current, { kind: 'aborted' });
  });
});
