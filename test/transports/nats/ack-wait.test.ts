/**
 * A handler that runs longer than the consumer's AckWait (retrying past it)
 * is kept alive with working() (+WPI) and never redelivered by the broker.
 * Asked of the real nats-server itself: the transport hides redeliveries of a
 * message it is still handling, so only the consumer's delivery sequence tells.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { createEventBus, type EventBus } from '../../../src/index.ts';
import { deferred } from '../../../src/testing/index.ts';
import { type NatsServerHandle, startNatsServer } from '../../harness/nats-server.ts';
import { groupConsumers } from './helpers.ts';

describe('nats: handlers slower than AckWait', { timeout: 120_000 }, () => {
  let server: NatsServerHandle;
  const open: EventBus[] = [];
  const bus = async (clientId: string, nats: Record<string, unknown> = {}): Promise<EventBus> => {
    const b = await createEventBus({
      transport: 'nats',
      clientId,
      metrics: { enabled: false },
      nats: { servers: server.url, ...nats },
    } as never);
    open.push(b);
    return b;
  };

  before(async () => {
    server = await startNatsServer({ jetstream: true });
  });
  after(async () => {
    await Promise.all(open.map((b) => b.close({ timeoutMs: 5000 })));
    await server?.stop();
  });

  it('a handler slower than AckWait (retrying past it) is kept alive with working(), not redelivered', async () => {
    const topic = `fault-slow-${randomUUID().slice(0, 6)}`;
    const producer = await bus('slow-p');
    const consumer = await bus('slow-c', { consumer: { ackWaitMs: 1000 } });
    const deliveries: number[] = [];
    let attempts = 0;
    const finished = deferred();
    await consumer.subscribeEnvelope(
      topic,
      async (_e, ctx) => {
        attempts++;
        deliveries.push(ctx.deliveryCount);
        if (ctx.attempt < 8) {
          // Each attempt runs into its 500 ms timeout; together (~6 s) they outlast AckWait (1.5 s) by far.
          await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
          return;
        }
        finished.resolve();
      },
      { handlerTimeoutMs: 500, maxAttempts: 10, backoff: { initialMs: 200, maxMs: 400 } },
    );
    await producer.publishEnvelope(topic, {
      aggregateId: 'slow',
      eventType: 'T',
      eventVersion: 0,
      payload: 0,
    });
    await finished.promise;
    await consumer.close({ timeoutMs: 5000 });
    assert.equal(attempts, 8);
    assert.deepEqual(deliveries, [1, 1, 1, 1, 1, 1, 1, 1]);
    // Ask the server itself: the transport hides redeliveries of a message it is still handling.
    const nc = await connect({ servers: server.url });
    try {
      const jsm = await jetstreamManager(nc);
      const lanes = await groupConsumers(jsm, `EVENTBUS_${topic.replace(/[^A-Za-z0-9_-]/g, '_')}`, 'slow-c');
      // Each delivery, redeliveries included, takes a consumer sequence: exactly one means never redelivered.
      assert.equal(
        lanes.reduce((sum, info) => sum + info.delivered.consumer_seq, 0),
        1,
        'the broker never redelivered it while it was being worked on',
      );
      assert.equal(
        lanes.reduce((sum, info) => sum + info.num_ack_pending, 0),
        0,
      );
    } finally {
      await nc.close();
    }
  });
});
