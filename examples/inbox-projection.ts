/**
 * A projection (a read model: order totals) kept exactly-once on top of
 * at-least-once delivery, with the idempotent inbox of `jxt-eventbus/outbox`.
 *
 * The problem it solves: a consumer commits its writes and then dies (or its
 * ack is lost) before the broker hears about it, so the event comes again.
 * `processOnce` records the eventId in the same transaction as the writes; a
 * redelivered event finds its record and is skipped, so nothing is counted
 * twice.
 *
 * Run (after `npm run build`):
 *   DATABASE_URL=postgres://user@127.0.0.1:5432/db NATS_URL=nats://127.0.0.1:4222 node examples/inbox-projection.ts
 * It publishes ORDERS orders (default 20) of 3 items each, projects them while
 * each order's second item "crashes after commit" once, checks the totals and
 * exits 0.
 */
import { randomUUID } from 'node:crypto';
import { createEventBus } from 'jxt-eventbus';
import { createPgOutboxStore } from 'jxt-eventbus/outbox';
import pg from 'pg';

const databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl)
  throw new Error('Set DATABASE_URL to a PostgreSQL database, e.g. postgres://user@127.0.0.1/db');
const natsUrl = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const orders = Number(process.env.ORDERS ?? 20);
const itemsPerOrder = 3;

interface ItemAdded {
  readonly price: number;
}

const pool = new pg.Pool({ connectionString: databaseUrl });
pool.on('error', (error) => console.warn(`idle database connection lost: ${error.message}`));
const store = createPgOutboxStore(pool); // the inbox lives in the same schema as the outbox
await store.migrate();
await pool.query(
  'CREATE TABLE IF NOT EXISTS order_totals (order_id text PRIMARY KEY, items int NOT NULL, total numeric NOT NULL)',
);

const bus = await createEventBus({ transport: 'nats', clientId: 'order-totals', nats: { servers: natsUrl } });

const expected = orders * itemsPerOrder;
let applied = 0;
let skipped = 0;
const { promise: allApplied, resolve: done } = Promise.withResolvers<void>();

await bus.subscribeEnvelope<ItemAdded>(
  'order-items',
  async (event, ctx) => {
    const firstTime = await store.transaction((tx) =>
      store.processOnce(
        tx,
        event.eventId,
        async (tx) => {
          await tx.query(
            `INSERT INTO order_totals (order_id, items, total) VALUES ($1, 1, $2)
             ON CONFLICT (order_id) DO UPDATE
             SET items = order_totals.items + 1, total = order_totals.total + EXCLUDED.total`,
            [event.aggregateId, event.payload.price],
          );
        },
        { consumer: 'order-totals' },
      ),
    ); // false: this eventId was processed before, nothing was written
    if (firstTime) applied++;
    else skipped++;
    if (applied === expected) done();
    // The failure the inbox is for: the transaction committed, then the ack never made it.
    // Throwing makes the bus deliver the event again (retry in place); processOnce skips it.
    if (ctx.attempt === 1 && event.eventVersion === 2) throw new Error('simulated crash after commit');
  },
  { group: 'order-totals', backoff: { initialMs: 10, maxMs: 100 } },
);

// The upstream service's events (normally another process): ItemAdded, versions 1..3 per order.
const run = randomUUID().slice(0, 8);
for (let i = 0; i < orders; i++) {
  for (let version = 1; version <= itemsPerOrder; version++) {
    await bus.publishEnvelopeAndWait<ItemAdded>('order-items', {
      aggregateId: `order-${run}-${i}`,
      eventType: 'ItemAdded',
      eventVersion: version,
      payload: { price: 5 * version },
    });
  }
}

await allApplied;
const { rows } = await pool.query<{ items: string; total: string }>(
  'SELECT sum(items) AS items, sum(total) AS total FROM order_totals WHERE order_id LIKE $1',
  [`order-${run}-%`],
);
const items = Number(rows[0]?.items);
const total = Number(rows[0]?.total);
const expectedTotal = orders * (5 + 10 + 15);
console.log(
  `inbox-projection: ${applied} events applied, ${skipped} redeliveries skipped by the inbox; ` +
    `order_totals: ${items} items, total ${total} (expected ${expected} items, total ${expectedTotal})`,
);
await bus.close();
await pool.end();
process.exitCode = items === expected && total === expectedTotal ? 0 : 1;
