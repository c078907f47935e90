/** Kafka transport options: validated once, defaults in one place, clear messages (no broker). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../../../src/core/errors.ts';
import { silentLogger } from '../../../src/core/logger.ts';
import { createKafkaTransport } from '../../../src/transports/kafka/index.ts';
import { kafkaDefaults, resolveKafkaOptions } from '../../../src/transports/kafka/options.ts';

const invalid = (pattern: RegExp) => (error: unknown) => {
  assert.ok(error instanceof InvalidArgumentError, `expected InvalidArgumentError, got ${String(error)}`);
  assert.equal(error.code, 'EVENTBUS_INVALID_ARGUMENT');
  assert.match(error.message, pattern);
  return true;
};

describe('resolveKafkaOptions', () => {
  it('fills every default', () => {
    const o = resolveKafkaOptions({ brokers: ['localhost:9092'] }, 'orders-service');
    assert.deepEqual(o, {
      brokers: ['localhost:9092'],
      clientId: 'orders-service',
      tls: undefined,
      sasl: undefined,
      ...kafkaDefaults,
    });
    assert.equal(o.partitions, 6);
    assert.equal(o.replicationFactor, 1);
    assert.equal(o.compression, 'lz4');
    assert.equal(o.closeTimeoutMs, 30_000);
    assert.equal(o.maxPayloadBytes, 1024 * 1024);
    assert.equal(o.autoOffsetReset, 'earliest');
  });

  it('accepts a comma-separated broker string and overrides', () => {
    const o = resolveKafkaOptions(
      { brokers: 'a:9092, b:9093', clientId: 'x', partitions: 12, compression: 'none', maxInFlight: 5 },
      'bus',
    );
    assert.deepEqual(o.brokers, ['a:9092', 'b:9093']);
    assert.equal(o.clientId, 'x');
    assert.equal(o.partitions, 12);
    assert.equal(o.compression, 'none');
    assert.equal(o.maxInFlight, 5);
  });

  it('requires brokers', () => {
    assert.throws(
      () => resolveKafkaOptions(undefined, 'bus'),
      invalid(/Expected `kafka` to be an options object with `brokers`/),
    );
    assert.throws(
      () => resolveKafkaOptions({} as never, 'bus'),
      invalid(/^Expected `kafka.brokers` to be a non-empty list of host:port strings.*got undefined$/),
    );
    assert.throws(
      () => resolveKafkaOptions({ brokers: [] }, 'bus'),
      invalid(/`kafka.brokers`.*got an array of 0/),
    );
    assert.throws(() => resolveKafkaOptions({ brokers: '' }, 'bus'), invalid(/`kafka.brokers`/));
    assert.throws(
      () => resolveKafkaOptions({ brokers: ['localhost'] }, 'bus'),
      invalid(/host:port.*got "localhost"/),
    );
    assert.throws(
      () => resolveKafkaOptions({ brokers: ['h:99999'] }, 'bus'),
      invalid(/port in \[1, 65535\]/),
    );
  });

  it('names the bad option and the value', () => {
    const b = { brokers: ['localhost:9092'] };
    assert.throws(
      () => resolveKafkaOptions({ ...b, partitions: 0 }, 'bus'),
      invalid(/^Expected `kafka.partitions` to be a positive integer, got number 0$/),
    );
    assert.throws(
      () => resolveKafkaOptions({ ...b, replicationFactor: 1.5 }, 'bus'),
      invalid(/`kafka.replicationFactor`.*got number 1.5/),
    );
    assert.throws(
      () => resolveKafkaOptions({ ...b, compression: 'brotli' as never }, 'bus'),
      invalid(
        /^Expected `kafka.compression` to be one of 'lz4', 'none', 'gzip', 'snappy', 'zstd', got "brotli"$/,
      ),
    );
    assert.throws(
      () => resolveKafkaOptions({ ...b, maxInFlight: 6 }, 'bus'),
      invalid(/^Expected `kafka.maxInFlight` to be an integer in \[1, 5\], got number 6$/),
    );
    assert.throws(() => resolveKafkaOptions({ ...b, lingerMs: -1 }, 'bus'), invalid(/`kafka.lingerMs`/));
    assert.throws(
      () => resolveKafkaOptions({ ...b, maxPayloadBytes: '1MB' as never }, 'bus'),
      invalid(/`kafka.maxPayloadBytes`.*got "1MB"/),
    );
    assert.throws(
      () => resolveKafkaOptions({ ...b, autoOffsetReset: 'none' as never }, 'bus'),
      invalid(/`kafka.autoOffsetReset` to be one of 'earliest', 'latest'/),
    );
    assert.throws(
      () => resolveKafkaOptions({ ...b, clientId: 'has space' }, 'bus'),
      invalid(/`kafka.clientId`/),
    );
  });

  it('keeps the rebalance drain below the session and rebalance timeouts', () => {
    const b = { brokers: ['localhost:9092'] };
    assert.throws(
      () => resolveKafkaOptions({ ...b, sessionTimeoutMs: 10_000, revokeTimeoutMs: 10_000 }, 'bus'),
      invalid(/`kafka.revokeTimeoutMs` to be below sessionTimeoutMs \(10000\)/),
    );
    assert.throws(
      () => resolveKafkaOptions({ ...b, heartbeatIntervalMs: 50_000 }, 'bus'),
      invalid(/`kafka.heartbeatIntervalMs` to be below sessionTimeoutMs/),
    );
    assert.throws(
      () => resolveKafkaOptions({ ...b, sessionTimeoutMs: 120_000, rebalanceTimeoutMs: 120_000 }, 'bus'),
      invalid(/`kafka.revokeTimeoutMs` to be below requestTimeoutMs \(30000\), got number 60000/),
    );
    // The default drain shrinks with a short session.
    assert.equal(resolveKafkaOptions({ ...b, sessionTimeoutMs: 10_000 }, 'bus').revokeTimeoutMs, 5_000);
  });

  it('createKafkaTransport validates before connecting', async () => {
    await assert.rejects(
      createKafkaTransport(undefined, { clientId: 'bus', logger: silentLogger }),
      invalid(/`kafka`/),
    );
    await assert.rejects(
      createKafkaTransport(
        { brokers: ['localhost:9092'], partitions: -1 },
        { clientId: 'bus', logger: silentLogger },
      ),
      invalid(/`kafka.partitions`/),
    );
  });
});
