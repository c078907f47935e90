/**
 * BusPublisher's rules, with a scripted send (the wire is covered by the NATS
 * fault suites): retries with the same id behind which the aggregate waits,
 * one final result per event, in order, and the queue failing with its head.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BusPublisher, type PublishFailureScope, type PublishJob } from '../../src/bus/publisher.ts';
import {
  type EventBusError,
  PublishHeldError,
  PublishRejectedError,
  TimeoutError,
  TransportError,
} from '../../src/core/errors.ts';
import type { OutboundMessage, PublishOutcome } from '../../src/core/transport.ts';
import { deferred } from '../../src/testing/index.ts';

interface Sent {
  readonly msgId: string;
  readonly done: (outcome: PublishOutcome) => void;
}

function harness(scope: PublishFailureScope = 'aggregate') {
  const sent: Sent[] = [];
  const settled: Array<{ id: string; outcome: PublishOutcome; attempts: number }> = [];
  const retryingChanges: number[] = [];
  let onSend: (() => void) | undefined;
  const publisher = new BusPublisher({
    send: (message, done) => {
      sent.push({ msgId: message.msgId, done });
      onSend?.();
    },
    settle: (job, outcome) => settled.push({ id: job.message.msgId, outcome, attempts: job.attempts }),
    ordering: 'aggregate',
    scope,
    backoff: { initialMs: 1, maxMs: 2, multiplier: 2, jitter: 0.2 },
    onRetryingChange: (n) => retryingChanges.push(n),
  });
  const job = (id: string, key: string | undefined, deadlineMs = 60_000): PublishJob => {
    const message: OutboundMessage = {
      topic: 't',
      kind: 'envelope',
      data: new Uint8Array(),
      headers: {},
      msgId: id,
      key,
    };
    const now = performance.now();
    return { message, acceptedAt: now, deadlineAt: now + deadlineMs, attempts: 0, lastError: undefined };
  };
  /** Resolves when the `n`-th send (1-based) has happened. */
  const sends = (n: number): Promise<void> => {
    if (sent.length >= n) return Promise.resolve();
    const d = deferred<void>();
    onSend = () => {
      if (sent.length >= n) d.resolve();
    };
    return d.promise;
  };
  return { publisher, sent, settled, retryingChanges, job, sends };
}

const timeout = (): PublishOutcome => ({ ok: false, error: new TimeoutError('no ack') });

describe('BusPublisher', () => {
  it('retries a timed-out event with the same id while its aggregate waits; others flow', async () => {
    const h = harness();
    h.publisher.submit(h.job('a1', 'A'));
    h.publisher.submit(h.job('a2', 'A'));
    h.publisher.submit(h.job('b1', 'B'));
    assert.deepEqual(
      h.sent.map((s) => s.msgId),
      ['a1', 'b1'],
      'one per aggregate on the wire',
    );
    h.sent[0]?.done(timeout());
    h.sent[1]?.done({ ok: true, sequence: 1 });
    await h.sends(3);
    assert.equal(h.sent[2]?.msgId, 'a1', 'the same event again, not a2');
    assert.equal(h.publisher.retrying, 1);
    h.sent[2]?.done({ ok: false, error: new TransportError('disconnected') });
    await h.sends(4);
    assert.equal(h.sent[3]?.msgId, 'a1');
    h.sent[3]?.done({ ok: true, sequence: 2 });
    await h.sends(5);
    assert.equal(h.sent[4]?.msgId, 'a2', 'a2 follows a1 ack');
    h.sent[4]?.done({ ok: true, sequence: 3 });
    assert.deepEqual(
      h.settled.map((s) => [s.id, s.outcome.ok, s.attempts]),
      [
        ['b1', true, 1],
        ['a1', true, 3],
        ['a2', true, 1],
      ],
    );
    assert.deepEqual(h.retryingChanges, [1, 0]);
  });

  it('at the deadline the head fails once (TimeoutError) and its queue with it, in order; later ones are sent', async () => {
    const h = harness();
    const a1 = h.job('a1', 'A');
    h.publisher.submit(a1);
    a1.deadlineAt = 0; // the deadline passes while the attempt is on the wire: it is the last one
    h.publisher.submit(h.job('a2', 'A'));
    h.publisher.submit(h.job('a3', 'A'));
    h.sent[0]?.done(timeout());
    assert.deepEqual(
      h.settled.map((s) => s.id),
      ['a1', 'a2', 'a3'],
    );
    const [head, ...rest] = h.settled.map((s) => (s.outcome.ok ? undefined : s.outcome.error));
    assert.ok(head instanceof TimeoutError);
    for (const e of rest) assert.ok(e instanceof PublishHeldError && e.heldBy === 'a1', String(e));
    h.publisher.submit(h.job('a4', 'A'));
    assert.equal(h.sent.at(-1)?.msgId, 'a4');
    assert.equal(h.sent.length, 2, 'a2 and a3 were never sent');
  });

  it("scope 'event': a rejected head fails alone and the next is sent", () => {
    const h = harness('event');
    h.publisher.submit(h.job('a1', 'A'));
    h.publisher.submit(h.job('a2', 'A'));
    h.sent[0]?.done({ ok: false, error: new PublishRejectedError('too big') });
    assert.deepEqual(
      h.sent.map((s) => s.msgId),
      ['a1', 'a2'],
    );
    assert.equal(h.settled.length, 1);
    const outcome = h.settled[0]?.outcome as { error: EventBusError };
    assert.ok(outcome.error instanceof PublishRejectedError);
  });

  it("closing with a long lane (scope 'event'): every queued event gets its one result, in order", () => {
    const h = harness('event');
    const ids = Array.from({ length: 20_000 }, (_, i) => `a${i}`);
    for (const id of ids) h.publisher.submit(h.job(id, 'A'));
    h.publisher.stop();
    h.sent[0]?.done(timeout()); // the transport's close ends the one on the wire
    assert.deepEqual(
      h.settled.map((s) => s.id),
      ids,
    );
    assert.ok(h.settled.every((s) => !s.outcome.ok));
    assert.equal(h.sent.length, 1, 'nothing else was attempted');
  });

  it('giveUp ends retrying after the attempt on the wire; stop() fails what waits in backoff', async () => {
    const h = harness();
    h.publisher.submit(h.job('a1', 'A'));
    h.publisher.submit(h.job('a2', 'A'));
    assert.equal(h.publisher.giveUp('A'), true);
    assert.equal(h.publisher.giveUp('Z'), false);
    h.sent[0]?.done(timeout());
    assert.deepEqual(
      h.settled.map((s) => s.id),
      ['a1', 'a2'],
    );
    h.publisher.submit(h.job('b1', 'B'));
    h.sent[1]?.done(timeout()); // b1 now waits in backoff
    assert.equal(h.publisher.retrying, 1);
    h.publisher.stop();
    assert.equal(h.settled.at(-1)?.id, 'b1');
    assert.equal(h.publisher.retrying, 0);
    h.publisher.submit(h.job('c1', 'C'));
    await new Promise((resolve) => queueMicrotask(() => resolve(undefined)));
    assert.equal(h.settled.at(-1)?.id, 'c1', 'nothing new is attempted after stop()');
    assert.equal(h.sent.length, 2);
  });
});
