/**
 * Schemas and middleware on a real nats-server (spawned by test/harness):
 * the publish side refuses invalid payloads before anything reaches the
 * stream; the consume side dead-letters invalid events (one attempt, the
 * schema's message as reason) while a middleware that fails first attempts
 * is retried in place, and the valid events pass the order checker.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
  createEventBus,
  type EventBus,
  type EventBusOptions,
  type Middleware,
  SchemaValidationError,
} from '../../../src/index.ts';
import { createOrderChecker, formatReport } from '../../../src/testing/checker.ts';
import { until } from '../../../src/testing/index.ts';
import { objectSchema } from '../../bus/schema-kit.ts';
import { type NatsServerHandle, startNatsServer } from '../../harness/nats-server.ts';

const AGGREGATES = 10;
const PER_AGGREGATE = 20;

describe('schemas and middleware on NATS', () => {
  let server: NatsServerHandle;
  const buses: Array<Pick<EventBus, 'close'>> = [];

  before(async () => {
    server = await startNatsServer({ jetstream: true });
  });
  after(async () => {
    for (const bus of buses) await bus.close({ timeoutMs: 5_000 });
    await server?.stop();
  });

  const options = (clientId: string): EventBusOptions => ({
    transport: 'nats',
    clientId,
    metrics: { enabled: false },
    nats: { servers: server.url },
  });
  const topics = { orders: { OrderPlaced: objectSchema({ index: 'number' }, { async: true }) } };

  it('refuses an invalid payload at publish: nothing reaches the stream', async () => {
    const topic = `schema-pub-${randomUUID().slice(0, 6)}`;
    const bus = await createEventBus({
      ...options('schema-publisher'),
      // A computed topic name types nothing: the bus is the untyped EventBus, validated all the same.
      topics: { [topic]: { OrderPlaced: objectSchema({ index: 'number' }) } },
    });
    buses.push(bus);
    const input = { aggregateId: 'o1', eventType: 'OrderPlaced', eventVersion: 1 } as const;
    await assert.rejects(
      bus.publishEnvelopeAndWait(topic, { ...input, payload: { index: 'zero' } }),
      (e: unknown) => e instanceof SchemaValidationError && /index: Expected number/.test(e.message),
    );
    const stored = await bus.publishEnvelopeAndWait(topic, { ...input, payload: { index: 0 } });
    assert.equal(stored.sequence, 1, 'the valid event is the first message of the stream');
  });

  it('dead-letters invalid events with the schema’s message; middleware retries; valid events in order', async () => {
    const producer = await createEventBus(options('schema-producer')); // no schemas: can send anything
    buses.push(producer);
    const checker = createOrderChecker();
    const badIds = new Set<string>();
    const dead: Array<{ eventId: string; reason: string; attempts: string }> = [];
    const done = until(
      () =>
        checker.expectedCount() === AGGREGATES * PER_AGGREGATE - badIds.size &&
        checker.outstanding() === 0 &&
        dead.length === badIds.size,
      () => `${checker.outstanding()} outstanding, ${dead.length}/${badIds.size} dead letters`,
    );
    const retried = new Set<string>();
    // Fails the first attempt of every fourth event: a middleware failure is retried in place.
    const flaky: Middleware = (next) => async (envelope, ctx) => {
      const index = (envelope.payload as { index: unknown }).index;
      if (typeof index === 'number' && index % 4 === 1 && ctx.attempt === 1) {
        retried.add(envelope.eventId);
        throw new Error('flaky middleware');
      }
      await next(envelope, ctx);
    };
    const consumer = await createEventBus({ ...options('schema-consumer'), topics, middleware: [flaky] });
    buses.push(consumer);
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
    let badHandled = 0;
    await consumer.subscribeEnvelope(
      'orders',
      (e) => {
        if (badIds.has(e.eventId)) badHandled++;
        checker.observe(e.eventId, e.aggregateId, e.payload.index);
        done.check();
      },
      { group: 'billing', backoff: { initialMs: 1, maxMs: 10 } },
    );
    for (let index = 0; index < PER_AGGREGATE; index++) {
      for (let a = 0; a < AGGREGATES; a++) {
        const eventId = randomUUID();
        const aggregateId = `order-${a}`;
        const bad = (index + a) % 9 === 4;
        if (bad) badIds.add(eventId);
        else checker.expect(eventId, aggregateId, index);
        const result = await producer.publishEnvelopeAndWait('orders', {
          eventId,
          aggregateId,
          eventType: 'OrderPlaced',
          eventVersion: index + 1,
          payload: bad ? { index: `#${index}` } : { index },
        });
        if (!bad) checker.acknowledged(result.eventId);
      }
    }
    await done.wait(60_000);
    const report = checker.report();
    assert.equal(report.lost, 0, formatReport(report));
    assert.equal(report.outOfOrder, 0, formatReport(report));
    assert.equal(report.unexpected, 0, formatReport(report));
    assert.equal(badHandled, 0, 'no invalid payload reached the handler');
    assert.deepEqual(new Set(dead.map((d) => d.eventId)), badIds);
    for (const { reason, attempts } of dead) {
      assert.equal(attempts, '1');
      assert.match(
        reason,
        /Expected the payload of OrderPlaced on orders to match its schema \(test-kit\): index: Expected number, received string/,
      );
    }
    assert.ok(retried.size > 0, 'the flaky middleware failed some first attempts');
  });
});
