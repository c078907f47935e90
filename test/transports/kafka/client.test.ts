/**
 * The client objects are built with `strict: true`, so `@platformatic/kafka`
 * validates every option we pass at construction (without it a misspelt or
 * mistyped option is silently ignored). Construction needs no broker.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createAdmin, createConsumer, createProducer } from '../../../src/transports/kafka/client.ts';
import { resolveKafkaOptions } from '../../../src/transports/kafka/options.ts';

const hooks = { beforeJoin: async () => {}, onJoin: () => {}, onError: () => {} };

describe('kafka client construction (strict option validation)', () => {
  const variants = {
    defaults: resolveKafkaOptions({ brokers: ['127.0.0.1:1'] }, 'bus'),
    tuned: resolveKafkaOptions(
      {
        brokers: '127.0.0.1:1,127.0.0.1:2',
        clientId: 'svc',
        lingerMs: 5,
        maxInFlight: 5,
        retries: 0,
        sessionTimeoutMs: 10_000,
        heartbeatIntervalMs: 1_000,
        fetchMaxWaitMs: 100,
      },
      'bus',
    ),
  };
  for (const [name, options] of Object.entries(variants)) {
    it(`producer, admin and consumer accept every option we pass (${name})`, async () => {
      const producer = createProducer(options, 'lz4');
      const admin = createAdmin(options);
      const consumer = createConsumer(options, 'orders', 'g', hooks);
      await Promise.all([producer.close(), admin.close(), consumer.close()]);
    });
  }

  it('a bad option reaches the client and is refused there (strict is on)', () => {
    const options = resolveKafkaOptions({ brokers: ['127.0.0.1:1'] }, 'bus');
    assert.throws(
      () => createProducer({ ...options, requestTimeoutMs: -5 }, 'lz4'),
      /requestTimeout|timeout|>=|positive/i,
    );
  });
});
