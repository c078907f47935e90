import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { dlqCommand, parseDlqRequeueArgs } from '../../src/cli/dlq.ts';
import { runDlqList } from '../../src/cli/dlq-list.ts';
import { requeueMsgId, runDlqRequeue } from '../../src/cli/dlq-requeue.ts';
import type { Envelope, EventBus } from '../../src/index.ts';
import { until } from '../../src/testing/waiters.ts';
import { streamNameFor } from '../../src/transports/nats/names.ts';
import { type NatsServerHandle, startNatsServer } from '../harness/nats-server.ts';
import { captureWriter, natsBus, natsOptions, uniqueTopic } from './helpers.ts';

const stream = (topic: string): string => streamNameFor('EVENTBUS', topic);

describe('eventbus dlq', () => {
  let server: NatsServerHandle;
  let publisher: EventBus;
  let consumer: EventBus;
  let nc: NatsConnection;
  let jsm: JetStreamManager;

  before(async () => {
    server = await startNatsServer({ jetstream: true });
    publisher = await natsBus(server.url, 'dlq-publisher');
    consumer = await natsBus(server.url, 'dlq-consumer');
    nc = await connect({ servers: server.url });
    jsm = await jetstreamManager(nc);
  });

  after(async () => {
    await Promise.all([publisher?.close(), consumer?.close()]);
    await nc?.close();
    await server?.stop();
  });

  /**
   * A topic whose handler fails until `fix()` (maxAttempts 2, so each event is
   * dead-lettered after its second attempt); resolves `deadLetters(n)` once n
   * dead letters are in `<topic>.DLQ` (seen by a watcher subscription there).
   */
  async function failingTopic(name: string) {
    const topic = uniqueTopic(name);
    let fixed = false;
    const processed: Envelope[] = [];
    const dead: string[] = [];
    const dlqSignals = new Set<{ check(): void }>();
    const processedSignals = new Set<{ check(): void }>();
    await consumer.subscribeEnvelope(
      topic,
      (event) => {
        if (!fixed) throw new Error('handler bug: total is missing');
        processed.push(event);
        for (const s of processedSignals) s.check();
      },
      { group: 'billing', maxAttempts: 2, backoff: { initialMs: 1, maxMs: 5 } },
    );
    await consumer.subscribeEnvelope(
      `${topic}.DLQ`,
      (event) => {
        dead.push(event.eventId);
        for (const s of dlqSignals) s.check();
      },
      { group: 'watcher' },
    );
    const wait = async (signals: Set<{ check(): void }>, condition: () => boolean, what: () => string) => {
      const signal = until(condition, what);
      signals.add(signal);
      try {
        await signal.wait(20_000);
      } finally {
        signals.delete(signal);
      }
    };
    return {
      topic,
      processed,
      fix: () => {
        fixed = true;
      },
      deadLetters: (n: number) =>
        wait(
          dlqSignals,
          () => dead.length >= n,
          () => `${n} dead letters in ${topic}.DLQ, saw ${dead.length}`,
        ),
      processedIds: (ids: readonly string[]) =>
        wait(
          processedSignals,
          () => ids.every((id) => processed.some((e) => e.eventId === id)),
          () => `processed ${ids.join(', ')}; got ${processed.map((e) => e.eventId).join(', ')}`,
        ),
    };
  }

  async function publish(topic: string, aggregateId: string, eventVersion: number): Promise<string> {
    const { eventId } = await publisher.publishEnvelope(topic, {
      aggregateId,
      eventType: 'InvoiceRequested',
      eventVersion,
      payload: { invoice: eventVersion },
    });
    await publisher.flush();
    return eventId;
  }

  async function storedMessages(name: string) {
    const info = await jsm.streams.info(name);
    const out = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(name, { seq });
      if (m !== null) out.push(m);
    }
    return out;
  }

  it('list: shows a real dead letter with its reason, attempts and original sequence', async () => {
    const t = await failingTopic('list');
    const eventId = await publish(t.topic, 'inv-1', 3);
    await t.deadLetters(1);

    const writer = captureWriter();
    assert.equal(
      await runDlqList({ nats: natsOptions(server.url), topic: t.topic, parked: false, json: false }, writer),
      0,
    );
    assert.match(
      writer.lines[0] ?? '',
      /^SEQ\s+EVENT-ID\s+AGGREGATE-ID\s+VERSION\s+ATTEMPTS\s+ORIG-SEQ\s+REASON$/,
    );
    assert.equal(writer.lines.length, 2);
    assert.match(
      writer.lines[1] ?? '',
      new RegExp(`^1\\s+${eventId}\\s+inv-1\\s+3\\s+2\\s+1\\s+handler bug: total is missing$`),
    );

    const json = captureWriter();
    await dlqCommand(['list', t.topic, '--servers', server.url, '--json'], json);
    const row = JSON.parse(json.lines[0] ?? '{}') as Record<string, unknown>;
    assert.equal(row.sequence, 1);
    assert.equal(row.eventId, eventId);
    assert.equal(row.aggregateId, 'inv-1');
    assert.equal(row.eventVersion, 3);
    assert.equal(row.reason, 'handler bug: total is missing');
    assert.equal(row.attempts, 2);
    assert.equal(row.originalSequence, 1);
    assert.equal(row.originalTopic, t.topic);
    assert.equal(row.group, 'billing');
    assert.deepEqual(row.payload, { invoice: 3 });
  });

  it('list: a topic without dead letters says so and exits 0', async () => {
    const writer = captureWriter();
    const code = await runDlqList(
      { nats: natsOptions(server.url), topic: 'never.used', parked: false, json: false },
      writer,
    );
    assert.equal(code, 0);
    assert.match(
      writer.lines[0] ?? '',
      /^no dead letters for never\.used \(no stream EVENTBUS_never_used_DLQ\)/,
    );
    const parked = captureWriter();
    await runDlqList(
      { nats: natsOptions(server.url), topic: 'never.used', parked: true, json: false },
      parked,
    );
    assert.match(parked.lines[0] ?? '', /^no parked events for never\.used/);
  });

  it('requeue: republishes with a new msg id inside the duplicate window, the fixed handler processes it, and only then is it deleted', async () => {
    const t = await failingTopic('requeue');
    const eventId = await publish(t.topic, 'inv-2', 1);
    await t.deadLetters(1);
    const target = await jsm.streams.info(stream(t.topic));
    assert.equal(target.state.messages, 1);
    // The dead letter is seconds old: the original Nats-Msg-Id is still inside the duplicate window,
    // so a republish with it would be dropped as a duplicate and nothing would be processed.
    assert.ok(target.config.duplicate_window >= 60_000 * 1_000_000);

    t.fix();
    const writer = captureWriter();
    const code = await runDlqRequeue(
      { nats: natsOptions(server.url), topic: t.topic, sequences: 'all', dryRun: false },
      writer,
    );
    assert.equal(code, 0, writer.errors.join('\n'));
    assert.match(
      writer.lines[0] ?? '',
      new RegExp(`^requeued seq=1 eventId=${eventId} .* -> ${t.topic} seq=2$`),
    );
    await t.processedIds([eventId]);
    assert.equal(t.processed[0]?.eventId, eventId, 'same envelope, same eventId');

    const stored = await storedMessages(stream(t.topic));
    assert.equal(stored.length, 2);
    const requeued = stored[1];
    assert.equal(requeued?.header.get('Nats-Msg-Id'), requeueMsgId(eventId, 1));
    assert.equal(requeued?.header.get('X-Event-ID'), eventId);
    assert.equal(requeued?.header.has('X-DLQ-Reason'), false);
    assert.equal(requeued?.header.has('X-DLQ-Attempts'), false);
    assert.deepEqual(requeued?.data, stored[0]?.data, 'the body is unchanged');
    assert.equal(
      (await jsm.streams.info(stream(`${t.topic}.DLQ`))).state.messages,
      0,
      'deleted from the DLQ',
    );
  });

  it('requeue: a failed republish leaves the dead letter in place and stops; a later run succeeds', async () => {
    const t = await failingTopic('reject');
    const first = await publish(t.topic, 'inv-3', 1);
    const second = await publish(t.topic, 'inv-4', 1);
    await t.deadLetters(2);
    t.fix();
    // Two aggregates in different partitions fail concurrently: read which is DLQ seq 1.
    const dlqIds = (await storedMessages(stream(`${t.topic}.DLQ`))).map((m) => m.header.get('X-Event-ID'));
    assert.deepEqual([...dlqIds].sort(), [first, second].sort());
    const [atSeq1, atSeq2] = dlqIds;
    // Make the topic's stream refuse every publish.
    const target = stream(t.topic);
    await jsm.streams.update(target, { max_msg_size: 1 });

    const failing = captureWriter();
    const code = await dlqCommand(['requeue', t.topic, '--servers', server.url, '--all'], failing);
    assert.equal(code, 1);
    assert.match(failing.errors.join('\n'), /seq 1: publish to .* failed, left in the DLQ/);
    assert.match(failing.errors.at(-1) ?? '', /requeued 0 from .*stopped at the first failure/);
    assert.equal((await jsm.streams.info(stream(`${t.topic}.DLQ`))).state.messages, 2, 'nothing deleted');

    await jsm.streams.update(target, { max_msg_size: -1 });
    const retry = captureWriter();
    assert.equal(
      await dlqCommand(['requeue', t.topic, '--servers', server.url, '--seq', '2', '--seq', '1'], retry),
      0,
    );
    assert.match(
      retry.lines[0] ?? '',
      new RegExp(`^requeued seq=1 eventId=${atSeq1}`),
      'DLQ order, not argument order',
    );
    assert.match(retry.lines[1] ?? '', new RegExp(`^requeued seq=2 eventId=${atSeq2}`));
    await t.processedIds([first, second]);
  });

  it('requeue: a rerun after a crash between ack and delete is de-duplicated and only deletes', async () => {
    const t = await failingTopic('rerun');
    const eventId = await publish(t.topic, 'inv-5', 1);
    await t.deadLetters(1);
    t.fix();
    // What an earlier requeue run stored before it died (same msg id).
    const dlq = await storedMessages(stream(`${t.topic}.DLQ`));
    const ack = await jetstream(nc).publish(t.topic, dlq[0]?.data ?? new Uint8Array(), {
      msgID: requeueMsgId(eventId, 1),
    });
    assert.equal(ack.duplicate, false);
    await t.processedIds([eventId]);

    const writer = captureWriter();
    assert.equal(
      await runDlqRequeue(
        { nats: natsOptions(server.url), topic: t.topic, sequences: [1], dryRun: false },
        writer,
      ),
      0,
    );
    assert.match(
      writer.lines[0] ?? '',
      new RegExp(`-> ${t.topic} seq=${ack.seq} \\(already stored by an earlier requeue`),
    );
    assert.equal((await jsm.streams.info(stream(t.topic))).state.messages, 2, 'no third copy');
    assert.equal((await jsm.streams.info(stream(`${t.topic}.DLQ`))).state.messages, 0);
  });

  it('requeue: --dry-run changes nothing; malformed dead letters are listed and skipped (exit 1)', async () => {
    const t = await failingTopic('dry');
    const eventId = await publish(t.topic, 'inv-6', 1);
    await t.deadLetters(1);
    // Now that the bus created the DLQ stream (file), a raw watcher sees every dead letter, also malformed ones.
    let inDlq = 0;
    const both = until(
      () => inDlq === 2,
      () => `2 messages in ${t.topic}.DLQ, saw ${inDlq}`,
    );
    await consumer.subscribe(
      `${t.topic}.DLQ`,
      () => {
        inDlq++;
        both.check();
      },
      { group: 'raw-watcher' },
    );
    // Garbage on the envelope topic is dead-lettered at once with the decode error.
    const ack = await nc.request(t.topic, new TextEncoder().encode('{"broken":'), { timeout: 5_000 });
    assert.match(new TextDecoder().decode(ack.data), /"seq":2/);
    await both.wait(20_000);

    const listed = captureWriter();
    await runDlqList({ nats: natsOptions(server.url), topic: t.topic, parked: false, json: false }, listed);
    assert.equal(listed.lines.length, 3);
    assert.match(
      listed.lines[2] ?? '',
      /^2\s+-\s+-\s+-\s+1\s+2\s+Expected an envelope .*\[body is not an envelope\]$/,
    );

    t.fix();
    const dry = captureWriter();
    assert.equal(
      await runDlqRequeue(
        { nats: natsOptions(server.url), topic: t.topic, sequences: 'all', dryRun: true },
        dry,
      ),
      1,
    );
    assert.equal(dry.lines.length, 1);
    assert.match(
      dry.lines[0] ?? '',
      new RegExp(`^would requeue seq=1 eventId=${eventId} .* as Nats-Msg-Id ${eventId}\\.requeue-1$`),
    );
    assert.match(dry.errors.join('\n'), /seq 2: skipped, the body is not a valid envelope/);
    assert.equal((await jsm.streams.info(stream(`${t.topic}.DLQ`))).state.messages, 2);
    assert.equal((await jsm.streams.info(stream(t.topic))).state.messages, 2);
  });

  it('requeue: an event dead-lettered by two groups is republished once and reaches both', async () => {
    const t = await failingTopic('groups');
    let shippingFixed = false;
    const shipped: string[] = [];
    const shippedSignal = until(
      () => shipped.length > 0,
      () => 'shipping processed the requeued event',
    );
    await consumer.subscribeEnvelope(
      t.topic,
      (event) => {
        if (!shippingFixed) throw new Error('shipping is down');
        shipped.push(event.eventId);
        shippedSignal.check();
      },
      { group: 'shipping', maxAttempts: 2, backoff: { initialMs: 1, maxMs: 5 } },
    );
    const eventId = await publish(t.topic, 'inv-7', 1);
    await t.deadLetters(2);

    const listed = captureWriter();
    await runDlqList({ nats: natsOptions(server.url), topic: t.topic, parked: false, json: true }, listed);
    const groups = listed.lines.map((l) => (JSON.parse(l) as { group?: string }).group).sort();
    assert.deepEqual(groups, ['billing', 'shipping'], 'the group is read from the dead letter');

    t.fix();
    shippingFixed = true;
    const writer = captureWriter();
    assert.equal(
      await runDlqRequeue(
        { nats: natsOptions(server.url), topic: t.topic, sequences: 'all', dryRun: false },
        writer,
      ),
      0,
      writer.errors.join('\n'),
    );
    assert.match(
      writer.lines[0] ?? '',
      new RegExp(`^requeued seq=1 eventId=${eventId} .* -> ${t.topic} seq=2$`),
    );
    assert.match(
      writer.lines[1] ?? '',
      new RegExp(`^deleted seq=2 eventId=${eventId} .*: the same event was requeued as ${t.topic} seq=2$`),
    );
    await t.processedIds([eventId]);
    await shippedSignal.wait(20_000);
    assert.equal((await jsm.streams.info(stream(t.topic))).state.messages, 2, 'one republish');
    assert.equal((await jsm.streams.info(stream(`${t.topic}.DLQ`))).state.messages, 0);
  });

  it('requeue: --seq or --all is required; --parked takes --aggregate or --all, never --seq', () => {
    assert.throws(() => parseDlqRequeueArgs(['orders']), /Expected either --seq N/);
    assert.throws(() => parseDlqRequeueArgs(['orders', '--all', '--seq', '1']), /Expected either --seq N/);
    const plain = parseDlqRequeueArgs(['orders', '--seq', '3,1', '--seq', '2']);
    assert.equal(plain.parked, false);
    assert.deepEqual(plain.parked ? undefined : plain.sequences, [3, 1, 2]);
    assert.throws(
      () => parseDlqRequeueArgs(['orders', '--parked']),
      /--aggregate ID .* or --all with --parked/,
    );
    assert.throws(
      () => parseDlqRequeueArgs(['orders', '--parked', '--seq', '1']),
      /got --seq: parked events are resumed per aggregate/,
    );
    assert.throws(
      () => parseDlqRequeueArgs(['orders', '--aggregate', 'a']),
      /--aggregate only with --parked/,
    );
    assert.throws(
      () => parseDlqRequeueArgs(['orders', '--parked', '--all', '--timeout-ms', '0']),
      /--timeout-ms to be a positive integer/,
    );
    const parked = parseDlqRequeueArgs([
      'orders',
      '--parked',
      '--aggregate',
      'a',
      '--aggregate',
      'b',
      '--group',
      'billing',
      '--timeout-ms',
      '500',
    ]);
    assert.ok(parked.parked);
    assert.deepEqual(
      { aggregates: parked.aggregates, group: parked.group, timeoutMs: parked.timeoutMs },
      { aggregates: ['a', 'b'], group: 'billing', timeoutMs: 500 },
    );
  });

  it('requeue: a topic without a DLQ says so', async () => {
    const writer = captureWriter();
    const code = await runDlqRequeue(
      { nats: natsOptions(server.url), topic: 'never.used', sequences: 'all', dryRun: false },
      writer,
    );
    assert.equal(code, 0);
    assert.equal(writer.lines[0], 'no dead letters for never.used');
  });
});
