/**
 * Typed topics. The type-level cases are checked by `npm run typecheck`
 * (this file is in tsconfig's `include`): each `@ts-expect-error` line must
 * be a type error, or the typecheck fails ("unused directive"), so a map that
 * stopped rejecting a wrong topic, event type or payload breaks the build.
 * They sit in functions that are type-checked but never run. The run-time
 * cases show the same bus working on the memory transport.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  createEventBus,
  createMemoryBroker,
  type Envelope,
  type EventBus,
  type TopicEnvelope,
  type TypedEventBus,
} from '../../src/index.ts';
import { deferred } from '../../src/testing/index.ts';
import { datedSchema, objectSchema } from './schema-kit.ts';

interface OrderEvents {
  OrderPlaced: { total: number };
  OrderShipped: { carrier: string };
}
interface Topics {
  orders: OrderEvents;
  payments: { PaymentReceived: { amount: number } };
}

const base = { transport: 'memory', clientId: 'typed', metrics: { enabled: false } } as const;

// ---- type level (never called) ----

export async function typedMapRejectsWrongTopicsEventsAndPayloads(bus: TypedEventBus<Topics>): Promise<void> {
  await bus.publishEnvelope('orders', {
    aggregateId: 'o1',
    eventType: 'OrderPlaced',
    eventVersion: 1,
    payload: { total: 1 },
  });
  await bus.publishEnvelope('orders', {
    aggregateId: 'o1',
    eventType: 'OrderShipped',
    eventVersion: 2,
    payload: { carrier: 'dhl' },
  });
  // biome-ignore format: the directive below must stay on the line of the call
  // @ts-expect-error: a topic not in the map
  await bus.publishEnvelope('order', { aggregateId: 'o1', eventType: 'OrderPlaced', eventVersion: 1, payload: { total: 1 } });
  // biome-ignore format: the directive below must stay on the line of the call
  // @ts-expect-error: an event type the topic does not carry
  await bus.publishEnvelope('orders', { aggregateId: 'o1', eventType: 'PaymentReceived', eventVersion: 1, payload: { amount: 1 } });
  // biome-ignore format: the directive below must stay on the line of the call
  // @ts-expect-error: the payload of another event type
  await bus.publishEnvelope('orders', { aggregateId: 'o1', eventType: 'OrderPlaced', eventVersion: 1, payload: { carrier: 'x' } });
  // biome-ignore format: the directive below must stay on the line of the call
  // @ts-expect-error: a payload field of the wrong type
  await bus.publishEnvelopeAndWait('orders', { aggregateId: 'o1', eventType: 'OrderPlaced', eventVersion: 1, payload: { total: '1' } });
  // biome-ignore format: the directive below must stay on the line of the call
  // @ts-expect-error: a topic not in the map
  await bus.subscribeEnvelope('shipments', () => {});
  await bus.subscribeEnvelope('orders', (event) => {
    // The handler gets a union discriminated by eventType.
    switch (event.eventType) {
      case 'OrderPlaced':
        event.payload.total.toFixed();
        // @ts-expect-error: OrderPlaced has no carrier
        event.payload.carrier;
        break;
      case 'OrderShipped':
        event.payload.carrier.toUpperCase();
        break;
      default: {
        const none: never = event;
        return none;
      }
    }
  });
  // The untyped view, for topics outside the map (dead letters) and EventBus consumers.
  const untyped: EventBus = bus.untyped;
  await untyped.subscribeEnvelope('orders.DLQ', () => {});
}

export async function schemasTypeTheBus(): Promise<void> {
  const bus = await createEventBus({
    ...base,
    topics: { orders: { OrderPlaced: objectSchema({ total: 'number' }) }, clock: { Ticked: datedSchema } },
  });
  await bus.publishEnvelope('clock', {
    aggregateId: 'c',
    eventType: 'Ticked',
    eventVersion: 1,
    payload: { at: '2026-01-01' },
  });
  // biome-ignore format: the directive below must stay on the line of the call
  // @ts-expect-error: publishing takes the schema's input (a string), not its output
  await bus.publishEnvelope('clock', { aggregateId: 'c', eventType: 'Ticked', eventVersion: 1, payload: { at: new Date() } });
  // biome-ignore format: the directive below must stay on the line of the call
  // @ts-expect-error: not a field of the schema's type
  await bus.publishEnvelope('orders', { aggregateId: 'o', eventType: 'OrderPlaced', eventVersion: 1, payload: { sum: 1 } });
  // biome-ignore format: the directive below must stay on the line of the call
  // @ts-expect-error: no schema for this topic
  await bus.publishEnvelope('payments', { aggregateId: 'p', eventType: 'PaymentReceived', eventVersion: 1, payload: {} });
  await bus.subscribeEnvelope('clock', (event) => {
    const at: Date = event.payload.at; // handlers get the schema's output
    at.getTime();
  });
}

export async function untypedBusUnchanged(bus: EventBus): Promise<void> {
  const created: EventBus = await createEventBus(base);
  await created.publishEnvelope('anything', {
    aggregateId: 'a',
    eventType: 'Any',
    eventVersion: 0,
    payload: 1,
  });
  await bus.subscribeEnvelope<{ total: number }>('orders', (event) => {
    event.payload.total.toFixed();
  });
}

// ---- run time ----

describe('typed topics', () => {
  it('a typed bus publishes and delivers the map’s events, narrowed by eventType', async () => {
    const bus = await createEventBus<Topics>({ ...base, memory: { broker: createMemoryBroker() } });
    const seen: TopicEnvelope<OrderEvents>[] = [];
    const done = deferred();
    await bus.subscribeEnvelope('orders', (event) => {
      seen.push(event);
      if (seen.length === 2) done.resolve();
    });
    await bus.publishEnvelope('orders', {
      aggregateId: 'o1',
      eventType: 'OrderPlaced',
      eventVersion: 1,
      payload: { total: 5 },
    });
    await bus.publishEnvelope('orders', {
      aggregateId: 'o1',
      eventType: 'OrderShipped',
      eventVersion: 2,
      payload: { carrier: 'dhl' },
    });
    await done.promise;
    const summary = seen.map((e) => (e.eventType === 'OrderPlaced' ? e.payload.total : e.payload.carrier));
    assert.deepEqual(summary, [5, 'dhl']);
    assert.equal(bus.untyped, bus as unknown as EventBus, 'untyped is the same bus');
    await bus.close();
  });

  it('a bus typed from schemas hands the schema’s output to the handler', async () => {
    const bus = await createEventBus({
      ...base,
      memory: { broker: createMemoryBroker() },
      topics: { clock: { Ticked: datedSchema } },
    });
    const got = deferred<Envelope<{ at: Date }>>();
    await bus.subscribeEnvelope('clock', (event) => got.resolve(event));
    await bus.publishEnvelope('clock', {
      aggregateId: 'c',
      eventType: 'Ticked',
      eventVersion: 1,
      payload: { at: '2026-12-01T08:00:00Z' },
    });
    const event = await got.promise;
    assert.ok(event.payload.at instanceof Date);
    assert.equal(event.payload.at.toISOString(), '2026-12-01T08:00:00.000Z');
    await bus.close();
  });
});
