/**
 * Unknown option keys are rejected everywhere options are taken, with a typed
 * error naming the key and the valid ones: a typo never falls back to a default.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
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
