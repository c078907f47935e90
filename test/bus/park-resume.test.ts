/**
 * Park that can be resumed (issue 12), on the memory transport: parked state
 * is kept with the broker, so a consumer that restarts still holds the
 * aggregate's newer events back; resume() replays the parked events in order,
 * before the aggregate's newer ones, and unparks. Judged by the order checker.
 */

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  createEventBus,
  createMemoryBroker,
  type Envelope,
  type EventBus,
  type MemoryBroker,
  type Subscription,
} from '../../src/index.ts';
import { createOrderChecker, formatReport } from '../../src/testing/checker.ts';
import { type Signal, until } from '../../src/testing/index.ts';

interface Payload {
  readonly index: number;
}

const topic = 'orders';

async function openBus(broker: MemoryBroker, clientId: string): Promise<EventBus> {
  return createEventBus({ transport: 'memory', clientId, metrics: { enabled: false }, memory: { broker } });
}

describe('park and resume (memory transport)', () => {
  it('parked state survives a consumer restart; resume replays the parked events in order, before newer ones', async () => {
    const broker = createMemoryBroker();
    const checker = createOrderChecker();
    const signals: Signal[] = [];
    const seen: string[] = [];
    let poisoned = true;
    const handler = (e: Envelope<Payload>): void => {
      if (e.aggregateId === 'a' && e.payload.index === 1 && poisoned) throw new Error('poison');
      checker.observe(e.eventId, e.aggregateId, e.payload.index);
      seen.push(`${e.aggregateId}${e.payload.index}`);
      for (const s of signals) s.check();
    };
    const subscribe = (bus: EventBus): Promise<Subscription> =>
      bus.subscribeEnvelope<Payload>(topic, handler, {
        group: 'g',
        deadLetterPolicy: 'park',
        maxAttempts: 2,
        backoff: { initialMs: 1, maxMs: 1 },
      });
    const producer = await openBus(broker, 'producer');
    const next = { a: 0, b: 0 };
    const publish = async (aggregateId: 'a' | 'b'): Promise<void> => {
      const index = next[aggregateId]++;
      // Announced before publishing: delivery may come before publishEnvelope resolves.
      const eventId = randomUUID();
      checker.expect(eventId, aggregateId, index);
      await producer.publishEnvelope(topic, {
        eventId,
        aggregateId,
        eventType: 'T',
        eventVersion: 1,
        payload: { index },
      });
      checker.acknowledged(eventId);
    };
    const waitFor = async (what: () => boolean, describe: string): Promise<void> => {
      const signal = until(
        what,
        () => `${describe}: ${formatReport(checker.report())} seen=${seen.join(',')}`,
      );
      signals.push(signal);
      await signal.wait(10_000);
    };
    let parkedSeen = 0;
    await producer.subscribe(
      `${topic}.PARKED`,
      () => {
        parkedSeen++;
        for (const s of signals) s.check();
      },
      { group: 'watch' },
    );
    const parkedCount = (): number => parkedSeen;

    let consumer = await openBus(broker, 'consumer-1');
    await subscribe(consumer);
    for (let i = 0; i < 4; i++) await publish('a'); // a0 ok, a1 poison → DLQ + parked, a2 a3 parked
    await publish('b');
    await waitFor(() => seen.includes('b0') && parkedCount() === 2, 'a parked, b flowing');
    assert.deepEqual(
      seen.filter((s) => s.startsWith('a')),
      ['a0'],
    );

    // Restart the consumer: the new process must still hold a's newer events back.
    await consumer.close();
    consumer = await openBus(broker, 'consumer-2');
    const subscription = await subscribe(consumer);
    await publish('a'); // a4: parked, not run
    await publish('b');
    await waitFor(() => seen.includes('b1') && parkedCount() === 3, 'a4 parked after the restart');
    assert.deepEqual(
      seen.filter((s) => s.startsWith('a')),
      ['a0'],
      'after the restart the aggregate is still parked',
    );

    // The handler is fixed; the poison event is requeued from the DLQ by the
    // operator separately. Resume replays a2 a3 a4 in order, then a5 flows.
    poisoned = false;
    const resumed = await subscription.resume('a');
    assert.deepEqual(resumed, { resumed: true, replayed: 3 });
    await publish('a'); // a5: runs normally, after the replay
    await waitFor(() => seen.includes('a5'), 'a5 handled');
    assert.deepEqual(
      seen.filter((s) => s.startsWith('a')),
      ['a0', 'a2', 'a3', 'a4', 'a5'],
    );
    const report = checker.report();
    assert.equal(report.outOfOrder, 0, formatReport(report));
    // a1 is the one event not consumed: it is in the DLQ, given up on.
    assert.equal(report.lost, 1, formatReport(report));
    assert.equal(broker.messages(`${topic}.DLQ`).length, 1);
    assert.deepEqual(await subscription.resume('a'), { resumed: false, replayed: 0 }, 'no longer parked');
    assert.equal(consumer.health().subscriptions[0]?.parkedAggregates, 0);
    await consumer.close();
    await producer.close();
  });
});
