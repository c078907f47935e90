/**
 * Quick throughput print, side by side with the official client in the same
 * run (ratios, not machine-dependent absolutes). Prints only; no timing asserts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AckPolicy, jetstream } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import type { OutboundMessage, Transport } from '../../../src/core/transport.ts';
import { type NatsServerHandle, startNatsServer } from '../../harness/nats-server.ts';
import { FakeFlow, type Inspector, inspector, openTransport, pipeline, waitUntil } from './helpers.ts';

const COUNT = 50_000;
const body = new TextEncoder().encode(
  JSON.stringify({
    eventId: '0190f5a2-0000-7000-8000-000000000000',
    aggregateId: 'order-42',
    eventType: 'OrderCreated',
    eventVersion: 1,
    timestamp: new Date(0).toISOString(),
    payload: { amount: 1234, currency: 'EUR', lines: [1, 2, 3] },
  }),
);

function envelopeLike(topic: string, i: number): OutboundMessage {
  const id = `${topic}-${i}`;
  return {
    topic,
    kind: 'envelope',
    data: body,
    headers: {
      'X-Event-ID': id,
      'X-Aggregate-ID': `order-${i % 1000}`,
      'X-Event-Type': 'OrderCreated',
      'X-Event-Version': '1',
      'X-Timestamp': '1970-01-01T00:00:00.000Z',
    },
    msgId: id,
    key: undefined,
  };
}

function rate(count: number, ms: number): string {
  return `${Math.round((count / ms) * 1000).toLocaleString('en-US')} msg/s (${Math.round(ms)} ms)`;
}

describe('nats throughput (print only)', () => {
  let server: NatsServerHandle;
  let transport: Transport;
  let inspect: Inspector;
  const lines: string[] = [];

  before(async () => {
    server = await startNatsServer({ jetstream: true });
    transport = await openTransport(server.url);
    inspect = await inspector(server.url);
  });

  after(async () => {
    await transport?.close(AbortSignal.timeout(10_000));
    await inspect?.close();
    await server?.stop();
    console.log(
      `\nNATS throughput, ${COUNT.toLocaleString('en-US')} messages of ${body.byteLength} B + 6 headers:`,
    );
    for (const line of lines) console.log(`  ${line}`);
  });

  it('publish: transport send (pipelined) vs js.publish', async () => {
    for (const topic of ['tp.warmup', 'tp.ours', 'tp.raw.serial', 'tp.raw.window']) {
      await transport.ensureTopic(topic, 'envelope');
    }
    // Warm up the JIT on both paths with the same small load before measuring.
    const warm = Array.from({ length: 5_000 }, (_, i) => envelopeLike('tp.warmup', i));
    await pipeline(transport, warm, 10_000);
    const jsWarm = jetstream(inspect.nc);
    await Promise.all(warm.map((m) => jsWarm.publish('tp.warmup', m.data, { msgID: `raw-${m.msgId}` })));
    const ours = await pipeline(
      transport,
      Array.from({ length: COUNT }, (_, i) => envelopeLike('tp.ours', i)),
      10_000,
    );
    assert.ok(ours.outcomes.every((o) => o.ok));
    lines.push(`transport.send, window 10,000:          ${rate(COUNT, ours.elapsedMs)}`);

    const js = jetstream(inspect.nc);
    const rawMessage = (topic: string, i: number) => {
      const m = envelopeLike(topic, i);
      const h = natsHeaders();
      for (const [k, v] of Object.entries(m.headers)) h.set(k, v);
      return { data: m.data, options: { msgID: m.msgId, headers: h } };
    };
    let started = performance.now();
    for (let i = 0; i < COUNT; i++) {
      const { data, options } = rawMessage('tp.raw.serial', i);
      await js.publish('tp.raw.serial', data, options);
    }
    lines.push(`js.publish awaited one by one:          ${rate(COUNT, performance.now() - started)}`);

    started = performance.now();
    const inFlight = new Set<Promise<unknown>>();
    for (let i = 0; i < COUNT; i++) {
      const { data, options } = rawMessage('tp.raw.window', i);
      const p = js.publish('tp.raw.window', data, options).finally(() => inFlight.delete(p));
      inFlight.add(p);
      if (inFlight.size >= 10_000) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    lines.push(`js.publish, 10,000 promises in flight:  ${rate(COUNT, performance.now() - started)}`);
  });

  it('consume: transport pull loop vs consumer.consume(), one ack per message', async () => {
    // Streams filled by the previous test.
    const flow = new FakeFlow(10_000);
    flow.onDeliver = (m) => {
      m.ack();
      flow.release(1);
    };
    let started = performance.now();
    const sub = await transport.subscribe(
      { topic: 'tp.ours', group: 'bench', kind: 'envelope', handlerTimeoutMs: 20_000 },
      flow,
    );
    await waitUntil(() => flow.delivered.length >= COUNT, `${COUNT} deliveries`, 60_000, 5);
    lines.push(`transport pull loop (batch 500):        ${rate(COUNT, performance.now() - started)}`);
    await sub.stop();
    await sub.close();

    await inspect.jsm.consumers.add('EVENTBUS_tp_raw_serial', {
      durable_name: 'bench',
      ack_policy: AckPolicy.Explicit,
    });
    const consumer = await jetstream(inspect.nc).consumers.get('EVENTBUS_tp_raw_serial', 'bench');
    started = performance.now();
    const messages = await consumer.consume({ max_messages: 500 });
    let seen = 0;
    for await (const m of messages) {
      m.ack();
      if (++seen >= COUNT) break;
    }
    await messages.close();
    lines.push(`consumer.consume() (max_messages 500):  ${rate(COUNT, performance.now() - started)}`);
  });
});
