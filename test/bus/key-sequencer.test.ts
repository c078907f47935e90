import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KeySequencer } from '../../src/bus/key-sequencer.ts';
import { PublishHeldError, PublishRejectedError, TimeoutError } from '../../src/core/errors.ts';
import type { OutboundMessage, PublishCallback, PublishOutcome } from '../../src/core/transport.ts';

const msg = (key: string | undefined, n: number): OutboundMessage => ({
  topic: 't',
  kind: 'envelope',
  data: new Uint8Array([n]),
  headers: {},
  msgId: `m${n}`,
  key,
});

describe('per-aggregate publish sequencing', () => {
  it('keeps one publish per aggregate on the wire; other aggregates and keyless messages are not held', () => {
    const wire: Array<{ message: OutboundMessage; done: PublishCallback }> = [];
    const seq = new KeySequencer((message, done) => wire.push({ message, done }));
    const results: string[] = [];
    const record = (id: string) => (o: PublishOutcome) => results.push(`${id}:${o.ok ? 'ok' : o.error.code}`);
    seq.send(msg('A', 1), record('A1'));
    seq.send(msg('A', 2), record('A2'));
    seq.send(msg('B', 3), record('B3'));
    seq.send(msg(undefined, 4), record('x4'));
    seq.send(msg('A', 5), record('A5'));
    assert.deepEqual(
      wire.map((w) => w.message.msgId),
      ['m1', 'm3', 'm4'],
    );
    wire[0]?.done({ ok: true, sequence: 1 });
    assert.deepEqual(
      wire.map((w) => w.message.msgId),
      ['m1', 'm3', 'm4', 'm2'],
    );
    wire[3]?.done({ ok: true, sequence: 2 });
    assert.equal(wire[4]?.message.msgId, 'm5');
    wire[4]?.done({ ok: true, sequence: 3 });
    assert.equal(seq.activeKeys, 1, 'B still in flight');
    assert.deepEqual(results, ['A1:ok', 'A2:ok', 'A5:ok']);
  });

  it('a failure holds the aggregate: queued and later events fail unsent until the failed one is republished', async () => {
    const wire: Array<{ message: OutboundMessage; done: PublishCallback }> = [];
    const seq = new KeySequencer((message, done) => wire.push({ message, done }));
    const outcomes = new Map<string, PublishOutcome>();
    const send = (key: string, n: number): void => seq.send(msg(key, n), (o) => outcomes.set(`m${n}`, o));
    for (let i = 1; i <= 3; i++) send('A', i);
    send('B', 10);
    wire[0]?.done({ ok: false, error: new TimeoutError('no ack') });
    assert.deepEqual(
      wire.map((w) => w.message.msgId),
      ['m1', 'm10'],
      'the queued ones were never sent',
    );
    const code = (id: string): string | undefined => {
      const o = outcomes.get(id);
      return o === undefined ? undefined : o.ok ? 'ok' : o.error.code;
    };
    assert.equal(code('m1'), 'EVENTBUS_TIMEOUT');
    assert.equal(code('m2'), 'EVENTBUS_PUBLISH_HELD');
    assert.equal(code('m3'), 'EVENTBUS_PUBLISH_HELD');
    const held = outcomes.get('m2');
    assert.ok(held && !held.ok && held.error instanceof PublishHeldError);
    assert.equal(held.error.heldBy, 'm1');
    assert.equal(held.error.aggregateId, 'A');
    assert.equal(held.error.retryable, true);
    assert.match(
      held.error.message,
      /event m1 of aggregate "A".*expected it \(same eventId\) before event m2/,
    );
    assert.equal(seq.heldKeys, 1);

    // A later event of A (not the failed one) is refused too, asynchronously; B is unaffected.
    let settledInside = false;
    let inside = true;
    seq.send(msg('A', 4), (o) => {
      settledInside = inside;
      outcomes.set('m4', o);
    });
    inside = false;
    await Promise.resolve();
    assert.equal(settledInside, false, 'done never runs inside send');
    assert.equal(code('m4'), 'EVENTBUS_PUBLISH_HELD');
    assert.equal(wire.length, 2);

    // Republishing the failed event (same id) clears the hold; the rest follow in order.
    send('A', 1);
    send('A', 2);
    assert.equal(seq.heldKeys, 0);
    assert.deepEqual(
      wire.map((w) => w.message.msgId),
      ['m1', 'm10', 'm1'],
    );
    wire[2]?.done({ ok: true, sequence: 7 });
    assert.equal(wire[3]?.message.msgId, 'm2');
    assert.equal(code('m1'), 'ok');
  });

  it('release() gives the failed event up: the aggregate flows again', () => {
    const wire: Array<{ message: OutboundMessage; done: PublishCallback }> = [];
    const seq = new KeySequencer((message, done) => wire.push({ message, done }));
    seq.send(msg('A', 1), () => {});
    wire[0]?.done({ ok: false, error: new PublishRejectedError('too big') });
    assert.equal(seq.hold('A')?.eventId, 'm1');
    assert.equal(seq.release('A'), true);
    assert.equal(seq.release('A'), false);
    seq.send(msg('A', 2), () => {});
    assert.deepEqual(
      wire.map((w) => w.message.msgId),
      ['m1', 'm2'],
    );
  });
});
