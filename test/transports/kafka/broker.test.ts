/**
 * The Kafka transport against a real broker (Kafka 3.5+), through the
 * Transport contract directly: a small FlowControl stands in for the bus and
 * acks each message after checking per-key order (one message per key at a
 * time, keys concurrently, so acks complete out of order like actors do).
 *
 * Skipped, with one line of output, unless KAFKA_BROKERS is set:
 *   KAFKA_BROKERS=localhost:9092 ./node_modules/.bin/node --test --test-concurrency=1 'test/transports/kafka/*.test.ts'
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Admin } from '@platformatic/kafka';
import type { EventBusError } from '../../../src/core/errors.ts';
import { silentLogger } from '../../../src/core/logger.ts';
import type {
  FlowControl,
  InboundMessage,
  OutboundMessage,
  PublishOutcome,
  Transport,
  TransportSubscription,
} from '../../../src/core/transport.ts';
import { createKafkaTransport, type KafkaTransportOptions } from '../../../src/transports/kafka/index.ts';

const brokers = process.env.KAFKA_BROKERS;
if (!brokers) {
  console.log(
    '# KAFKA_BROKERS is not set: skipping the Kafka broker tests (set KAFKA_BROKERS=host:9092 to run them)',
  );
}

const unique = (name: string): string => `jxt-kt-${name}-${randomUUID().slice(0, 8)}`;

/** Topics created by this file, deleted at the end. */
const createdTopics: string[] = [];
function topicName(name: string): string {
  const topic = unique(name);
  createdTopics.push(topic);
  return topic;
}

async function transport(name: string, overrides: Partial<KafkaTransportOptions> = {}): Promise<Transport> {
  return createKafkaTransport(
    { brokers: brokers ?? '', partitions: 6, commitIntervalMs: 200, sessionTimeoutMs: 10_000, ...overrides },
    { clientId: unique(name), logger: silentLogger },
  );
}

function publish(t: Transport, messages: OutboundMessage[]): Promise<PublishOutcome[]> {
  return Promise.all(messages.map((m) => new Promise<PublishOutcome>((resolve) => t.send(m, resolve))));
}

interface Payload {
  readonly key: string;
  readonly seq: number;
}

function event(topic: string, key: string, seq: number): OutboundMessage {
  const eventId = randomUUID();
  return {
    topic,
    kind: 'envelope',
    data: Buffer.from(JSON.stringify({ key, seq } satisfies Payload)),
    headers: {
      'X-Event-ID': eventId,
      'X-Aggregate-ID': key,
      'X-Event-Type': 'Tested',
      'X-Event-Version': '1',
    },
    msgId: eventId,
    key,
  };
}

/** Per key: first-time sequence numbers must come as 0, 1, 2, …; lower ones are duplicates (redelivery). */
class OrderChecker {
  readonly #next = new Map<string, number>();
  readonly violations: string[] = [];
  duplicates = 0;
  processed = 0;

  see(key: string, seq: number): void {
    const next = this.#next.get(key) ?? 0;
    if (seq < next) {
      this.duplicates++;
      return;
    }
    if (seq > next) this.violations.push(`${key}: got ${seq}, expected ${next}`);
    this.#next.set(key, seq + 1);
    this.processed++;
  }

  /** Messages never processed, given `perKey` messages for each key. */
  lost(keys: readonly string[], perKey: number): number {
    let lost = 0;
    for (const key of keys) lost += perKey - (this.#next.get(key) ?? 0);
    return lost;
  }
}

/**
 * The bus stand-in: bounded capacity; one message per key at a time, in
 * delivery order; keys run concurrently with small random delays, so acks
 * arrive out of offset order.
 */
class OrderFlow implements FlowControl {
  readonly errors: EventBusError[] = [];
  readonly received: InboundMessage[] = [];
  readonly #checker: OrderChecker;
  readonly #capacity: number;
  readonly #keys = new Map<string, Promise<void>>();
  readonly #waiters = new Set<() => void>();
  #inFlight = 0;
  #stopped = false;

  constructor(checker: OrderChecker, capacity = 256) {
    this.#checker = checker;
    this.#capacity = capacity;
  }
  freeCapacity(): number {
    return this.#capacity - this.#inFlight;
  }
  waitForCapacity(signal: AbortSignal): Promise<void> {
    if (this.freeCapacity() > 0 || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.#waiters.delete(done);
        resolve();
      };
      this.#waiters.add(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }
  deliver(message: InboundMessage): void {
    this.#inFlight++;
    this.received.push(message);
    const key = message.key ?? 'none';
    const previous = this.#keys.get(key) ?? Promise.resolve();
    const run = previous.then(async () => {
      if (Math.random() < 0.2) await sleep(Math.floor(Math.random() * 3));
      if (this.#stopped) {
        message.nak(); // shutting down: not processed, must come again
      } else {
        const payload = JSON.parse(Buffer.from(message.data).toString()) as Payload;
        this.#checker.see(payload.key, payload.seq);
        message.ack();
      }
      this.#inFlight--;
      for (const w of [...this.#waiters]) w();
    });
    this.#keys.set(key, run);
  }
  reportError(error: EventBusError): void {
    this.errors.push(error);
  }
  /** Waits for in-flight messages (the bus's drain), then naks the rest. */
  async drain(timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (this.#inFlight > 0 && Date.now() < until) await sleep(5);
    this.#stopped = true;
    while (this.#inFlight > 0) await sleep(5);
  }
}

async function until(what: string, condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** Graceful shutdown as the bus does it: stop intake, drain, close. */
async function shutdown(sub: TransportSubscription, flow: OrderFlow): Promise<void> {
  await sub.stop();
  await flow.drain(5_000);
  await sub.close();
}

function keysOf(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `agg-${i}`);
}

/** Per-key publish order: sequence-major, so every batch interleaves many keys. */
function events(topic: string, keys: readonly string[], perKey: number, from = 0): OutboundMessage[] {
  const out: OutboundMessage[] = [];
  for (let seq = from; seq < perKey; seq++) for (const key of keys) out.push(event(topic, key, seq));
  return out;
}

function assertPublished(outcomes: PublishOutcome[]): void {
  const failed = outcomes.filter((o) => !o.ok);
  assert.equal(
    failed.length,
    0,
    `publish failures: ${failed.map((f) => (f.ok ? '' : f.error.message)).join('; ')}`,
  );
}

describe('Kafka transport against a broker', {
  skip: brokers ? false : 'needs a Kafka broker',
  timeout: 600_000,
}, () => {
  after(async () => {
    if (createdTopics.length === 0) return;
    const admin = new Admin({ clientId: unique('cleanup'), bootstrapBrokers: (brokers ?? '').split(',') });
    try {
      await admin.deleteTopics({ topics: createdTopics });
    } catch {
      // best effort
    } finally {
      await admin.close();
    }
  });

  it('round trip: body, headers, key, offset', async () => {
    const t = await transport('roundtrip');
    try {
      const topic = topicName('roundtrip');
      await t.ensureTopic(topic, 'envelope');
      const message = event(topic, 'order-42', 0);
      const [outcome] = await publish(t, [
        {
          ...message,
          headers: { ...message.headers, 'x-custom': 'Zürich ✓', 'Nats-Msg-Id': 'never-on-kafka' },
        },
      ]);
      assert.ok(outcome?.ok, 'published');
      assert.match(outcome.offset ?? '', /^\d+$/);
      const checker = new OrderChecker();
      const flow = new OrderFlow(checker);
      const sub = await t.subscribe(
        { topic, group: unique('g'), kind: 'envelope', handlerTimeoutMs: 1_000 },
        flow,
      );
      await until('the message', () => flow.received.length === 1, 60_000);
      const got = flow.received[0] as InboundMessage;
      assert.equal(got.topic, topic);
      assert.deepEqual(JSON.parse(Buffer.from(got.data).toString()), { key: 'order-42', seq: 0 });
      assert.equal(got.key, 'order-42');
      assert.equal(got.headers['X-Event-ID'], message.headers['X-Event-ID']);
      assert.equal(got.headers['X-Aggregate-ID'], 'order-42');
      assert.equal(got.headers['x-custom'], 'Zürich ✓');
      assert.equal(got.headers['Nats-Msg-Id'], undefined, 'nothing NATS-specific on Kafka');
      assert.equal(got.sequence, Number(outcome.offset));
      assert.equal(got.deliveryCount, 1);
      await shutdown(sub, flow);
      assert.deepEqual(flow.errors, []);
    } finally {
      await t.close(AbortSignal.timeout(10_000));
    }
  });

  it('10,000 messages over 100 keys: every message, per-key order', async () => {
    const t = await transport('order');
    try {
      const topic = topicName('order');
      await t.ensureTopic(topic, 'envelope');
      const keys = keysOf(100);
      const perKey = 100;
      assertPublished(await publish(t, events(topic, keys, perKey)));
      const checker = new OrderChecker();
      const flow = new OrderFlow(checker, 500);
      const sub = await t.subscribe(
        { topic, group: unique('g'), kind: 'envelope', handlerTimeoutMs: 1_000 },
        flow,
      );
      await until('10,000 messages', () => checker.processed >= keys.length * perKey, 180_000);
      await shutdown(sub, flow);
      assert.deepEqual(checker.violations, [], 'per-key order');
      assert.equal(checker.lost(keys, perKey), 0, 'nothing lost');
      console.log(`# order: ${checker.processed} processed, ${checker.duplicates} duplicates`);
    } finally {
      await t.close(AbortSignal.timeout(10_000));
    }
  });

  it('consumer restarted mid-stream: nothing lost, nothing out of order, duplicates counted', async () => {
    const topic = topicName('restart');
    const group = unique('g');
    const keys = keysOf(100);
    const perKey = 100;
    const checker = new OrderChecker();
    const producer = await transport('restart-pub');
    try {
      await producer.ensureTopic(topic, 'envelope');
      assertPublished(await publish(producer, events(topic, keys, perKey / 2)));

      // First consumer: stops after roughly a third, while the rest is still being published.
      const first = await transport('restart-a');
      const flowA = new OrderFlow(checker, 300);
      const subA = await first.subscribe({ topic, group, kind: 'envelope', handlerTimeoutMs: 1_000 }, flowA);
      const publishing = publish(producer, events(topic, keys, perKey, perKey / 2));
      await until('a third', () => checker.processed >= (keys.length * perKey) / 3, 120_000);
      await shutdown(subA, flowA);
      await first.close(AbortSignal.timeout(10_000));
      const afterFirst = checker.processed;

      // Second consumer, same group: continues from the committed offsets.
      const second = await transport('restart-b');
      const flowB = new OrderFlow(checker, 300);
      const subB = await second.subscribe({ topic, group, kind: 'envelope', handlerTimeoutMs: 1_000 }, flowB);
      assertPublished(await publishing);
      await until('every message', () => checker.processed >= keys.length * perKey, 180_000);
      await shutdown(subB, flowB);
      await second.close(AbortSignal.timeout(10_000));

      assert.ok(afterFirst < keys.length * perKey, 'the restart happened mid-stream');
      assert.deepEqual(checker.violations, [], 'no message out of order');
      assert.equal(checker.lost(keys, perKey), 0, 'nothing lost');
      console.log(
        `# restart: ${afterFirst} before the restart, ${checker.processed} processed, ${checker.duplicates} duplicates`,
      );
    } finally {
      await producer.close(AbortSignal.timeout(10_000));
    }
  });

  it('a second member joining mid-stream: partitions are handed over after draining', async () => {
    const topic = topicName('rebalance');
    const group = unique('g');
    const keys = keysOf(60);
    const perKey = 100;
    const checker = new OrderChecker();
    const producer = await transport('rebalance-pub');
    const a = await transport('rebalance-a');
    const b = await transport('rebalance-b');
    try {
      await producer.ensureTopic(topic, 'envelope');
      assertPublished(await publish(producer, events(topic, keys, perKey)));
      const flowA = new OrderFlow(checker, 300);
      const subA = await a.subscribe({ topic, group, kind: 'envelope', handlerTimeoutMs: 1_000 }, flowA);
      await until('a quarter', () => checker.processed >= (keys.length * perKey) / 4, 120_000);
      const flowB = new OrderFlow(checker, 300);
      const subB = await b.subscribe({ topic, group, kind: 'envelope', handlerTimeoutMs: 1_000 }, flowB);
      await until('every message', () => checker.processed >= keys.length * perKey, 180_000);
      await Promise.all([shutdown(subA, flowA), shutdown(subB, flowB)]);
      assert.deepEqual(checker.violations, [], 'no message out of order across the handover');
      assert.equal(checker.lost(keys, perKey), 0, 'nothing lost');
      assert.ok(flowB.received.length > 0, 'the second member got partitions');
      console.log(`# rebalance: ${checker.processed} processed, ${checker.duplicates} duplicates`);
    } finally {
      await Promise.all([a, b, producer].map((t) => t.close(AbortSignal.timeout(10_000))));
    }
  });
});
