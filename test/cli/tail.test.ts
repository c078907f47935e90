import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AckPolicy, DeliverPolicy, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { parseTailArgs, runTail, tailCommand } from '../../src/cli/tail.ts';
import type { EventBus } from '../../src/index.ts';
import { streamNameFor } from '../../src/transports/nats/names.ts';
import { type NatsServerHandle, startNatsServer } from '../harness/nats-server.ts';
import { captureWriter, natsBus, natsOptions, uniqueTopic } from './helpers.ts';

describe('eventbus tail', () => {
  let server: NatsServerHandle;
  let bus: EventBus;
  let nc: NatsConnection;

  before(async () => {
    server = await startNatsServer({ jetstream: true });
    bus = await natsBus(server.url, 'tail-test');
    nc = await connect({ servers: server.url });
  });

  after(async () => {
    await bus?.close();
    await nc?.close();
    await server?.stop();
  });

  /** Garbage straight onto the topic's stream with the core client (request = wait for the PubAck). */
  async function publishGarbage(topic: string, bytes: Uint8Array): Promise<void> {
    const ack = await nc.request(topic, bytes, { timeout: 5_000 });
    const reply = JSON.parse(new TextDecoder().decode(ack.data)) as { error?: unknown; seq?: number };
    assert.equal(reply.error, undefined, `garbage publish rejected: ${JSON.stringify(reply)}`);
  }

  async function publish(topic: string, aggregateId: string, eventVersion: number): Promise<string> {
    const { eventId } = await bus.publishEnvelope(topic, {
      aggregateId,
      eventType: 'OrderPlaced',
      eventVersion,
      payload: { total: eventVersion * 10 },
    });
    await bus.flush();
    return eventId;
  }

  it('prints decoded envelopes in stream order, an undecodable line for garbage, and goes on', async () => {
    const topic = uniqueTopic('tail');
    const ids = [await publish(topic, 'order-1', 1), await publish(topic, 'order-2', 1)];
    await publishGarbage(topic, new TextEncoder().encode('not json at all'));
    ids.push(await publish(topic, 'order-1', 2));
    const writer = captureWriter();
    const code = await runTail(
      { nats: natsOptions(server.url), topic, from: 'start', untilEnd: true, json: false },
      writer,
    );
    assert.equal(code, 0);
    assert.equal(writer.lines.length, 4, writer.lines.join('\n'));
    assert.match(writer.lines[0] ?? '', new RegExp(`^seq=1 eventId=${ids[0]} aggregateId=order-1 `));
    assert.match(
      writer.lines[0] ?? '',
      /eventType=OrderPlaced eventVersion=1 timestamp=\S+ payload=\{"total":10\}$/,
    );
    assert.match(writer.lines[1] ?? '', new RegExp(`^seq=2 eventId=${ids[1]} aggregateId=order-2 `));
    assert.match(
      writer.lines[2] ?? '',
      /^seq=3 undecodable \(15 bytes\): Expected an envelope \(UTF-8 JSON\)/,
    );
    assert.match(
      writer.lines[3] ?? '',
      new RegExp(`^seq=4 eventId=${ids[2]} aggregateId=order-1 .*eventVersion=2`),
    );
    assert.match(writer.errors.at(-1) ?? '', /4 message\(s\), 1 undecodable \(end of stream\)/);
  });

  it('--json prints one JSON object per line; --limit stops early; --from <seq> starts there', async () => {
    const topic = uniqueTopic('json');
    const first = await publish(topic, 'a', 0);
    await publishGarbage(topic, new Uint8Array([0xff, 0xfe]));
    await publish(topic, 'a', 1);
    const writer = captureWriter();
    const code = await tailCommand(
      [topic, '--servers', server.url, '--from', 'start', '--limit', '2', '--json'],
      writer,
    );
    assert.equal(code, 0);
    const parsed = writer.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(parsed.length, 2);
    assert.deepEqual(parsed[0]?.sequence, 1);
    // The wire form: the Go SDK's snake_case envelope.
    assert.equal((parsed[0]?.envelope as { event_id?: string } | undefined)?.event_id, first);
    assert.deepEqual(parsed[1]?.undecodable, {
      code: 'EVENTBUS_DECODE',
      message:
        'Expected an envelope (UTF-8 JSON), got 2 bytes that are not valid UTF-8 (first bad byte at offset 0)',
      bytes: 2,
    });

    const fromSeq = captureWriter();
    await tailCommand([topic, '--servers', server.url, '--from', '3', '--until-end'], fromSeq);
    assert.equal(fromSeq.lines.length, 1);
    assert.match(fromSeq.lines[0] ?? '', /^seq=3 .*eventVersion=1/);
  });

  it('--from new prints what is published after it started, and stops cleanly on abort', async () => {
    const topic = uniqueTopic('new');
    await publish(topic, 'old', 0);
    const writer = captureWriter();
    const controller = new AbortController();
    const tail = runTail(
      {
        nats: natsOptions(server.url),
        topic,
        from: 'new',
        untilEnd: false,
        json: false,
        signal: controller.signal,
      },
      writer,
    );
    await writer.waitFor(/^tailing /);
    const id = await publish(topic, 'fresh', 1);
    await writer.waitFor(new RegExp(`eventId=${id}`));
    controller.abort();
    assert.equal(await tail, 0);
    assert.equal(writer.lines.length, 1, 'the message stored before the tail started is not printed');
    assert.match(writer.errors.at(-1) ?? '', /1 message\(s\) \(interrupted\)/);
  });

  it('does not move a durable consumer and leaves no consumer behind', async () => {
    const topic = uniqueTopic('durable');
    await publish(topic, 'x', 0);
    await publish(topic, 'x', 1);
    const jsm = await jetstreamManager(nc);
    const stream = streamNameFor('EVENTBUS', topic);
    await jsm.consumers.add(stream, {
      durable_name: 'billing',
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
    });
    const before = await jsm.consumers.info(stream, 'billing');
    const writer = captureWriter();
    await runTail(
      { nats: natsOptions(server.url), topic, from: 'start', untilEnd: true, json: false },
      writer,
    );
    assert.equal(writer.lines.length, 2);
    const afterInfo = await jsm.consumers.info(stream, 'billing');
    assert.deepEqual(afterInfo.delivered, before.delivered);
    assert.deepEqual(afterInfo.ack_floor, before.ack_floor);
    assert.equal(afterInfo.num_pending, 2);
    const names: string[] = [];
    for await (const ci of jsm.consumers.list(stream)) names.push(ci.name);
    assert.deepEqual(names, ['billing'], 'the ordered consumer was deleted');
  });

  it('reports a missing stream with exit code 1, and validates its flags', async () => {
    const writer = captureWriter();
    const code = await runTail(
      { nats: natsOptions(server.url), topic: 'no.such.topic', from: 'start', untilEnd: true, json: false },
      writer,
    );
    assert.equal(code, 1);
    assert.match(writer.errors[0] ?? '', /no stream EVENTBUS_no_such_topic for topic no\.such\.topic/);
    assert.throws(() => parseTailArgs(['t', '--from', 'yesterday']), /Expected --from to be start, new/);
    assert.throws(() => parseTailArgs(['t', '--limit', '0']), /Expected --limit to be a positive integer/);
    assert.throws(() => parseTailArgs([]), /Expected a topic/);
  });
});
