/**
 * Standard Schema validation on the memory transport, with hand-made schemas
 * (schema-kit.ts): invalid at publish → SchemaValidationError and nothing
 * sent; invalid at consume → dead letter with the schema's message, the
 * aggregate's other events judged by the order checker.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  createEventBus,
  createMemoryBroker,
  type EventBus,
  InvalidArgumentError,
  type MemoryBroker,
  type PublishResult,
  SchemaValidationError,
  type StandardSchemaV1,
} from '../../src/index.ts';
import { createOrderChecker, formatReport } from '../../src/testing/checker.ts';
import { until } from '../../src/testing/index.ts';
import { objectSchema } from './schema-kit.ts';

const base = { transport: 'memory', metrics: { enabled: false } } as const;
const orderSchemas = { orders: { OrderPlaced: objectSchema({ index: 'number', customer: 'string' }) } };

function isSchemaError(check: (e: SchemaValidationError) => boolean) {
  return (e: unknown) =>
    e instanceof SchemaValidationError &&
    e.code === 'EVENTBUS_SCHEMA_VALIDATION' &&
    e.retryable === false &&
    check(e);
}

describe('schema validation at publish', () => {
  for (const async of [false, true]) {
    it(`rejects an invalid payload with SchemaValidationError and sends nothing (${async ? 'async' : 'sync'} schema)`, async () => {
      const results: PublishResult[] = [];
      const bus = await createEventBus({
        ...base,
        clientId: 'schema-publish',
        memory: { broker: createMemoryBroker() },
        onPublishResult: (r) => results.push(r),
        topics: { orders: { OrderPlaced: objectSchema({ index: 'number', customer: 'string' }, { async }) } },
      });
      await assert.rejects(
        bus.publishEnvelope('orders', {
          aggregateId: 'o1',
          eventType: 'OrderPlaced',
          eventVersion: 1,
          payload: { index: 'one', customer: 7 } as never,
        }),
        isSchemaError(
          (e) =>
            e.topic === 'orders' &&
            e.eventType === 'OrderPlaced' &&
            e.issues.length === 2 &&
            /index: Expected number, received string; customer: Expected string, received number/.test(
              e.message,
            ) &&
            /\(test-kit\)/.test(e.message),
        ),
      );
      await assert.rejects(
        bus.publishEnvelope('orders', {
          aggregateId: 'o1',
          eventType: 'OrderCancelled' as 'OrderPlaced',
          eventVersion: 1,
          payload: { index: 1, customer: 'c' },
        }),
        isSchemaError((e) =>
          /no schema for event type "OrderCancelled" \(known: OrderPlaced\)/.test(e.message),
        ),
      );
      await assert.rejects(
        bus.publishEnvelope('orders', {
          aggregateId: 'o1',
          eventType: 'OrderPlaced',
          eventVersion: 1,
          payload: new TextEncoder().encode('{"index":1}') as never,
        }),
        isSchemaError((e) => /customer: Expected string, received undefined/.test(e.message)),
        'bytes holding JSON are validated as that JSON',
      );
      await bus.flush();
      assert.deepEqual(results, [], 'nothing was sent');
      const ok = await bus.publishEnvelopeAndWait('orders', {
        aggregateId: 'o1',
        eventType: 'OrderPlaced',
        eventVersion: 1,
        payload: { index: 1, customer: 'c' },
      });
      assert.equal(ok.success, true);
      // A topic without schemas is not checked.
      const untyped = bus.untyped;
      await untyped.publishEnvelopeAndWait('other', {
        aggregateId: 'x',
        eventType: 'Any',
        eventVersion: 0,
        payload: 1,
      });
      await bus.close();
    });
  }

  it('a schema that throws or answers nonsense is a SchemaValidationError, never a crash', async () => {
    const throwing: StandardSchemaV1 = {
      '~standard': {
        version: 1,
        vendor: 'broken',
        validate() {
          throw new TypeError('boom');
        },
      },
    };
    const nonsense = {
      '~standard': { version: 1, vendor: 'odd', validate: () => null },
    } as unknown as StandardSchemaV1;
    const bus = await createEventBus({
      ...base,
      clientId: 'schema-broken',
      memory: { broker: createMemoryBroker() },
      topics: { t: { Throws: throwing, Nonsense: nonsense } },
    });
    const input = { aggregateId: 'a', eventVersion: 1, payload: {} };
    await assert.rejects(
      bus.publishEnvelope('t', { ...input, eventType: 'Throws' }),
      isSchemaError(
        (e) => /the schema threw: TypeError: boom/.test(e.message) && e.cause instanceof TypeError,
      ),
    );
    await assert.rejects(
      bus.publishEnvelope('t', { ...input, eventType: 'Nonsense' }),
      isSchemaError((e) => /the schema returned null/.test(e.message)),
    );
    await bus.close();
  });

  it('rejects a `topics` option that is not schemas, naming where', async () => {
    await assert.rejects(
      createEventBus({
        ...base,
        clientId: 'bad',
        topics: { orders: { OrderPlaced: { parse() {} } as never } },
      }),
      (e: unknown) => e instanceof InvalidArgumentError && /`topics\.orders\.OrderPlaced`/.test(e.message),
    );
    await assert.rejects(
      createEventBus({ ...base, clientId: 'bad', topics: [] as never }),
      (e: unknown) => e instanceof InvalidArgumentError && /`topics`/.test(e.message),
    );
  });
});

describe('schema validation at consume', () => {
  it('dead-letters an invalid event with the schema’s message; the aggregate’s other events keep flowing', async () => {
    const broker: MemoryBroker = createMemoryBroker();
    // The producer has no schemas (an older service, another language): it can send anything.
    const producer: EventBus = await createEventBus({ ...base, clientId: 'producer', memory: { broker } });
    const consumer = await createEventBus({
      ...base,
      clientId: 'consumer',
      memory: { broker },
      topics: orderSchemas,
    });
    try {
      const checker = createOrderChecker();
      const dead: Array<{ eventId: string; reason: string; attempts: string }> = [];
      const handled: string[] = [];
      const AGGREGATES = 5;
      const PER_AGGREGATE = 20;
      const badIds = new Set<string>();
      const done = until(
        () => checker.outstanding() === 0 && dead.length === badIds.size,
        () => `${checker.outstanding()} outstanding, ${dead.length}/${badIds.size} dead letters`,
      );
      await consumer.untyped.subscribeEnvelope(
        'orders.DLQ',
        (e, ctx) => {
          dead.push({
            eventId: e.eventId,
            reason: ctx.headers['X-DLQ-Reason'] ?? '',
            attempts: ctx.headers['X-DLQ-Attempts'] ?? '',
          });
          done.check();
        },
        { group: 'dlq-watch' },
      );
      let handlerRunsOfBad = 0;
      await consumer.subscribeEnvelope(
        'orders',
        (e) => {
          if (badIds.has(e.eventId)) handlerRunsOfBad++;
          handled.push(e.eventId);
          checker.observe(e.eventId, e.aggregateId, e.payload.index);
          done.check();
        },
        { group: 'billing', maxAttempts: 3 },
      );
      for (let i = 0; i < PER_AGGREGATE; i++) {
        for (let a = 0; a < AGGREGATES; a++) {
          const eventId = randomUUID();
          const aggregateId = `order-${a}`;
          const bad = i % 7 === 3;
          if (bad) badIds.add(eventId);
          else checker.expect(eventId, aggregateId, i);
          await producer.publishEnvelope('orders', {
            eventId,
            aggregateId,
            eventType: 'OrderPlaced',
            eventVersion: i + 1,
            payload: bad ? { index: String(i), customer: 'c' } : { index: i, customer: 'c' },
          });
          if (!bad) checker.acknowledged(eventId);
        }
      }
      await done.wait(20_000);
      const report = checker.report();
      assert.equal(report.lost, 0, formatReport(report));
      assert.equal(report.outOfOrder, 0, formatReport(report));
      assert.equal(report.unexpected, 0, formatReport(report));
      assert.deepEqual(new Set(dead.map((d) => d.eventId)), badIds);
      for (const { reason, attempts } of dead) {
        assert.equal(attempts, '1', 'not retried: the same payload fails the same schema');
        assert.match(
          reason,
          /Expected the payload of OrderPlaced on orders to match its schema \(test-kit\)/,
        );
        assert.match(reason, /index: Expected number, received string/);
      }
      assert.equal(handlerRunsOfBad, 0, 'the handler never saw an invalid payload');
    } finally {
      await producer.close();
      await consumer.close();
    }
  });
});
