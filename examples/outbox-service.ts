/**
 * An order service that publishes its domain events with the transactional
 * outbox on PostgreSQL.
 *
 * The problem it solves: "update the database, then publish" loses the event
 * when the process dies in between, and "publish, then update" announces
 * changes that never happened. Here each command writes its state change AND
 * its event in one database transaction; a relay publishes the committed
 * events through the bus, in order per aggregate, and marks a row published
 * only once the broker acknowledged it.
 *
 * Run (after `npm run build`):
 *   DATABASE_URL=postgres://user@127.0.0.1:5432/db NATS_URL=nats://127.0.0.1:4222 node examples/outbox-service.ts
 * It places ORDERS orders (default 20), pays each, waits until the relay has
 * published every event, and exits 0.
 */
import { randomUUID } from 'node:crypto';
import { createEventBus } from 'jxt-eventbus';
import { createOutboxRelay, createPgOutboxStore, type PgPoolClient } from 'jxt-eventbus/outbox';
import pg from 'pg';

const databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl)
  throw new Error('Set DATABASE_URL to a PostgreSQL database, e.g. postgres://user@127.0.0.1/db');
const natsUrl = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const orders = Number(process.env.ORDERS ?? 20);

const pool = new pg.Pool({ connectionString: databaseUrl });
// An idle client whose connection dies emits 'error' on the pool; without a listener it would crash the process.
pool.on('error', (error) => console.warn(`idle database connection lost: ${error.message}`));

const outbox = createPgOutboxStore(pool);
await outbox.migrate(); // creates or upgrades eventbus_outbox / eventbus_inbox; safe on every start
await pool.query(
  'CREATE TABLE IF NOT EXISTS orders (id text PRIMARY KEY, status text NOT NULL, total numeric NOT NULL)',
);

const bus = await createEventBus({
  transport: 'nats',
  clientId: 'order-service',
  nats: { servers: natsUrl },
});
// Only to know when this example is done (a real service just keeps running): count the broker's acks.
const results = bus.publishResults();
const relay = createOutboxRelay({ store: outbox, bus });
await relay.start();

/** Runs `work` and the outbox writes in one transaction: both are stored, or neither. */
async function inTransaction(work: (client: PgPoolClient) => Promise<void>): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await work(client);
    await client.query('COMMIT'); // the relay is notified on commit (LISTEN/NOTIFY) and publishes at once
  } catch (error) {
    await client.query('ROLLBACK'); // nothing stored, nothing published
    throw error;
  } finally {
    client.release();
  }
}

async function placeOrder(orderId: string, total: number): Promise<void> {
  await inTransaction(async (client) => {
    await client.query('INSERT INTO orders (id, status, total) VALUES ($1, $2, $3)', [
      orderId,
      'placed',
      total,
    ]);
    await outbox.add(client, [
      {
        topic: 'orders',
        envelope: { aggregateId: orderId, eventType: 'OrderPlaced', eventVersion: 1, payload: { total } },
      },
    ]);
  });
}

async function payOrder(orderId: string): Promise<void> {
  await inTransaction(async (client) => {
    await client.query('UPDATE orders SET status = $1 WHERE id = $2', ['paid', orderId]);
    await outbox.add(client, [
      {
        topic: 'orders',
        envelope: { aggregateId: orderId, eventType: 'OrderPaid', eventVersion: 2, payload: {} },
      },
    ]);
  });
}

const run = randomUUID().slice(0, 8); // order ids unique per run, so the example can run again on the same database
for (let i = 0; i < orders; i++) {
  const orderId = `order-${run}-${i}`;
  await placeOrder(orderId, 10 * (i + 1));
  await payOrder(orderId);
}

let acked = 0;
for await (const result of results) {
  if (result.success) acked++;
  else console.warn(`publish of ${result.eventId} failed (${result.error?.code}); the relay will retry it`);
  if (acked === orders * 2) break; // break closes the results stream
}
// close() waits until the acknowledged rows are marked published, then lets go of its leases.
await relay.close();
const { pending } = await outbox.stats();
console.log(
  `outbox-service: ${orders} orders placed and paid, ${acked} events published, ${pending} rows pending`,
);
await bus.close();
await pool.end();
