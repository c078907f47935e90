/**
 * Bad input and poison on a real nats-server (issue 12). Each case failed on
 * the code before it:
 * - a header the client cannot parse (written by another client) stayed in
 *   flight for ever; with ackPolicy 'all' it stalled the group;
 * - 10,000-deep JSON, invalid UTF-8 and huge non-envelope JSON are
 *   dead-lettered with a precise reason;
 * - a message at max_payload could never be dead-lettered (copied headers
 *   pushed the dead letter over the limit): an endless nak loop, and the
 *   aggregate's next event ran first;
 * - a raw subscription to `<topic>.DLQ` before the first dead letter created
 *   a memory stream (dead letters lost on a server restart).
 * Good events are judged by the order checker; "no loop" by the consumers'
 * redelivery counts and the poison handler's run count.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { connect as tcpConnect } from 'node:net';
import { describe, it } from 'node:test';
import { jetstream } from '@nats-io/jetstream';
import { type EventBusOptions, PayloadTooLargeError, type PublishResult } from '../../../src/index.ts';
import { createOrderChecker, formatReport, type OrderChecker } from '../../../src/testing/checker.ts';
import { type Signal, until } from '../../../src/testing/index.ts';
import { streamNameFor } from '../../../src/transports/nats/names.ts';
import { NATS_DEFAULTS } from '../../../src/transports/nats/options.ts';
import { useNatsBuses, waitUntil } from './helpers.ts';

const MAX_PAYLOAD = 64 * 1024;
const encoder = new TextEncoder();

interface Letter {
  readonly body: Uint8Array;
  readonly headers: Readonly<Record<string, string>>;
}

/** Writes one message with raw protocol, the way another (non-validating) client could. */
async function publishRawProtocol(
  url: string,
  subject: string,
  headerBlock: string,
  body: string,
): Promise<void> {
  const { hostname, port } = new URL(url);
  const socket = tcpConnect({ host: hostname, port: Number(port) });
  try {
    await new Promise<void>((resolve, reject) => {
      let seen = '';
      socket.on('error', reject);
      socket.on('data', (chunk) => {
        seen += chunk.toString('latin1');
        if (seen.includes('INFO ') && !seen.includes('sent')) {
          seen += 'sent';
          const hdr = Buffer.from(headerBlock, 'latin1');
          const payload = Buffer.from(body, 'latin1');
          socket.write(
            `CONNECT {"verbose":false,"pedantic":false,"headers":true,"protocol":1}\r\n` +
              `HPUB ${subject} ${hdr.length} ${hdr.length + payload.length}\r\n`,
          );
          socket.write(Buffer.concat([hdr, payload, Buffer.from('\r\nPING\r\n')]));
        }
        if (seen.includes('PONG')) resolve();
        if (seen.includes('-ERR')) reject(new Error(`server refused: ${seen}`));
      });
    });
  } finally {
    socket.destroy();
  }
}

describe('nats: poison and bad input never stall, loop or crash', () => {
  const nats = useNatsBuses({ config: `max_payload: ${MAX_PAYLOAD}` });
  const { open } = nats;
  const stream = (topic: string): string => streamNameFor(NATS_DEFAULTS.streamPrefix, topic);
  const redeliveries = async (topic: string): Promise<number> => {
    let total = 0;
    for await (const info of nats.inspect.jsm.consumers.list(stream(topic))) total += info.num_redelivered;
    return total;
  };
  const storedCount = async (topic: string): Promise<number> =>
    (await nats.inspect.jsm.streams.info(stream(topic))).state.messages;

  it("unreadable headers, 10,000-deep JSON, invalid UTF-8, huge JSON: each dead-lettered with a precise reason; good events flow (ackPolicy 'all'); the DLQ is durable", {
    timeout: 60_000,
  }, async () => {
    const topic = `poison-${randomUUID().slice(0, 6)}`;
    const signals: Signal[] = [];
    const letters: Letter[] = [];
    const checker: OrderChecker = createOrderChecker();
    const consumer = await open(`c-${topic}`, {
      nats: { servers: nats.server.url, consumer: { ackPolicy: 'all' } },
    } as Partial<EventBusOptions>);
    // A raw subscription to the DLQ before the first dead letter (the demo does this).
    await consumer.subscribe(
      `${topic}.DLQ`,
      (data, ctx) => {
        letters.push({ body: data, headers: ctx.headers });
        for (const s of signals) s.check();
      },
      { group: 'watch' },
    );
    await consumer.subscribeEnvelope<{ index: number }>(
      topic,
      (e) => {
        checker.observe(e.eventId, e.aggregateId, e.payload.index);
        for (const s of signals) s.check();
      },
      { group: 'g' },
    );
    // Plain-subject publishing (the Go fleet mode): every event in one lane,
    // the bad ones among them, so a stranded message would hold the rest.
    const producer = await open(`p-${topic}`, { interop: 'jxt-go' } as Partial<EventBusOptions>);
    let published = 0;
    const good = async (count: number): Promise<void> => {
      for (let i = 0; i < count; i++) {
        const index = published++;
        const eventId = randomUUID();
        checker.expect(eventId, 'a', index);
        const input = { eventId, aggregateId: 'a', eventType: 'Tested', eventVersion: 1, payload: { index } };
        await producer.publishEnvelope(topic, input);
        checker.acknowledged(eventId);
      }
      await producer.flush();
    };
    const js = jetstream(nats.inspect.nc);
    const head = `{"event_id":"e-deep","aggregate_id":"a","event_type":"T","event_version":1,"timestamp":"2026-01-02T03:04:05Z","payload":`;
    const deep = encoder.encode(`${head}${'['.repeat(10_000)}12345678901234567${']'.repeat(10_000)}}`);
    const invalidUtf8 = new Uint8Array([
      ...encoder.encode('{"event_id":"'),
      0xff,
      0xfe,
      ...encoder.encode('"}'),
    ]);
    const huge = encoder.encode(
      `[${Array.from({ length: 6_000 }, (_, i) => i).join(',')},"${'h'.repeat(30_000)}"]`,
    );

    await good(10);
    await publishRawProtocol(nats.server.url, topic, 'NATS/1.0\r\nBad Name: x\r\n\r\n', 'not an envelope');
    await waitUntil(async () => (await storedCount(topic)) === 11, 'the raw-protocol message is stored');
    await js.publish(topic, deep, { msgID: 'deep' });
    await js.publish(topic, invalidUtf8, { msgID: 'utf8' });
    await js.publish(topic, huge, { msgID: 'huge' });
    await good(40);

    const done = until(
      () => checker.outstanding() === 0 && letters.length === 4,
      () => `${formatReport(checker.report())} dead letters=${letters.length}`,
    );
    signals.push(done);
    await done.wait(30_000);
    const report = checker.report();
    assert.equal(report.lost, 0, formatReport(report));
    assert.equal(report.outOfOrder, 0, formatReport(report));
    assert.equal(report.unexpected, 0, formatReport(report));

    const reasonOf = (match: (body: Uint8Array) => boolean): string =>
      letters.find((l) => match(l.body))?.headers['X-DLQ-Reason'] ?? '(not dead-lettered)';
    const text = (body: Uint8Array): string => Buffer.from(body).toString('latin1');
    assert.match(
      reasonOf((b) => text(b) === 'not an envelope'),
      /^Expected message headers this client can parse, got: .*header/i,
    );
    assert.match(
      reasonOf((b) => b.byteLength === deep.byteLength),
      /nested at most 512 levels deep/,
    );
    assert.match(
      reasonOf((b) => b.byteLength === invalidUtf8.byteLength),
      /not valid UTF-8 \(first bad byte at offset 13\)/,
    );
    assert.match(
      reasonOf((b) => b.byteLength === huge.byteLength),
      /Expected an envelope object, got a JSON non-object/,
    );
    const unreadable = letters.find((l) => text(l.body) === 'not an envelope');
    assert.equal(unreadable?.headers['X-DLQ-Headers-Unreadable'], 'true');

    assert.equal(await redeliveries(topic), 0, 'nothing was redelivered: no loop, nothing stranded');
    const dlq = await nats.inspect.jsm.streams.info(stream(`${topic}.DLQ`));
    assert.equal(dlq.config.storage, 'file', 'a raw subscription did not make the DLQ a memory stream');
  });

  it('an event at max_payload that fails is dead-lettered (copied headers dropped, reason kept), before the aggregate moves on', {
    timeout: 60_000,
  }, async () => {
    const topic = `atlimit-${randomUUID().slice(0, 6)}`;
    const signals: Signal[] = [];
    const letters: Letter[] = [];
    const checker = createOrderChecker();
    const results: PublishResult[] = [];
    const bus = await open(`b-${topic}`, { onPublishResult: (r: PublishResult) => results.push(r) });
    await bus.subscribeEnvelope(
      `${topic}.DLQ`,
      (_e, ctx) => {
        letters.push({ body: new Uint8Array(), headers: ctx.headers });
        for (const s of signals) s.check();
      },
      { group: 'watch' },
    );
    let poisonRuns = 0;
    await bus.subscribeEnvelope<{ index: number; pad?: string }>(
      topic,
      (e) => {
        if (e.payload.pad !== undefined) {
          poisonRuns++;
          throw new Error('poison: always fails');
        }
        checker.observe(e.eventId, e.aggregateId, e.payload.index);
        for (const s of signals) s.check();
      },
      { group: 'g', maxAttempts: 2, backoff: { initialMs: 10, maxMs: 10 } },
    );
    // Big copied headers, and a payload padded until the message is exactly max_payload.
    const headers = { 'X-Big-One': 'h'.repeat(1_500), 'X-Big-Two': 'h'.repeat(1_000) };
    const base = { aggregateId: 'a', eventType: 'Tested', eventVersion: 1 } as const;
    let pad = 'x'.repeat(MAX_PAYLOAD);
    let poisonId: string | undefined;
    while (poisonId === undefined) {
      try {
        poisonId = (await bus.publishEnvelope(topic, { ...base, payload: { index: -1, pad } }, { headers }))
          .eventId;
      } catch (error) {
        if (!(error instanceof PayloadTooLargeError)) throw error;
        pad = pad.slice(0, pad.length - (error.size - error.limit));
      }
    }
    for (let index = 0; index < 20; index++) {
      const eventId = randomUUID();
      checker.expect(eventId, 'a', index);
      await bus.publishEnvelope(topic, { ...base, eventId, payload: { index } });
      checker.acknowledged(eventId);
    }
    await bus.flush();
    const poisonResult = results.find((r) => r.eventId === poisonId);
    assert.equal(
      poisonResult?.success,
      true,
      `a publish of exactly max_payload is stored: ${poisonResult?.error}`,
    );

    const done = until(
      () => checker.outstanding() === 0 && letters.length === 1,
      () => `${formatReport(checker.report())} dead letters=${letters.length}`,
    );
    signals.push(done);
    await done.wait(30_000);
    const report = checker.report();
    assert.equal(report.lost, 0, formatReport(report));
    assert.equal(report.outOfOrder, 0, formatReport(report));
    const letter = letters[0];
    assert.equal(letter?.headers['X-DLQ-Reason'], 'poison: always fails');
    assert.equal(letter?.headers['X-Event-ID'], poisonId, 'the identity headers are kept');
    assert.ok(Number(letter?.headers['X-DLQ-Headers-Dropped']) >= 1, 'copied headers were dropped to fit');
    assert.equal(poisonRuns, 2, 'ran maxAttempts times: no redelivery loop');
    assert.equal(await redeliveries(topic), 0);
  });
});
