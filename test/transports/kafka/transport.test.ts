/** Topic preparation and the transport wiring, against fake clients (no broker). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import type { ProduceResult } from '@platformatic/kafka';
import { silentLogger } from '../../../src/core/logger.ts';
import type { FlowControl, PublishOutcome } from '../../../src/core/transport.ts';
import { resolveKafkaOptions } from '../../../src/transports/kafka/options.ts';
import type { ProduceRecord } from '../../../src/transports/kafka/publisher.ts';
import type {
  ConsumerClient,
  ConsumerHooks,
  RecordStream,
} from '../../../src/transports/kafka/subscription.ts';
import { type AdminClient, TopicManager } from '../../../src/transports/kafka/topics.ts';
import { KafkaTransport } from '../../../src/transports/kafka/transport.ts';

const refusal = (apiId: string): Error =>
  Object.assign(new AggregateError([Object.assign(new Error(apiId), { apiId })], 'Creating topics failed.'), {
    code: 'PLT_KFK_MULTIPLE',
  });

class FakeAdmin implements AdminClient {
  readonly created: Array<[string, number, number]> = [];
  readonly existing = new Set<string>();
  /** Topics the listing does not show yet (created by someone else meanwhile). */
  readonly unlisted = new Set<string>();
  createCalls = 0;
  failWith: Error | undefined;
  closed = false;
  async createTopic(topic: string, partitions: number, replicas: number): Promise<void> {
    this.createCalls++;
    await tick();
    if (this.failWith !== undefined) throw this.failWith;
    if (this.existing.has(topic)) throw refusal('TOPIC_ALREADY_EXISTS');
    this.created.push([topic, partitions, replicas]);
    this.existing.add(topic);
  }
  async listTopics(): Promise<string[]> {
    return [...this.existing].filter((t) => !this.unlisted.has(t));
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

describe('TopicManager', () => {
  const settings = { partitions: 6, replicationFactor: 3 };

  it('creates a missing topic once, with the configured partitions and replication; concurrent calls share it', async () => {
    const admin = new FakeAdmin();
    const topics = new TopicManager(admin, settings, silentLogger);
    await Promise.all([topics.ensure('orders'), topics.ensure('orders'), topics.ensure('orders')]);
    assert.deepEqual(admin.created, [['orders', 6, 3]]);
    assert.equal(topics.ensure('orders'), undefined, 'known topics cost nothing');
  });

  it('an existing topic is found in the topic list: no CreateTopics request', async () => {
    const admin = new FakeAdmin();
    admin.existing.add('orders');
    await new TopicManager(admin, settings, silentLogger).ensure('orders');
    assert.equal(admin.createCalls, 0);
  });

  it('treats "already exists" as success (created by someone else after the listing)', async () => {
    const admin = new FakeAdmin();
    admin.existing.add('orders');
    admin.unlisted.add('orders');
    await new TopicManager(admin, settings, silentLogger).ensure('orders');
    assert.equal(admin.createCalls, 1);
    assert.deepEqual(admin.created, []);
  });

  it('a refusal is a clear TransportError, and is retried on the next call', async () => {
    const admin = new FakeAdmin();
    admin.failWith = refusal('INVALID_REPLICATION_FACTOR');
    const topics = new TopicManager(admin, settings, silentLogger);
    await assert.rejects(
      topics.ensure('orders') as Promise<void>,
      (error: Error & { code?: string; retryable?: boolean }) => {
        assert.equal(error.code, 'EVENTBUS_TRANSPORT');
        assert.equal(error.retryable, false);
        assert.match(
          error.message,
          /^Expected Kafka to create topic "orders" with 6 partitions and replication factor 3, the broker refused: INVALID_REPLICATION_FACTOR/,
        );
        return true;
      },
    );
    admin.failWith = undefined;
    await topics.ensure('orders');
    assert.deepEqual(admin.created, [['orders', 6, 3]]);
  });

  it('accepts a topic it may not create when it exists (write-only ACLs)', async () => {
    const admin = new FakeAdmin();
    admin.failWith = refusal('TOPIC_AUTHORIZATION_FAILED');
    admin.existing.add('orders');
    await new TopicManager(admin, settings, silentLogger).ensure('orders');
  });
});

describe('KafkaTransport wiring', () => {
  function fakes() {
    const admin = new FakeAdmin();
    const sent: ProduceRecord[][] = [];
    const producer = {
      closed: false,
      send(records: ProduceRecord[], callback: (error: Error | null, result?: ProduceResult) => void) {
        sent.push(records);
        setImmediate(() =>
          callback(null, { offsets: [{ topic: records[0]?.topic ?? '', partition: 0, offset: 10n }] }),
        );
      },
      partitionCount: () => 1,
      isConnected: () => true,
      async close() {
        this.closed = true;
      },
    };
    const consumers: Array<{ topic: string; group: string; closed: boolean }> = [];
    const consumer = (topic: string, group: string, hooks: ConsumerHooks): ConsumerClient => {
      const entry = { topic, group, closed: false };
      consumers.push(entry);
      const stream: RecordStream = {
        onRecord() {},
        onError() {},
        onClose() {},
        pause() {},
        resume() {},
        rewind() {},
        async close() {},
      };
      return {
        generationId: 1,
        assignments: [{ topic, partitions: [0] }],
        async consume() {
          await hooks.beforeJoin();
          hooks.onJoin(1, [{ topic, partitions: [0] }]);
          return stream;
        },
        async commit() {},
        async fetchesSettled() {},
        async rejoin() {},
        isActive: () => true,
        isConnected: () => !entry.closed,
        async close() {
          entry.closed = true;
        },
      };
    };
    const options = resolveKafkaOptions({ brokers: ['localhost:9092'], partitions: 4 }, 'svc');
    const transport = new KafkaTransport(
      options,
      { clientId: 'svc', logger: silentLogger },
      { producer, admin, consumer },
      'lz4',
    );
    return { transport, admin, producer, sent, consumers };
  }

  const flow: FlowControl = {
    freeCapacity: () => 10,
    waitForCapacity: async () => {},
    deliver: () => {},
    reportError: () => {},
  };

  it('declares its features and payload limit', () => {
    const { transport } = fakes();
    assert.equal(transport.kind, 'kafka');
    assert.deepEqual(transport.features, {
      persistent: true,
      consumerGroups: true,
      newSubscriberReceivesOldMessages: true,
      brokerDeduplication: false,
      nakRedelivers: false,
      nakDelay: false,
    });
    assert.equal(transport.maxPayloadBytes, 1024 * 1024);
  });

  it('creates the topic before the first produce and reports the offset', async () => {
    const { transport, admin, sent } = fakes();
    const outcome = await new Promise<PublishOutcome>((resolve) =>
      transport.send(
        { topic: 'orders', kind: 'envelope', data: Buffer.from('{}'), headers: {}, msgId: 'e1', key: 'a' },
        resolve,
      ),
    );
    assert.deepEqual(admin.created, [['orders', 4, 1]]);
    assert.equal(sent.length, 1);
    assert.deepEqual(outcome, { ok: true, offset: '10' });
  });

  it('subscribes one group member per subscription (topic ensured first) and closes everything', async () => {
    const { transport, admin, producer, consumers } = fakes();
    const sub = await transport.subscribe(
      { topic: 'payments', group: 'billing', kind: 'envelope', handlerTimeoutMs: 1_000 },
      flow,
    );
    assert.deepEqual(admin.created, [['payments', 4, 1]]);
    assert.deepEqual(
      consumers.map((c) => [c.topic, c.group]),
      [['payments', 'billing']],
    );
    const health = transport.health();
    assert.equal(health.connected, true);
    await sub.stop();
    await sub.close();
    assert.equal(consumers[0]?.closed, true);
    await transport.subscribe(
      { topic: 'payments', group: 'other', kind: 'raw', handlerTimeoutMs: 1_000 },
      flow,
    );
    await transport.close(AbortSignal.timeout(1_000));
    assert.equal(consumers[1]?.closed, true, 'leftover subscriptions are closed with the transport');
    assert.equal(producer.closed, true);
    assert.equal(admin.closed, true);
    assert.equal(transport.health().connected, false);
  });
});
