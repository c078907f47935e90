/**
 * OpenTelemetry spans on both sides, on the memory transport and on a real
 * nats-server: the publish runs in a PRODUCER span whose context travels in
 * the headers; the handler runs in a CONSUMER span that is its child (and
 * links to it), with the messaging attributes; a failing handler's span has
 * the status ERROR.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { createEventBus, type EventBus, type EventBusOptions } from '../../src/index.ts';
import { pollUntil } from '../../src/testing/waiters.ts';
import { type NatsServerHandle, startNatsServer } from '../harness/nats-server.ts';
import { installTestTracing, type RecordedSpan } from './tracing-kit.ts';

/** Polls (the code under test works on its own timers), through the one shared poller. */
const until = (condition: () => boolean, what: string) => pollUntil(condition, { what, intervalMs: 10 });

const event = (aggregateId: string) => ({ aggregateId, eventType: 'T', eventVersion: 1, payload: { n: 1 } });

function suite(name: 'memory' | 'nats', options: () => Omit<EventBusOptions, 'clientId'>): void {
  describe(`tracing (${name})`, () => {
    let tracing: ReturnType<typeof installTestTracing>;
    let bus: EventBus;
    before(async () => {
      tracing = installTestTracing();
      bus = await createEventBus({ ...options(), clientId: `tracing-${name}` } as EventBusOptions);
    });
    after(async () => {
      await bus?.close();
      tracing?.uninstall();
    });

    it('the consumer span is a child of the producer span, which is a child of the caller span', async () => {
      const topic = `traced-${randomUUID().slice(0, 8)}`;
      let seen: { traceparent: string | undefined; active: string | undefined } | undefined;
      await bus.subscribeEnvelope(
        topic,
        (_envelope, ctx) => {
          seen = {
            traceparent: ctx.headers.traceparent,
            active: trace.getActiveSpan()?.spanContext().spanId,
          };
        },
        { group: 'g' },
      );
      const tracer = trace.getTracer('test');
      const request = tracer.startSpan('request');
      const result = await context.with(trace.setSpan(context.active(), request), () =>
        bus.publishEnvelopeAndWait(topic, event('a-1')),
      );
      request.end();
      await until(() => seen !== undefined, 'the handler ran');
      const spans = tracing.spans.filter((s) => s.attributes['messaging.destination.name'] === topic);
      const producer = spans.find((s) => s.kind === SpanKind.PRODUCER) as RecordedSpan;
      await until(
        () => spans.some((s) => s.kind === SpanKind.CONSUMER && s.ended),
        'the consumer span ended',
      );
      const consumer = tracing.spans.find(
        (s) => s.kind === SpanKind.CONSUMER && s.attributes['messaging.destination.name'] === topic,
      ) as RecordedSpan;

      assert.ok(producer, 'a producer span');
      assert.equal(producer.name, `send ${topic}`);
      assert.ok(producer.ended, 'ended once the broker acknowledged');
      assert.equal(producer.status.code, SpanStatusCode.UNSET);
      assert.deepEqual(producer.attributes, {
        'messaging.system': name,
        'messaging.operation.type': 'send',
        'messaging.operation.name': 'send',
        'messaging.destination.name': topic,
        'messaging.message.id': result.eventId,
      });
      assert.equal(producer.parent?.spanId, request.spanContext().spanId, 'child of the caller span');
      assert.equal(producer.spanContext.traceId, request.spanContext().traceId);

      assert.equal(
        seen?.traceparent,
        `00-${producer.spanContext.traceId}-${producer.spanContext.spanId}-01`,
        'the producer span context travels in the headers',
      );
      assert.equal(consumer.name, `process ${topic}`);
      assert.equal(
        consumer.parent?.spanId,
        producer.spanContext.spanId,
        'parent: the extracted producer span',
      );
      assert.equal(consumer.parent?.isRemote, true);
      assert.equal(consumer.spanContext.traceId, producer.spanContext.traceId);
      assert.deepEqual(
        consumer.links.map((l) => l.context.spanId),
        [producer.spanContext.spanId],
      );
      assert.equal(seen?.active, consumer.spanContext.spanId, 'the handler runs inside the consumer span');
      assert.equal(consumer.status.code, SpanStatusCode.UNSET);
      assert.deepEqual(consumer.attributes, {
        'messaging.system': name,
        'messaging.operation.type': 'process',
        'messaging.operation.name': 'process',
        'messaging.destination.name': topic,
        'messaging.consumer.group.name': 'g',
        'messaging.message.delivery_count': 1,
        'messaging.message.id': result.eventId,
      });
    });

    it('a failing handler ends its consumer span with the status ERROR', async () => {
      const topic = `failing-${randomUUID().slice(0, 8)}`;
      await bus.subscribeEnvelope(
        topic,
        () => {
          throw new Error('handler broke');
        },
        { group: 'g', maxAttempts: 1 },
      );
      const { eventId } = await bus.publishEnvelopeAndWait(topic, event('a-2'));
      const failed = () =>
        tracing.spans.find(
          (s) => s.kind === SpanKind.CONSUMER && s.attributes['messaging.message.id'] === eventId && s.ended,
        );
      await until(() => failed() !== undefined, 'the failing attempt ended');
      const span = failed() as RecordedSpan;
      assert.equal(span.status.code, SpanStatusCode.ERROR);
      assert.equal(span.status.message, 'handler broke');
      assert.equal(span.attributes['error.type'], 'Error');
      assert.equal(span.exceptions.length, 1);
      // The producer of the message is its parent here too.
      const producer = tracing.spans.find(
        (s) => s.kind === SpanKind.PRODUCER && s.attributes['messaging.message.id'] === eventId,
      );
      assert.equal(span.parent?.spanId, producer?.spanContext.spanId);
    });

    it('a publish refused before sending ends its producer span with ERROR', async () => {
      const huge = { ...event('a-3'), payload: 'x'.repeat(20 * 1024 * 1024) };
      await assert.rejects(bus.publishEnvelope('too-big', huge));
      const span = tracing.spans.find((s) => s.kind === SpanKind.PRODUCER && s.name === 'send too-big');
      assert.ok(span?.ended);
      assert.equal(span?.status.code, SpanStatusCode.ERROR);
    });
  });
}

suite('memory', () => ({ transport: 'memory' }));

let server: NatsServerHandle;
before(async () => {
  server = await startNatsServer({ jetstream: true });
});
after(async () => {
  await server?.stop();
});
suite('nats', () => ({ transport: 'nats', metrics: { enabled: false }, nats: { servers: server.url } }));
