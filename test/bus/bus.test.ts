import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import {
  BusClosedError,
  createEventBus,
  createMemoryBroker,
  type EventBus,
  InvalidArgumentError,
  PayloadTooLargeError,
  type PublishResult,
  ValidationError,
} from '../../src/index.ts';
import { deferred, until } from '../../src/testing/index.ts';

const memoryBus = (extra: Record<string, unknown> = {}): Promise<EventBus> =>
  createEventBus({
    transport: 'memory',
    clientId: 'unit',
    memory: { broker: createMemoryBroker() },
    metrics: { enabled: false },
    ...extra,
  });

describe('bus options', () => {
  it('are validated once, with messages that say what was expected', async () => {
    await assert.rejects(
      createEventBus({ transport: 'carrier-pigeon' as never, clientId: 'x' }),
      InvalidArgumentError,
    );
    await assert.rejects(
      createEventBus({ transport: 'memory', clientId: 'has spaces' }),
      /Expected `clientId` to be 1-64 characters/,
    );
    await assert.rejects(
      createEventBus({ transport: 'memory', clientId: 'x', maxPendingPublishes: 0 }),
      /Expected `maxPendingPublishes` to be a positive integer, got 0/,
    );
  });
});

describe('publishing', () => {
  it('rejects invalid envelopes, topics and oversize payloads with typed errors, before sending', async () => {
    const results: PublishResult[] = [];
    const bus = await memoryBus({
      onPublishResult: (r: PublishResult) => results.push(r),
      memory: { maxPayloadBytes: 1024 },
    });
    await assert.rejects(
      bus.publishEnvelope('t', { aggregateId: '', eventType: 'T', eventVersion: 0, payload: 1 }),
      (e: unknown) => e instanceof ValidationError && e.field === 'aggregateId',
    );
    await assert.rejects(
      bus.publishEnvelope('bad topic', { aggregateId: 'a', eventType: 'T', eventVersion: 0, payload: 1 }),
      InvalidArgumentError,
    );
    await assert.rejects(
      bus.publishEnvelope('t.*', { aggregateId: 'a', eventType: 'T', eventVersion: 0, payload: 1 }),
      InvalidArgumentError,
    );
    await assert.rejects(
      bus.publishEnvelope('t', {
        aggregateId: 'a',
        eventType: 'T',
        eventVersion: 0,
        payload: 'x'.repeat(2000),
      }),
      (e: unknown) =>
        e instanceof PayloadTooLargeError && e.limit === 1024 && e.code === 'EVENTBUS_PAYLOAD_TOO_LARGE',
    );
    await bus.flush();
    assert.equal(results.length, 0, 'nothing was sent');
    await bus.close();
  });

  it('yields exactly one result per accepted publish, on the callback and on every stream', async () => {
    const callback: PublishResult[] = [];
    const bus = await memoryBus({ onPublishResult: (r: PublishResult) => callback.push(r) });
    const stream = bus.publishResults();
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) {
      ids.push(
        (
          await bus.publishEnvelope('results', {
            aggregateId: `a${i % 3}`,
            eventType: 'T',
            eventVersion: i,
            payload: i,
          })
        ).eventId,
      );
    }
    await bus.flush();
    await bus.close();
    const streamed: PublishResult[] = [];
    for await (const r of stream) streamed.push(r);
    assert.deepEqual(
      callback.map((r) => r.eventId),
      ids,
    );
    assert.deepEqual(
      streamed.map((r) => r.eventId),
      ids,
    );
    assert.ok(callback.every((r) => r.success && r.topic === 'results' && typeof r.sequence === 'number'));
    assert.equal(callback[4]?.aggregateId, 'a1');
    assert.equal(callback[4]?.eventType, 'T');
  });

  it('reports a re-published eventId as a duplicate, stored once', async () => {
    const results: PublishResult[] = [];
    const broker = createMemoryBroker();
    const bus = await memoryBus({
      onPublishResult: (r: PublishResult) => results.push(r),
      memory: { broker },
    });
    const env = { eventId: 'fixed-id-1', aggregateId: 'a', eventType: 'T', eventVersion: 0, payload: 1 };
    await bus.publishEnvelope('dup', env);
    await bus.publishEnvelope('dup', env);
    await bus.flush();
    assert.equal(results[0]?.duplicate, undefined);
    assert.equal(results[1]?.duplicate, true);
    assert.equal(results[1]?.sequence, results[0]?.sequence);
    assert.equal(broker.messages('dup').length, 1);
    await bus.close();
  });

  it('publish waits when the window is full, and a slow result reader holds the window', async () => {
    const bus = await memoryBus({ maxPendingPublishes: 4 });
    const stream = bus.publishResults();
    const accepted: number[] = [];
    // Nobody reads the stream: its unread backlog counts against the window of 4.
    const stalled = until(
      () => accepted.length === 4,
      () => `${accepted.length} accepted`,
    );
    const publishing = (async () => {
      for (let i = 0; i < 10; i++) {
        await bus.publishEnvelope('window', {
          aggregateId: 'a',
          eventType: 'T',
          eventVersion: i,
          payload: i,
        });
        accepted.push(i);
        stalled.check();
      }
    })();
    await stalled.wait(2000);
    await new Promise((r) => setImmediate(r));
    assert.equal(accepted.length, 4, 'publishing stopped at the window size');
    let read = 0;
    for await (const _ of stream) {
      read++;
      if (read === 10) break;
    }
    await publishing;
    assert.equal(accepted.length, 10);
    await bus.close();
  });
});

describe('lifecycle', () => {
  it('close is idempotent, shares one promise, resolves `closed`, and refuses new work', async () => {
    const bus = await memoryBus();
    const a = bus.close();
    const b = bus.close();
    assert.equal(a, b);
    await a;
    await bus.closed;
    await assert.rejects(
      bus.publishEnvelope('t', { aggregateId: 'a', eventType: 'T', eventVersion: 0, payload: 1 }),
      BusClosedError,
    );
    await assert.rejects(
      bus.subscribeEnvelope('t', () => {}),
      BusClosedError,
    );
    assert.equal(bus.health().status, 'closed');
  });

  it('Symbol.asyncDispose closes the bus', async () => {
    const bus = await memoryBus();
    await bus[Symbol.asyncDispose]();
    await bus.closed;
    assert.equal(bus.health().status, 'closed');
  });

  it('close waits for running handlers to finish before acking them', async () => {
    const broker = createMemoryBroker();
    const bus = await memoryBus({ memory: { broker } });
    const entered = deferred();
    const release = deferred();
    let finished = false;
    await bus.subscribeEnvelope('slow', async () => {
      entered.resolve();
      await release.promise;
      finished = true;
    });
    await bus.publishEnvelope('slow', { aggregateId: 'a', eventType: 'T', eventVersion: 0, payload: 1 });
    await entered.promise;
    const closing = bus.close({ timeoutMs: 5000 });
    release.resolve();
    await closing;
    assert.equal(finished, true);
    // Processed and acked: a new member of the same group gets nothing again.
    const again = await memoryBus({ memory: { broker } });
    const seen: number[] = [];
    const got = until(
      () => seen.length > 0,
      () => 'nothing',
    );
    await again.subscribeEnvelope<number>('slow', (e) => {
      seen.push(e.payload);
      got.check();
    });
    await again.publishEnvelope('slow', { aggregateId: 'a', eventType: 'T', eventVersion: 1, payload: 2 });
    await got.wait(2000);
    assert.deepEqual(seen, [2]);
    await again.close();
  });

  it('a subscription closes when its AbortSignal aborts', async () => {
    const bus = await memoryBus();
    const controller = new AbortController();
    const sub = await bus.subscribeEnvelope('abortable', () => {}, { signal: controller.signal });
    controller.abort();
    await sub.closed;
    assert.equal(bus.health().subscriptions.length, 0);
    await bus.close();
  });
});

describe('metrics', () => {
  it('registers the metric names of README.md (Metrics) on the given registry and counts processing', async () => {
    const registry = new Registry();
    const bus = await createEventBus({
      transport: 'memory',
      clientId: 'metrics-test',
      memory: { broker: createMemoryBroker() },
      metrics: { registry },
    });
    const done = deferred();
    let n = 0;
    const subscription = await bus.subscribeEnvelope('m', () => {
      if (++n === 3) done.resolve();
    });
    for (let i = 0; i < 3; i++) {
      await bus.publishEnvelope('m', { aggregateId: 'a', eventType: 'T', eventVersion: i, payload: i });
    }
    await done.promise;
    await bus.flush();
    await subscription.close(); // the handlers' outcomes are counted once it has drained
    // Read while the bus is open: a closed bus's metrics leave the registry.
    const text = await registry.metrics();
    await bus.close();
    const ns = 'memory_eventbus_metrics_test';
    for (const name of [
      'actor_pool_messages_sent_total',
      'actor_pool_messages_processed_total',
      'actor_pool_message_latency_seconds',
      'actor_pool_inbox_depth',
      'actor_pool_inbox_utilization',
      'actor_pool_actor_restarted_total',
      'actor_pool_dead_letters_total',
      'publish_messages_total',
      'publish_ack_latency_seconds',
    ]) {
      assert.ok(text.includes(`${ns}_${name}`), `missing ${ns}_${name}`);
    }
    assert.match(
      text,
      /memory_eventbus_metrics_test_actor_pool_messages_processed_total\{[^}]*outcome="success"[^}]*\} 3/,
    );
    assert.match(text, /memory_eventbus_metrics_test_publish_messages_total\{topic="m"\} 3/);
  });
});
