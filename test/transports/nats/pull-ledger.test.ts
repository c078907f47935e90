import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PullLedger } from '../../../src/transports/nats/pull-ledger.ts';
import type { PullOutcome } from '../../../src/transports/nats/pull-wire.ts';

function ledger(): PullLedger {
  return new PullLedger({
    fetchMaxWaitMs: 100,
    safetyMs: 1_100,
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
    l.finish(silent, { kind: 'no-response' });
    assert.equal(l.owed(), 50, 'until checked, it may still deliver');
    l.dropUnanswered(silent.serverExpiresAt); // checked too early: within the expiry slack
    assert.equal(l.owed(), 50);
    l.dropUnanswered(silent.serverExpiresAt + 1_000);
    assert.equal(l.owed(), 0);
    assert.deepEqual(outcomes, [{ kind: 'no-response' }]);
  });

  it('keeps a pull that got messages, and the one the loop waits on', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const l = ledger();
    const partly = l.begin(50, () => {});
    l.received(); // counted towards the oldest open pull
    l.finish(partly, { kind: 'expired' });
    const current = l.begin(20, () => {});
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
