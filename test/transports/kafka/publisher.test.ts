/** The pipelined publisher against a fake producer (no broker). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import type { ProduceResult } from '@platformatic/kafka';
import { silentLogger } from '../../../src/core/logger.ts';
import type { OutboundMessage, PublishOutcome } from '../../../src/core/transport.ts';
import {
  KafkaPublisher,
  type ProduceRecord,
  type ProducerClient,
} from '../../../src/transports/kafka/publisher.ts';
import { keyHash } from '../../../src/transports/kafka/records.ts';

type Callback = (error: Error | null, result?: ProduceResult) => void;

/** Records produce calls; the test decides when and how each is answered, like a broker would. */
class FakeProducer implements ProducerClient {
  readonly calls: Array<{ records: ProduceRecord[]; callback: Callback }> = [];
  readonly counts = new Map<string, number>([
    ['orders', 3],
    ['audit', 1],
  ]);
  /** Next offset per topic-partition ("log end offset"). */
  readonly logEnd = new Map<string, bigint>();

  send(records: ProduceRecord[], callback: Callback): void {
    this.calls.push({ records, callback });
  }
  partitionCount(topic: string): number | undefined {
    return this.counts.get(topic);
  }
  partitionOf(record: ProduceRecord): number {
    return (record.partition as number) % (this.counts.get(record.topic) as number);
  }
  /** Appends a call's records to the log; returns what a broker would answer (one base offset per partition). */
  append(records: ProduceRecord[]): ProduceResult {
    const base = new Map<string, { topic: string; partition: number; offset: bigint }>();
    for (const r of records) {
      const p = this.partitionOf(r);
      const key = `${r.topic}:${p}`;
      const end = this.logEnd.get(key) ?? 0n;
      if (!base.has(key)) base.set(key, { topic: r.topic, partition: p, offset: end });
      this.logEnd.set(key, end + 1n);
    }
    return { offsets: [...base.values()] };
  }
  succeed(i: number): void {
    const call = this.calls[i];
    assert.ok(call, `no produce call #${i}`);
    call.callback(null, this.append(call.records));
  }
  fail(i: number, error: Error): void {
    (this.calls[i] as { callback: Callback }).callback(error);
  }
}

const options = {
  maxInFlight: 1,
  lingerMs: 0,
  maxBatchMessages: 10_000,
  maxBatchBytes: 1024 * 1024,
  publishTimeoutMs: 30_000,
  maxPayloadBytes: 1024 * 1024,
};

function message(
  topic: string,
  key: string | undefined,
  body = 'x',
  headers: Record<string, string> = {},
): OutboundMessage {
  return { topic, kind: 'envelope', data: Buffer.from(body), headers, msgId: `${key}-${body}`, key };
}

function collector() {
  const outcomes: PublishOutcome[] = [];
  const calls = new Map<number, number>();
  const done = (i: number) => (outcome: PublishOutcome) => {
    calls.set(i, (calls.get(i) ?? 0) + 1);
    outcomes[i] = outcome;
  };
  return { outcomes, calls, done };
}

describe('KafkaPublisher', () => {
  it('sends everything queued in one tick as one produce call; callbacks are async, once, with offsets', async () => {
    const client = new FakeProducer();
    const p = new KafkaPublisher(client, options, { logger: silentLogger });
    const c = collector();
    for (let i = 0; i < 30; i++)
      p.send(message('orders', `agg-${i % 4}`, `m${i}`, { 'X-Event-ID': `e${i}` }), c.done(i));
    assert.equal(c.calls.size, 0, 'never called inside send');
    assert.equal(client.calls.length, 0, 'nothing sent synchronously');
    await tick();
    assert.equal(client.calls.length, 1, 'one produce call for the whole tick');
    assert.equal(client.calls[0]?.records.length, 30);
    client.succeed(0);
    assert.equal(c.calls.size, 30);
    for (const n of c.calls.values()) assert.equal(n, 1);
    // Offsets: per partition, consecutive in send order.
    const seen = new Map<number, bigint[]>();
    client.calls[0]?.records.forEach((r, i) => {
      const o = c.outcomes[i];
      assert.ok(o?.ok && o.offset !== undefined);
      const list = seen.get(client.partitionOf(r)) ?? [];
      list.push(BigInt(o.offset));
      seen.set(client.partitionOf(r), list);
    });
    for (const list of seen.values()) {
      for (let i = 0; i < list.length; i++) assert.equal(list[i], BigInt(i));
    }
  });

  it('maps the record: key = aggregate id, explicit partition = key hash, headers as bytes', async () => {
    const client = new FakeProducer();
    const p = new KafkaPublisher(client, options, { logger: silentLogger });
    p.send(message('orders', 'order-42', 'body', { 'X-Aggregate-ID': 'order-42' }), () => {});
    p.send(message('orders', 'order-42', 'body2'), () => {});
    await tick();
    const [a, b] = client.calls[0]?.records ?? [];
    assert.deepEqual(a?.key, Buffer.from('order-42'));
    assert.equal(a?.partition, keyHash(Buffer.from('order-42')));
    assert.equal(a?.partition, b?.partition, 'one aggregate, one partition');
    assert.deepEqual(a?.value, Buffer.from('body'));
    const headers = [...((a?.headers as Map<Buffer, Buffer>) ?? new Map())].map(([k, v]) => [
      k.toString(),
      v.toString(),
    ]);
    assert.deepEqual(headers, [['X-Aggregate-ID', 'order-42']]);
  });

  it('spreads keyless messages round-robin', async () => {
    const client = new FakeProducer();
    const p = new KafkaPublisher(client, options, { logger: silentLogger });
    for (let i = 0; i < 6; i++) p.send(message('orders', undefined, `m${i}`), () => {});
    await tick();
    const partitions = client.calls[0]?.records.map((r) => client.partitionOf(r));
    assert.deepEqual(partitions, [0, 1, 2, 0, 1, 2]);
    assert.equal(client.calls[0]?.records[0]?.key, undefined);
  });

  it('pipelines: while a call is in flight, new messages form the next batch', async () => {
    const client = new FakeProducer();
    const p = new KafkaPublisher(client, options, { logger: silentLogger });
    const c = collector();
    p.send(message('orders', 'a', '1'), c.done(0));
    await tick();
    for (let i = 1; i <= 5; i++) p.send(message('orders', 'a', String(i + 1)), c.done(i));
    await tick();
    await tick();
    assert.equal(client.calls.length, 1, 'maxInFlight 1: the second batch waits');
    client.succeed(0);
    await tick();
    assert.equal(client.calls.length, 2);
    assert.equal(client.calls[1]?.records.length, 5);
    client.succeed(1);
    assert.deepEqual(
      c.outcomes.map((o) => (o.ok ? o.offset : 'x')),
      ['0', '1', '2', '3', '4', '5'],
      'per-key order kept across batches',
    );
  });

  it('splits batches by message count and bytes', async () => {
    const client = new FakeProducer();
    const p = new KafkaPublisher(
      client,
      { ...options, maxInFlight: 5, maxBatchMessages: 4, maxBatchBytes: 300 },
      {
        logger: silentLogger,
      },
    );
    for (let i = 0; i < 10; i++) p.send(message('orders', 'k', 'x'.repeat(100)), () => {});
    await tick();
    // 100-byte bodies + 1-byte key + 32 bytes framing: two per 300-byte batch.
    assert.deepEqual(
      client.calls.map((call) => call.records.length),
      [2, 2, 2, 2, 2],
    );
    const client2 = new FakeProducer();
    const r = new KafkaPublisher(
      client2,
      { ...options, maxInFlight: 5, maxBatchMessages: 4 },
      { logger: silentLogger },
    );
    for (let i = 0; i < 10; i++) r.send(message('orders', 'k'), () => {});
    await tick();
    assert.deepEqual(
      client2.calls.map((call) => call.records.length),
      [4, 4, 2],
    );
  });

  it('lingerMs gathers messages over several turns', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] }); // the linger timer; the test moves the clock
    const client = new FakeProducer();
    const p = new KafkaPublisher(client, { ...options, lingerMs: 30 }, { logger: silentLogger });
    p.send(message('orders', 'k', '1'), () => {});
    t.mock.timers.tick(5);
    await tick();
    p.send(message('orders', 'k', '2'), () => {});
    t.mock.timers.tick(24);
    await tick();
    assert.equal(client.calls.length, 0, 'still lingering 29 ms after the first message');
    t.mock.timers.tick(1);
    await tick();
    assert.equal(client.calls.length, 1);
    assert.equal(client.calls[0]?.records.length, 2);
  });

  it('rejects an oversize message with PayloadTooLargeError, asynchronously, without sending it', async () => {
    const client = new FakeProducer();
    const p = new KafkaPublisher(client, { ...options, maxPayloadBytes: 100 }, { logger: silentLogger });
    const c = collector();
    p.send(message('orders', 'k', 'x'.repeat(200)), c.done(0));
    assert.equal(c.calls.size, 0);
    await tick();
    assert.equal(client.calls.length, 0);
    const o = c.outcomes[0];
    assert.ok(o && !o.ok);
    assert.equal(o.error.code, 'EVENTBUS_PAYLOAD_TOO_LARGE');
  });

  it('reports a failed call as typed errors, once per message; partial success keeps its offsets', async () => {
    const client = new FakeProducer();
    const p = new KafkaPublisher(client, options, { logger: silentLogger });
    const c = collector();
    p.send(message('orders', undefined, 'a'), c.done(0)); // partition 0
    p.send(message('orders', undefined, 'b'), c.done(1)); // partition 1
    await tick();
    const broker = Object.assign(
      new AggregateError(
        [Object.assign(new Error('NOT_LEADER'), { apiId: 'NOT_LEADER_OR_FOLLOWER' })],
        'failed',
      ),
      { produced: { offsets: [{ topic: 'orders', partition: 0, offset: 77n }] } },
    );
    client.fail(0, broker);
    const [a, b] = c.outcomes;
    assert.deepEqual(a, { ok: true, offset: '77' }, 'partition 0 was written (another broker)');
    assert.ok(b && !b.ok);
    assert.equal(b.error.code, 'EVENTBUS_TRANSPORT');
    assert.equal(b.error.retryable, true);
    client.fail(0, broker); // a second answer is ignored
    assert.equal(c.calls.get(1), 1);
  });

  it('reports TimeoutError (unknown outcome) when the broker does not answer in time, and ignores the late answer', async (t) => {
    // The sweep interval and the publisher's clock (Date.now) are mocked: the test moves time.
    t.mock.timers.enable({ apis: ['setInterval', 'Date'] });
    const client = new FakeProducer();
    const p = new KafkaPublisher(client, { ...options, publishTimeoutMs: 40 }, { logger: silentLogger });
    const c = collector();
    p.send(message('orders', 'k', '1'), c.done(0));
    await tick();
    p.send(message('orders', 'k', '2'), c.done(1)); // queued behind the unanswered call
    t.mock.timers.tick(39);
    assert.equal(c.outcomes.length, 0, 'not yet: 39 ms of 40');
    t.mock.timers.tick(1);
    const [a, b] = c.outcomes;
    assert.ok(a && !a.ok && b && !b.ok);
    assert.equal(a.error.code, 'EVENTBUS_TIMEOUT');
    assert.equal(a.error.retryable, true);
    assert.equal(b.error.code, 'EVENTBUS_TRANSPORT', 'never sent: known not stored');
    client.succeed(0);
    assert.equal(c.calls.get(0), 1, 'exactly once');
    await tick();
    assert.equal(client.calls.length, 1, 'the expired queued message is not sent later');
  });

  it('fails only the messages of a topic that could not be created', async () => {
    const client = new FakeProducer();
    const p = new KafkaPublisher(client, options, {
      logger: silentLogger,
      ensureTopic: (topic) => (topic === 'audit' ? Promise.reject(new Error('POLICY')) : undefined),
    });
    const c = collector();
    p.send(message('orders', 'k'), c.done(0));
    p.send(message('audit', 'k'), c.done(1));
    await tick();
    await tick();
    assert.equal(client.calls.length, 1);
    assert.deepEqual(
      client.calls[0]?.records.map((r) => r.topic),
      ['orders'],
    );
    client.succeed(0);
    assert.ok(c.outcomes[0]?.ok);
    assert.equal(c.outcomes[1]?.ok, false);
  });

  it('a throwing callback does not disturb the others', async () => {
    const client = new FakeProducer();
    const p = new KafkaPublisher(client, options, { logger: silentLogger });
    const c = collector();
    p.send(message('orders', 'k'), () => {
      throw new Error('boom');
    });
    p.send(message('orders', 'k'), c.done(1));
    await tick();
    client.succeed(0);
    assert.ok(c.outcomes[1]?.ok);
  });

  it('flush waits for every answer', async () => {
    const client = new FakeProducer();
    const p = new KafkaPublisher(client, { ...options, lingerMs: 10_000 }, { logger: silentLogger });
    p.send(message('orders', 'k'), () => {});
    let flushed = false;
    const flushing = p.flush().then(() => {
      flushed = true;
    });
    await tick();
    await tick();
    assert.equal(client.calls.length, 1, 'flush skips the linger');
    assert.equal(flushed, false);
    client.succeed(0);
    await flushing;
    assert.equal(p.pending, 0);
  });

  it('close waits for in-flight answers; at the deadline reports queued as closed and in flight as unknown', async () => {
    const client = new FakeProducer();
    const p = new KafkaPublisher(client, options, { logger: silentLogger });
    const c = collector();
    p.send(message('orders', 'k', '1'), c.done(0));
    await tick();
    p.send(message('orders', 'k', '2'), c.done(1));
    await p.close(AbortSignal.timeout(50));
    const [a, b] = c.outcomes;
    assert.ok(a && !a.ok && b && !b.ok);
    assert.equal(a.error.code, 'EVENTBUS_TIMEOUT');
    assert.equal(b.error.code, 'EVENTBUS_CLOSED');
    p.send(message('orders', 'k', '3'), c.done(2));
    assert.equal(c.calls.get(2), undefined);
    await tick();
    assert.equal(c.outcomes[2]?.ok, false);
    assert.equal(c.outcomes[2]?.ok === false && c.outcomes[2].error.code, 'EVENTBUS_CLOSED');
  });

  it('close with a healthy broker reports every message as published', async () => {
    const client = new FakeProducer();
    const p = new KafkaPublisher(client, options, { logger: silentLogger });
    const c = collector();
    for (let i = 0; i < 3; i++) p.send(message('orders', 'k', String(i)), c.done(i));
    const closing = p.close(AbortSignal.timeout(5_000));
    await tick();
    client.succeed(0);
    await closing;
    assert.deepEqual(
      c.outcomes.map((o) => o.ok),
      [true, true, true],
    );
  });
});
