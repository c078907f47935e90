/**
 * Two buses in one service: NATS JetStream for the domain's own events, Kafka
 * for the integration events another department consumes (say, analytics).
 *
 * The bridge subscribes to `orders` on NATS and republishes each event to
 * `order-analytics` on Kafka with `publishEnvelopeAndWait`: the NATS message
 * is acknowledged only after Kafka stored the copy, so a crash in between
 * redelivers it (at-least-once across both brokers). The eventId is kept, so
 * a consumer downstream can de-duplicate, and the order per aggregate holds
 * end to end (one aggregate's events run one at a time in the bridge).
 *
 * Run (after `npm run build`; `npm install @platformatic/kafka` in your own app):
 *   NATS_URL=nats://127.0.0.1:4222 KAFKA_BROKERS=127.0.0.1:9092 node examples/nats-kafka-bridge.ts
 * It publishes ORDERS orders (default 10) × 3 events on NATS, waits until the
 * Kafka consumer received all of them, and exits 0.
 */
import { randomUUID } from 'node:crypto';
import { createEventBus } from 'jxt-eventbus';

const natsUrl = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const kafkaBrokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const orders = Number(process.env.ORDERS ?? 10);
const steps = ['OrderPlaced', 'OrderPaid', 'OrderShipped'];

const nats = await createEventBus({
  transport: 'nats',
  clientId: 'order-bridge',
  nats: { servers: natsUrl },
});
const kafka = await createEventBus({
  transport: 'kafka',
  clientId: 'order-bridge',
  kafka: { brokers: kafkaBrokers },
  // Two buses in one process: give each its own metrics registry, or turn one off.
  metrics: { enabled: false },
});

// The bridge: NATS → Kafka. Same envelope (eventId included), different broker.
await nats.subscribeEnvelope(
  'orders',
  async (event) => {
    await kafka.publishEnvelopeAndWait('order-analytics', event); // throws → retried, then dead-lettered on NATS
  },
  { group: 'analytics-bridge' },
);

// The analytics side (normally another service): reads the Kafka topic.
const run = randomUUID().slice(0, 8); // this run's orders; the topics may hold earlier runs' events
const received = new Set<string>();
const { promise: allReceived, resolve: done } = Promise.withResolvers<void>();
await kafka.subscribeEnvelope(
  'order-analytics',
  (event) => {
    if (!event.aggregateId.startsWith(`order-${run}-`)) return;
    received.add(event.eventId); // a Set: a redelivered copy is counted once
    if (received.size === orders * steps.length) done();
  },
  { group: 'analytics' },
);

// The order service's events, on NATS.
for (let i = 0; i < orders; i++) {
  for (const [index, eventType] of steps.entries()) {
    await nats.publishEnvelope('orders', {
      aggregateId: `order-${run}-${i}`,
      eventType,
      eventVersion: index + 1,
      payload: { channel: 'web' },
    });
  }
}
await nats.flush(); // every publish has its broker answer

await allReceived;
console.log(`nats-kafka-bridge: ${received.size} events went NATS 'orders' → Kafka 'order-analytics'`);
// Close the bridge's source first: its handlers may still be publishing to Kafka.
await nats.close();
await kafka.close();
