/**
 * Unknown option keys are rejected everywhere options are taken, with a typed
 * error naming the key and the valid ones: a typo never falls back to a default.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { looksPerInstance } from '../../src/bus/options.ts';
import { createEventBus, InvalidArgumentError, UnknownOptionError } from '../../src/index.ts';
import { resolveKafkaOptions } from '../../src/transports/kafka/options.ts';
import { resolveMemoryOptions } from '../../src/transports/memory/options.ts';
import { resolveNatsOptions } from '../../src/transports/nats/options.ts';

function rejects(option: string, valid: string): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof UnknownOptionError, `expected UnknownOptionError, got ${String(error)}`);
    assert.ok(error instanceof InvalidArgumentError);
    assert.equal(error.code, 'EVENTBUS_INVALID_ARGUMENT');
    assert.equal(error.option, option);
    assert.ok(error.validOptions.includes(valid), `${valid} is listed as valid`);
    assert.match(error.message, new RegExp(`\`${option.replaceAll('.', '\\.')}\``));
    assert.match(error.message, new RegExp(valid));
    return true;
  };
}

/** The options as a user might mistype them; the type system is bypassed on purpose. */
const untyped = (value: object): never => value as never;

describe('unknown option keys', () => {
  it('top level of createEventBus', async () => {
    await assert.rejects(
      createEventBus(untyped({ transport: 'memory', clientId: 'c', maxPendingPublish: 5 })),
      rejects('maxPendingPublish', 'maxPendingPublishes'),
    );
  });

  it('nats: top level, stream, consumer, group', () => {
    assert.throws(
      () => resolveNatsOptions(untyped({ server: 'nats://10.0.0.1:1' })),
      rejects('nats.server', 'servers'),
    );
    assert.throws(
      () => resolveNatsOptions(untyped({ stream: { maxAge: 60_000 } })),
      rejects('nats.stream.maxAge', 'maxBytes'),
    );
    assert.throws(
      () => resolveNatsOptions(untyped({ consumer: { ackWait: 1 } })),
      rejects('nats.consumer.ackWait', 'ackWaitMs'),
    );
    assert.throws(
      () => resolveNatsOptions(untyped({ group: { lease: 1 } })),
      rejects('nats.group.lease', 'leaseMs'),
    );
    // connectOptions belong to nats.js and pass through unchecked.
    assert.equal(resolveNatsOptions({ connectOptions: { user: 'u', pass: 'p' } }).connectOptions.user, 'u');
  });

  it('nats, through createEventBus before any connection is tried', async () => {
    await assert.rejects(
      createEventBus(untyped({ transport: 'nats', clientId: 'c', nats: { server: 'nats://10.0.0.1:1' } })),
      rejects('nats.server', 'servers'),
    );
  });

  it('kafka', () => {
    assert.throws(
      () => resolveKafkaOptions(untyped({ brokers: ['localhost:9092'], groupId: 'g' }), 'c'),
      rejects('kafka.groupId', 'autoOffsetReset'),
    );
    assert.deepEqual(resolveKafkaOptions({ brokers: ['localhost:9092'] }, 'c').brokers, ['localhost:9092']);
  });

  it('memory: top level, chaos, group', () => {
    assert.throws(
      () => resolveMemoryOptions(untyped({ partition: 4 })),
      rejects('memory.partition', 'partitions'),
    );
    assert.throws(
      () => resolveMemoryOptions(untyped({ chaos: { duplicates: 0.1 } })),
      rejects('memory.chaos.duplicates', 'duplicateRate'),
    );
    assert.throws(
      () => resolveMemoryOptions(untyped({ group: { leaseMS: 100 } })),
      rejects('memory.group.leaseMS', 'leaseMs'),
    );
  });

  it('subscribe options and their backoff', async () => {
    const bus = await createEventBus({ transport: 'memory', clientId: 'keys' });
    try {
      await assert.rejects(
        bus.subscribeEnvelope('orders', async () => {}, untyped({ maxRetries: 3 })),
        rejects('maxRetries', 'maxAttempts'),
      );
      await assert.rejects(
        bus.subscribe('orders', async () => {}, untyped({ backoff: { initial: 10 } })),
        rejects('backoff.initial', 'initialMs'),
      );
      // A valid subscription still works on the same bus.
      const sub = await bus.subscribeEnvelope('orders', async () => {}, {
        maxAttempts: 3,
        backoff: { initialMs: 10 },
      });
      await sub.close();
    } finally {
      await bus.close();
    }
  });
});

describe('per-instance clientId', () => {
  it('is recognised in its common forms, and stable service names are not', () => {
    for (const id of [
      'orders-0b3f5a9e-1c2d-4e5f-8a9b-0c1d2e3f4a5b',
      'billing-3f2a9c1d7e6b',
      'orders-7d9f8c6b5-x2kqp',
      'worker-48213',
    ]) {
      assert.equal(looksPerInstance(id), true, id);
    }
    for (const id of ['orders', 'billing-service', 'order-query', 'projection_v2', 'svc-2024x']) {
      assert.equal(looksPerInstance(id), false, id);
    }
  });

  it('is logged once when the bus is created', async () => {
    const warnings: string[] = [];
    const noop = () => {};
    const logger = {
      debug: noop,
      info: noop,
      error: noop,
      warn: (_: unknown, msg?: string) => warnings.push(msg ?? ''),
    };
    const bus = await createEventBus({ transport: 'memory', clientId: 'orders-7d9f8c6b5-x2kqp', logger });
    await bus.close();
    assert.equal(warnings.filter((w) => w.includes('default consumer group')).length, 1);
  });
});
