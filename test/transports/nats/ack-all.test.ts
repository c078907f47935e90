/** AckAll bookkeeping (no server needed): one ack for the finished prefix, never past an unfinished or nak-ed message. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AckTracker } from '../../../src/transports/nats/ack-tracker.ts';

function tracker(): { t: AckTracker; sent: Array<[string, string]> } {
  const sent: Array<[string, string]> = [];
  const t = new AckTracker(
    (reply, payload) => sent.push([reply, new TextDecoder().decode(payload)]),
    () => true,
    'all',
  );
  return { t, sent };
}

const deliver = (t: AckTracker, seq: number) => {
  const m = t.accept('topic', new Uint8Array(), () => ({}), 1, seq, `r${seq}`);
  assert.ok(m, `seq ${seq} delivered`);
  return m;
};

describe('AckAll tracker', () => {
  it('sends one ack for the highest finished sequence below the lowest unfinished one', () => {
    const { t, sent } = tracker();
    const m = [1, 2, 3, 4, 5].map((s) => deliver(t, s));
    m[0]?.ack();
    m[1]?.ack();
    m[3]?.ack(); // 3 still running: 4 must wait
    t.flush();
    assert.deepEqual(sent, [['r2', '+ACK']]);
    m[2]?.ack();
    t.flush();
    assert.deepEqual(sent.at(-1), ['r4', '+ACK']);
    m[4]?.ack(); // the last one in flight: flushed at once
    assert.deepEqual(sent.at(-1), ['r5', '+ACK']);
    assert.equal(sent.length, 3);
    assert.equal(t.stats().awaitingAck, 0);
  });

  it('never acks past a nak-ed message until it came back and finished', () => {
    const { t, sent } = tracker();
    const m = [1, 2, 3].map((s) => deliver(t, s));
    m[0]?.ack();
    m[1]?.nak();
    m[2]?.ack();
    const acks = sent.filter(([, p]) => p === '+ACK');
    assert.deepEqual(acks, [['r1', '+ACK']], 'only seq 1 is covered; 3 waits behind the nak-ed 2');
    assert.ok(sent.some(([r, p]) => r === 'r2' && p === '-NAK'));
    const again = t.accept('topic', new Uint8Array(), () => ({}), 2, 2, 'r2b');
    assert.ok(again, 'the redelivery of 2 is delivered');
    again.ack();
    assert.deepEqual(sent.at(-1), ['r3', '+ACK']);
  });

  it('coalesces: 1,000 finished messages in order cost a handful of acks, not 1,000', () => {
    const { t, sent } = tracker();
    const m = Array.from({ length: 1000 }, (_, i) => deliver(t, i + 1));
    for (const x of m) x.ack();
    t.flush();
    const acks = sent.filter(([, p]) => p === '+ACK');
    assert.ok(acks.length <= 5, `${acks.length} acks`);
    assert.deepEqual(acks.at(-1), ['r1000', '+ACK']);
  });

  it('a redelivery of a finished message is re-acked through the prefix, not past an unfinished one', () => {
    const { t, sent } = tracker();
    const m = [1, 2, 3].map((s) => deliver(t, s));
    m[2]?.ack();
    m[0]?.ack();
    t.flush();
    assert.deepEqual(sent, [['r1', '+ACK']]);
    assert.equal(
      t.accept('topic', new Uint8Array(), () => ({}), 2, 3, 'r3b'),
      undefined,
      'absorbed, not delivered twice',
    );
    t.flush();
    assert.deepEqual(sent, [['r1', '+ACK']], 'still held behind 2');
    m[1]?.ack();
    assert.equal(sent.at(-1)?.[1], '+ACK');
    assert.ok(['r3', 'r3b'].includes(sent.at(-1)?.[0] ?? ''));
  });
});
