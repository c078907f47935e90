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

/** A pull of `batch` that got delivery 1 and that the loop moved on from (it stays owed). */
function partlyAnswered(l: PullLedger, batch: number) {
  const pull = l.begin(batch, () => {});
  l.received(1);
  l.finish(pull, { kind: 'expired' });
  return pull;
}

describe('pull ledger: fences settle partly answered pulls', () => {
  /** A ledger whose fence requests are counted; the test answers them through settle(). */
  function fenced() {
    // The ledger runs on Date.now(), which the mock timers move with setTimeout.
    let fences = 0;
    const l = new PullLedger({
      fetchMaxWaitMs: 100,
      connected: () => true,
      onServerDone: () => {},
      fence: () => fences++,
      clock: () => Date.now(),
    });
    return { l, fences: () => fences };
  }

  it('on request, fences once a partly answered pull has surely expired, not before', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    const { l, fences } = fenced();
    const pull = l.begin(50, () => {});
    l.received(1);
    t.mock.timers.tick(75); // renewal point: the loop moves on, the pull stays open
    const next = l.begin(50, () => {});
    t.mock.timers.tick(24);
    assert.equal(fences(), 0, 'nobody asked for one');
    l.requestFence(); // a lane waits for room
    assert.equal(fences(), 0, 'the pull may still be live at the server');
    t.mock.timers.tick(2);
    assert.equal(fences(), 1);
    assert.equal(l.owed(), 49 + 50, 'a fence request alone settles nothing');
    l.settle(1, pull.serverExpiresAt, l.generation);
    assert.equal(l.owed(), 50, 'the fence answered: only the next pull is owed');
    l.finish(next, { kind: 'aborted' });
  });

  it('a fence answer replaces the expired pulls by exactly what was delivered and not yet seen', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    const { l } = fenced();
    const pull = l.begin(50, () => {});
    l.received(1);
    l.received(2);
    l.finish(pull, { kind: 'expired' });
    t.mock.timers.tick(500);
    assert.equal(l.owed(), 48, 'before the fence: the whole rest of its batch');
    // Its messages may still be on the way (seen ~190 ms late on a busy machine):
    // other lanes leave room for them until the fence answers.
    assert.equal(l.liveOwed(), 48);
    // The server had delivered 5 in all: 3 are still on their way.
    l.settle(5, pull.serverExpiresAt, l.generation);
    assert.equal(l.owed(), 3);
    assert.equal(l.liveOwed(), 3);
    l.received(3);
    l.received(4);
    assert.equal(l.owed(), 1);
    l.received(5);
    assert.equal(l.owed(), 0, 'the last delivery up to the fence arrived');
  });

  it('the tail never owes more than the settled pulls could still deliver', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    const { l } = fenced();
    const pull = partlyAnswered(l, 4);
    t.mock.timers.tick(200);
    // Other members of the group pulled the same consumer: it delivered 1,000 in all.
    l.settle(1_000, pull.serverExpiresAt, l.generation);
    assert.equal(l.owed(), 3);
  });

  it('a fence read before the pull surely expired leaves it open', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    const { l } = fenced();
    const pull = partlyAnswered(l, 50);
    l.settle(1, pull.serverExpiresAt - 1, l.generation);
    assert.equal(l.owed(), 49, 'it may still get deliveries after the ones the fence counted');
  });

  it('a later delivery ends the tail: the missing ones went elsewhere or died', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    const { l } = fenced();
    const pull = partlyAnswered(l, 50);
    t.mock.timers.tick(101);
    l.settle(10, pull.serverExpiresAt, l.generation);
    assert.equal(l.owed(), 9);
    const next = l.begin(20, () => {});
    l.received(12); // consumer sequences come in order: 2–10 will not come any more
    assert.equal(l.owed(), 19, 'only the new pull is owed (one of its 20 arrived)');
    l.finish(next, { kind: 'aborted' });
  });

  it('a fence answer from before a reconnect is ignored', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    const { l } = fenced();
    const before = l.generation;
    l.reconnected();
    const pull = partlyAnswered(l, 50);
    t.mock.timers.tick(101);
    l.settle(1, pull.serverExpiresAt, before);
    assert.equal(l.owed(), 49);
    l.settle(1, pull.serverExpiresAt, l.generation);
    assert.equal(l.owed(), 0);
  });

  it('without a fence answer the tail and the pulls give up at their grace', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    const { l } = fenced();
    const pull = partlyAnswered(l, 50);
    t.mock.timers.tick(101);
    l.settle(4, pull.serverExpiresAt, l.generation);
    assert.equal(l.owed(), 3);
    t.mock.timers.tick(1_999);
    assert.equal(l.owed(), 3);
    t.mock.timers.tick(1);
    assert.equal(l.owed(), 0, "the tail's grace is over");
  });
});
