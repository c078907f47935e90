/**
 * A failed publish holds its aggregate on the bus (real nats-server): the
 * aggregate's later events are refused unsent with PublishHeldError until the
 * failed event is republished or released, while other aggregates flow.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
  createEventBus,
  type Envelope,
  type EventBus,
  PublishHeldError,
  PublishRejectedError,
  type PublishResult,
} from '../../../src/index.ts';
import { deferred } from '../../../src/testing/index.ts';
import { type NatsServerHandle, startNatsServer } from '../../harness/nats-server.ts';
import { type Inspector, inspector } from './helpers.ts';

describe('nats bus: a failed publish holds its aggregate', () => {
  let server: NatsServerHandle;
  let inspect: Inspector;
  let bus: EventBus;
  const results = new Map<string, (r: PublishResult) => void>();

  before(async () => {
    server = await startNatsServer({ jetstream: true });
    inspect = await inspector(server.url);
    bus = await createEventBus({
      transport: 'nats',
      clientId: 'hold',
      metrics: { enabled: false },
      nats: { servers: server.url },
      onPublishResult: (r) => results.get(r.eventId)?.(r),
    });
  });

  after(async () => {
    await bus?.close({ timeoutMs: 5_000 });
    await inspect?.close();
    await server?.stop();
  });

  const publish = async (
    topic: string,
    aggregateId: string,
    version: number,
    size = 10,
  ): Promise<PublishResult> => {
    const eventId = `${aggregateId}-${version}-${randomUUID().slice(0, 8)}`;
    return publishId(topic, aggregateId, version, eventId, size);
  };
  const publishId = async (
    topic: string,
    aggregateId: string,
    version: number,
    eventId: string,
    size = 10,
  ): Promise<PublishResult> => {
    const result = new Promise<PublishResult>((resolve) => results.set(eventId, resolve));
    await bus.publishEnvelope(topic, {
      eventId,
      aggregateId,
      eventType: 'T',
      eventVersion: version,
      payload: 'x'.repeat(size),
    });
    return result;
  };

  it('a rejected event holds the aggregate until it is republished or released; others flow', async () => {
    const topic = `hold-${randomUUID().slice(0, 6)}`;
    // The stream refuses messages over 2 KiB: a real broker rejection (not retryable).
    await inspect.jsm.streams.add({ name: `EVENTBUS_${topic}`, subjects: [topic], max_msg_size: 2048 });
    const seen: Array<[string, number]> = [];
    const consumedB = deferred<void>();
    const consumedA2 = deferred<void>();
    await bus.subscribeEnvelope(topic, (e: Envelope) => {
      seen.push([e.aggregateId, e.eventVersion]);
      if (e.aggregateId === 'B') consumedB.resolve();
      if (e.aggregateId === 'A' && e.eventVersion === 2) consumedA2.resolve();
    });

    assert.equal((await publish(topic, 'A', 0)).success, true);
    const big = `A-1-${randomUUID().slice(0, 8)}`;
    const rejected = await publishId(topic, 'A', 1, big, 4096);
    assert.equal(rejected.success, false);
    assert.ok(rejected.error instanceof PublishRejectedError, String(rejected.error));
    assert.equal(bus.health().heldAggregates, 1);

    const held = await publish(topic, 'A', 2);
    assert.equal(held.success, false);
    assert.ok(held.error instanceof PublishHeldError, String(held.error));
    assert.equal(held.error.heldBy, big);
    assert.equal(held.error.aggregateId, 'A');
    assert.equal((await publish(topic, 'B', 0)).success, true, 'other aggregates are not held');

    // Republishing the failed event is the way through; here it is rejected again, so the hold stays.
    const again = await publishId(topic, 'A', 1, big, 4096);
    assert.ok(again.error instanceof PublishRejectedError);
    assert.ok((await publish(topic, 'A', 2)).error instanceof PublishHeldError);

    assert.equal(bus.releaseAggregate('A'), true);
    assert.equal(bus.releaseAggregate('A'), false);
    assert.equal(bus.health().heldAggregates, 0);
    assert.equal((await publish(topic, 'A', 2)).success, true);
    await consumedB.promise;
    await consumedA2.promise;
    const a = seen.filter(([id]) => id === 'A').map(([, v]) => v);
    assert.deepEqual(a, [0, 2], 'A: version 0, then (after the release) version 2; nothing held was stored');
  });
});
