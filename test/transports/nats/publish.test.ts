import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  BusClosedError,
  PayloadTooLargeError,
  PublishRejectedError,
  TimeoutError,
  TransportError,
} from '../../../src/core/errors.ts';
import type { PublishOutcome, Transport } from '../../../src/core/transport.ts';
import { usesFrames } from '../../../src/transports/nats/wire-frame.ts';
import { type NatsServerHandle, startNatsServer } from '../../harness/nats-server.ts';
import {
  type Inspector,
  inspector,
  message,
  openTransport,
  pipeline,
  publishStats,
  sendAsync,
} from './helpers.ts';

function expectOk(outcome: PublishOutcome | undefined): { sequence?: number; duplicate?: boolean } {
  assert.ok(outcome, 'missing outcome');
  if (!outcome.ok) assert.fail(`publish failed: ${outcome.error.message}`);
  return outcome;
}

function expectError(outcome: PublishOutcome): Error {
  if (outcome.ok) assert.fail('expected the publish to fail');
  return outcome.error;
}

describe('nats send (pipelined confirmed publishing)', () => {
  let server: NatsServerHandle;
  let transport: Transport;
  let inspect: Inspector;

  before(async () => {
    server = await startNatsServer({ jetstream: true });
    transport = await openTransport(server.url);
    inspect = await inspector(server.url);
  });

  after(async () => {
    await transport?.close(AbortSignal.timeout(5_000));
    await inspect?.close();
    await server?.stop();
  });

  it('20,000 pipelined sends: exactly one done each, sequences strictly increasing per topic', async () => {
    const topics = ['pipe.a', 'pipe.b'];
    for (const topic of topics) await transport.ensureTopic(topic, 'envelope');
    const messages = Array.from({ length: 20_000 }, (_, i) => message(topics[i % 2] as string, `body-${i}`));
    const result = await pipeline(transport, messages, 5_000);
    assert.equal(result.synchronous, 0);
    assert.ok(result.calls.every((c) => c === 1));
    const last = new Map<string, number>();
    messages.forEach((m, i) => {
      const { sequence, duplicate } = expectOk(result.outcomes[i]);
      assert.equal(duplicate, undefined);
      assert.ok(typeof sequence === 'number');
      const previous = last.get(m.topic) ?? 0;
      assert.ok(sequence > previous, `sequence ${sequence} after ${previous} on ${m.topic}`);
      last.set(m.topic, sequence);
    });
    assert.equal(last.get('pipe.a'), 10_000);
    assert.equal((await inspect.jsm.streams.info('EVENTBUS_pipe_b')).state.messages, 10_000);
    assert.equal(transport.health().details?.pendingPublishes, 0);
  });

  it('the same msgId twice: second is duplicate:true, the stream holds one copy', async () => {
    await transport.ensureTopic('dup.topic', 'envelope');
    const first = expectOk(await sendAsync(transport, message('dup.topic', 'x', 'event-1')));
    const second = expectOk(await sendAsync(transport, message('dup.topic', 'x', 'event-1')));
    assert.equal(first.duplicate, undefined);
    assert.equal(second.duplicate, true);
    assert.equal(second.sequence, first.sequence);
    assert.equal((await inspect.jsm.streams.info('EVENTBUS_dup_topic')).state.messages, 1);
  });

  it('whole-frame writes store exactly the body and headers sent (and this client has the frame writer)', async () => {
    assert.equal(
      usesFrames(inspect.nc),
      true,
      'nats.js no longer has protocol.sendCommand: publishing fell back to nc.publish',
    );
    await transport.ensureTopic('frame.topic', 'envelope');
    const body = new TextEncoder().encode('{"note":"Zoë ✓"}');
    const sent = {
      ...message('frame.topic', body, 'frame-1'),
      headers: { 'X-Event-ID': 'frame-1', 'X-Note': '  Zoë  ', 'X-Empty': '' },
    };
    const { sequence } = expectOk(await sendAsync(transport, sent));
    const stored = await inspect.jsm.streams.getMessage('EVENTBUS_frame_topic', { seq: sequence as number });
    assert.ok(stored);
    assert.deepEqual(stored.data, body);
    assert.equal(stored.header.get('X-Event-ID'), 'frame-1');
    assert.equal(stored.header.get('X-Note'), 'Zoë');
    assert.equal(stored.header.has('X-Empty'), true);
    assert.equal(stored.header.get('Nats-Msg-Id'), 'frame-1');
  });

  it('oversize: PayloadTooLargeError, asynchronously, nothing sent', async () => {
    await transport.ensureTopic('big.topic', 'envelope');
    assert.equal(transport.maxPayloadBytes, 1024 * 1024);
    const sentBefore = publishStats(transport).sent;
    let returned = false;
    const outcome = await new Promise<PublishOutcome>((resolve) => {
      transport.send(message('big.topic', new Uint8Array(transport.maxPayloadBytes)), (o) => {
        assert.ok(returned, 'done ran inside send');
        resolve(o);
      });
      returned = true;
    });
    const error = expectError(outcome);
    assert.ok(error instanceof PayloadTooLargeError);
    assert.equal(error.limit, 1024 * 1024);
    assert.ok(error.size > 1024 * 1024);
    assert.equal(publishStats(transport).sent, sentBefore);
    assert.equal((await inspect.jsm.streams.info('EVENTBUS_big_topic')).state.messages, 0);
  });

  it('broker rejections are PublishRejectedError (max_msg_size → 10054)', async () => {
    await inspect.jsm.streams.add({
      name: 'EVENTBUS_small_topic',
      subjects: ['small.topic'],
      max_msg_size: 1024,
    });
    const error = expectError(await sendAsync(transport, message('small.topic', new Uint8Array(2048))));
    assert.ok(error instanceof PublishRejectedError);
    assert.match(error.message, /10054/);
  });

  it('no stream for the subject: resent like a timeout (failover), then TransportError saying so', async () => {
    const quick = await openTransport(server.url, { publishTimeoutMs: 100, publishRetries: 2 });
    try {
      const error = expectError(await sendAsync(quick, message('nostream.topic', 'x')));
      assert.ok(error instanceof TransportError);
      assert.match(
        error.message,
        /No JetStream stream captures subject "nostream.topic" \(503 no responders, 3 attempt/,
      );
      assert.equal(publishStats(quick).noResponders, 2);
    } finally {
      await quick.close(AbortSignal.timeout(5_000));
    }
  });

  it('caps unacknowledged sends at maxPendingPublishes', async () => {
    const small = await openTransport(server.url, { maxPendingPublishes: 10 });
    try {
      await small.ensureTopic('cap.topic', 'envelope');
      const outcomes = await Promise.all(
        Array.from({ length: 11 }, () => sendAsync(small, message('cap.topic', 'x'))),
      );
      assert.equal(outcomes.filter((o) => o.ok).length, 10);
      const error = expectError(outcomes[10] as PublishOutcome);
      assert.ok(error instanceof TransportError);
      assert.match(error.message, /maxPendingPublishes/);
    } finally {
      await small.close(AbortSignal.timeout(5_000));
    }
  });

  it('close waits for pending acks; sends after close fail with BusClosedError', async () => {
    const closing = await openTransport(server.url);
    await closing.ensureTopic('close.topic', 'envelope');
    const outcomes: PublishOutcome[] = [];
    for (let i = 0; i < 2_000; i++) closing.send(message('close.topic', `c${i}`), (o) => outcomes.push(o));
    await closing.close(AbortSignal.timeout(10_000));
    assert.equal(outcomes.length, 2_000);
    assert.ok(outcomes.every((o) => o.ok));
    const late = await sendAsync(closing, message('close.topic', 'late'));
    assert.ok(expectError(late) instanceof BusClosedError);
    assert.equal(closing.health().connected, false);
  });

  it('close past its deadline fails what is still pending with TimeoutError', async () => {
    // A core subscriber that never answers: the server has a responder for the
    // subject (so no 503), but no PubAck ever comes. Deterministic, unlike a
    // SIGSTOP racing the send.
    let received = 0;
    const silent = inspect.nc.subscribe('silent.topic', {
      callback: () => {
        received++;
      },
    });
    await inspect.nc.flush();
    const stalled = await openTransport(server.url, { publishTimeoutMs: 60_000 });
    try {
      const outcome = sendAsync(stalled, message('silent.topic', 'x'));
      await stalled.close(AbortSignal.timeout(300));
      const error = expectError(await outcome);
      assert.ok(error instanceof TimeoutError);
      assert.equal(error.retryable, true);
      assert.match(error.message, /outcome is unknown/);
      await inspect.nc.flush();
      assert.equal(received, 1, 'the publish reached the server and went unanswered');
    } finally {
      silent.unsubscribe();
    }
  });
});
