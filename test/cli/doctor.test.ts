import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AckPolicy, type JetStreamManager, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { parseDoctorArgs, runDoctor } from '../../src/cli/doctor.ts';
import { deferred } from '../../src/testing/waiters.ts';
import { streamNameFor } from '../../src/transports/nats/names.ts';
import { type NatsServerHandle, startNatsServer } from '../harness/nats-server.ts';
import { getFreePort } from '../harness/ports.ts';
import { captureWriter, natsBus, natsOptions, uniqueTopic } from './helpers.ts';

describe('eventbus doctor', () => {
  let server: NatsServerHandle;
  let nc: NatsConnection;
  let jsm: JetStreamManager;

  before(async () => {
    server = await startNatsServer({ jetstream: true });
    nc = await connect({ servers: server.url });
    jsm = await jetstreamManager(nc);
  });

  after(async () => {
    await nc?.close();
    await server?.stop();
  });

  const doctor = (prefix: string, topics: string[] = [], rawTopics: string[] = []) => {
    const writer = captureWriter();
    return runDoctor({ nats: natsOptions(server.url, prefix), topics, rawTopics }, writer).then((code) => ({
      code,
      lines: writer.lines,
      summary: writer.errors.at(-1) ?? '',
    }));
  };

  it('passes on streams and consumers the transport created (envelope, raw, dead-letter)', async () => {
    const prefix = 'DOCOK';
    const bus = await natsBus(server.url, 'doctor-ok', prefix);
    try {
      const orders = uniqueTopic('orders');
      const ticks = uniqueTopic('ticks');
      await bus.subscribeEnvelope(orders, () => {}, { group: 'billing' });
      await bus.subscribe(ticks, () => {}, { group: 'audit' });
      const failing = uniqueTopic('failing');
      const deadLettered = deferred();
      await bus.subscribeEnvelope(
        failing,
        () => {
          throw new Error('always');
        },
        { group: 'billing', maxAttempts: 1 },
      );
      await bus.subscribeEnvelope(`${failing}.DLQ`, () => deadLettered.resolve(), { group: 'watch' });
      await bus.publishEnvelope(failing, {
        aggregateId: 'f-1',
        eventType: 'Bad',
        eventVersion: 0,
        payload: {},
      });
      await deadLettered.promise;
      await bus.publishEnvelope(orders, {
        aggregateId: 'o-1',
        eventType: 'Placed',
        eventVersion: 0,
        payload: {},
      });
      await bus.publish(ticks, new TextEncoder().encode('tick'));
      await bus.flush();

      const all = await doctor(prefix);
      if (process.env.CLI_TEST_DEBUG) console.log(all.lines.join('\n'));
      assert.equal(all.code, 0, all.lines.join('\n'));
      assert.deepEqual(
        all.lines.filter((l) => !l.startsWith('ok ')),
        [],
        'no warn or FAIL lines for what the transport created',
      );
      assert.match(all.lines[0] ?? '', /^ok +server: nats:\/\/127\.0\.0\.1:\d+: nats-server \d+\.\d+/);
      assert.match(all.lines[1] ?? '', /^ok +jetstream: enabled: /);
      // The partitioned group of the envelope topic: its member and every partition lease it holds.
      const group = all.lines.find((l) => l.includes(`group ${streamNameFor(prefix, orders)}/billing`)) ?? '';
      assert.match(group, /1 member\(s\) \[.+\]; 17 partition lease\(s\) held/);
      const ordersStream = streamNameFor(prefix, orders);
      const streamLine = all.lines.find((l) => l.includes(`stream ${ordersStream} `)) ?? '';
      assert.match(
        streamLine,
        /envelope: partitioned \(only envelope topics are\)\): captures .*; file storage \(envelope topic\); limits retention; discard old; duplicate window 120000 ms; max_msgs 1000000; max_bytes 1073741824/,
      );
      // One consumer per partition (and the plain lane): billing_<lane>_<epoch>_<generation>.
      const consumerLine = all.lines.find((l) => l.includes(`consumer ${ordersStream}/billing_p0_`)) ?? '';
      assert.match(
        consumerLine,
        /explicit acks; MaxAckPending 10000; MaxWaiting 1000; AckWait 30000 ms; deliver all; partition .*\._P_\.0;/,
      );
      assert.match(
        all.lines.find((l) => l.includes(streamNameFor(prefix, ticks))) ?? '',
        /raw: messages are not envelopes\).*memory storage \(raw topic\)/,
      );
      assert.match(
        all.lines.find((l) => l.includes(`stream ${streamNameFor(prefix, `${failing}.DLQ`)} `)) ?? '',
        /envelope: dead-letter topic\): .*file storage \(envelope topic\)/,
      );
      assert.match(all.summary, /no problem that breaks a guarantee/);

      const withDlq = await doctor(prefix, [failing]);
      assert.equal(withDlq.code, 0);
      assert.ok(
        withDlq.lines.some((l) => l.includes(`consumer ${streamNameFor(prefix, `${failing}.DLQ`)}/watch`)),
        'a named topic brings its dead-letter stream along',
      );

      const one = await doctor(prefix, [orders, 'not.there']);
      assert.equal(one.code, 0);
      assert.ok(
        one.lines.some((l) => /^info +stream DOCOK_not_there: does not exist/.test(l)),
        one.lines.join('\n'),
      );
      assert.ok(!one.lines.some((l) => l.includes(streamNameFor(prefix, ticks))), 'only the named topics');
    } finally {
      await bus.close();
    }
  });

  it('fails on memory storage for an envelope topic and on ack policy none', async () => {
    const prefix = 'DOCBAD';
    const topic = uniqueTopic('payments');
    const name = streamNameFor(prefix, topic);
    await jsm.streams.add({ name, subjects: [topic], storage: StorageType.Memory });
    await jsm.consumers.add(name, { durable_name: 'lossy', ack_policy: AckPolicy.None });
    const bus = await natsBus(server.url, 'doctor-bad', prefix);
    try {
      // The bus adopts the existing memory stream (with a warning) and publishes envelopes into it.
      await bus.publishEnvelope(topic, {
        aggregateId: 'p-1',
        eventType: 'Paid',
        eventVersion: 0,
        payload: {},
      });
      await bus.flush();
    } finally {
      await bus.close();
    }
    const result = await doctor(prefix, [topic]);
    assert.equal(result.code, 1, result.lines.join('\n'));
    assert.ok(
      result.lines.some((l) =>
        new RegExp(
          `^FAIL +stream ${name} \\(${topic}, envelope: .*\\): memory storage on an envelope topic`,
        ).test(l),
      ),
      result.lines.join('\n'),
    );
    assert.ok(result.lines.some((l) => new RegExp(`^FAIL +consumer ${name}/lossy: ack policy none`).test(l)));
    assert.ok(
      result.lines.some((l) => /^warn +consumer .*\/lossy: MaxAckPending/.test(l)),
      'differences that keep guarantees are warnings',
    );
    assert.match(result.summary, /2 problem\(s\) that break a guarantee/);
  });

  it('an empty memory stream is only a warning; --raw declares raw topics', async () => {
    const prefix = 'DOCEMPTY';
    const topic = uniqueTopic('maybe');
    const name = streamNameFor(prefix, topic);
    await jsm.streams.add({
      name,
      subjects: [topic],
      storage: StorageType.Memory,
      duplicate_window: 120_000_000_000,
    });
    const unknown = await doctor(prefix, [topic]);
    assert.equal(unknown.code, 0);
    assert.ok(
      unknown.lines.some((l) =>
        /^warn +stream .*unknown: no message to tell\): memory storage, and no message tells/.test(l),
      ),
    );
    const raw = await doctor(prefix, [], [topic]);
    assert.ok(
      raw.lines.some((l) => /raw: declared with --raw\).*memory storage \(raw topic\)/.test(l)),
      raw.lines.join('\n'),
    );
  });

  it('reports an unreachable server as a failure', async () => {
    const port = await getFreePort();
    const writer = captureWriter();
    const code = await runDoctor(
      { nats: natsOptions(`nats://127.0.0.1:${port}`), topics: [], rawTopics: [] },
      writer,
    );
    assert.equal(code, 1);
    assert.match(
      writer.lines[0] ?? '',
      /^FAIL +server: Could not connect to NATS at nats:\/\/127\.0\.0\.1:\d+/,
    );
    assert.throws(() => parseDoctorArgs(['bad topic']), /Expected `topic` to be a NATS subject/);
    assert.throws(
      () => parseDoctorArgs(['--stream-prefix', 'a.b']),
      /Expected --stream-prefix to be 1-64 characters/,
    );
  });
});
