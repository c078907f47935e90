import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KeySequencer } from '../../src/bus/key-sequencer.ts';
import { TimeoutError } from '../../src/core/errors.ts';
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

  it('fails the events queued behind a failed one, so nothing of that aggregate overtakes it', () => {
    const wire: Array<{ message: OutboundMessage; done: PublishCallback }> = [];
    const seq = new KeySequencer((message, done) => wire.push({ message, done }));
    const outcomes: PublishOutcome[] = [];
    for (let i = 1; i <= 3; i++) seq.send(msg('A', i), (o) => outcomes.push(o));
    wire[0]?.done({ ok: false, error: new TimeoutError('no ack') });
    assert.equal(wire.length, 1, 'the queued ones were never sent');
    assert.equal(outcomes.length, 3);
    assert.ok(outcomes.every((o) => !o.ok));
    const [first, second] = outcomes;
    assert.equal(first?.ok === false && first.error.code, 'EVENTBUS_TIMEOUT');
    assert.equal(second?.ok === false && second.error.code, 'EVENTBUS_PUBLISH_REJECTED');
    assert.equal(second?.ok === false && second.error.retryable, true);
    assert.equal(seq.activeKeys, 0);
    seq.send(msg('A', 4), () => {});
    assert.equal(wire.length, 2, 'the lane is open again for a retry');
  });
});
