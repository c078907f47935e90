/**
 * The demo (`npm start`): an order service changes orders in an embedded
 * PostgreSQL (PGlite) and writes each domain event into the transactional
 * outbox in the same transaction; an outbox relay publishes them through the
 * bus (in-memory transport) in order per aggregate, marking rows published
 * only on the broker's ack. A projection consumes them through
 * `subscribeEnvelope`; some first attempts fail on purpose (retried in place),
 * one order is poison (dead-lettered). The order checker judges every event.
 */
import type { PGlite } from '@electric-sql/pglite';
import type cliProgress from 'cli-progress';
import { createEventBus } from '../bus/create-event-bus.ts';
import { MissingDependencyError } from '../core/errors.ts';
import { importOptional } from '../core/optional-dependency.ts';
import { createOutboxRelay, createPgliteOutboxStore, type PgliteTransaction } from '../outbox/index.ts';
import { createOrderChecker, formatReport } from '../testing/checker.ts';
import { until } from '../testing/waiters.ts';
import { createMemoryBroker } from '../transports/memory/index.ts';

export interface DemoOptions {
  readonly orders: number;
  /** Order commands per database transaction. */
  readonly batch: number;
  readonly failureRate: number;
  readonly progress: boolean;
}

export interface DemoSummary {
  readonly published: number;
  readonly processed: number;
  readonly lost: number;
  readonly outOfOrder: number;
  readonly duplicates: number;
  readonly deadLettered: number;
  readonly retried: number;
  readonly outboxPublished: number;
  readonly outboxPending: number;
  readonly seconds: number;
  readonly msgPerSec: number;
}

const lifecycle = ['OrderCreated', 'ItemAdded', 'ItemAdded', 'OrderPaid', 'OrderShipped'] as const;

export async function runDemo(options: DemoOptions): Promise<DemoSummary> {
  // Optional peer dependency of the package (a devDependency of this repository);
  // loaded before anything is opened, so a missing one leaves nothing behind.
  const pglite = await importOptional<typeof import('@electric-sql/pglite')>(
    '@electric-sql/pglite',
    'eventbus demo (embedded PostgreSQL)',
  );
  const broker = createMemoryBroker();
  const checker = createOrderChecker();
  const orderService = await createEventBus({
    transport: 'memory',
    clientId: 'order-service',
    memory: { broker },
    onPublishResult: (r) => (r.success ? checker.acknowledged(r.eventId) : checker.failed(r.eventId)),
  });
  const projection = await createEventBus({
    transport: 'memory',
    clientId: 'projection',
    memory: { broker },
  });
  const db = new pglite.PGlite();
  const outbox = createPgliteOutboxStore(db);
  await outbox.migrate();
  await db.exec(
    'CREATE TABLE IF NOT EXISTS demo_orders (id text PRIMARY KEY, status text NOT NULL, version int NOT NULL)',
  );
  const relay = createOutboxRelay({ store: outbox, bus: orderService, pollIntervalMs: 200 });
  let outboxStats = { pending: 0, published: 0 };
  const total = options.orders * lifecycle.length;
  const poisonOrder = 'order-poison';
  const progressBars = options.progress ? await loadProgressBars() : undefined;
  const bar = progressBars
    ? new progressBars.SingleBar(
        { format: 'demo |{bar}| {value}/{total} events processed | {rate} msg/s', hideCursor: true },
        progressBars.Presets.shades_classic,
      )
    : undefined;
  let processed = 0;
  let retried = 0;
  let deadLettered = 0;
  const started = performance.now();
  const done = until(
    () =>
      checker.expectedCount() === total + lifecycle.length - 1 &&
      checker.outstanding() === 0 &&
      deadLettered === 1,
    () => formatReport(checker.report()),
  );
  bar?.start(total, 0, { rate: 0 });
  const tick = setInterval(() => {
    const secs = (performance.now() - started) / 1000;
    bar?.update(processed, { rate: Math.round(processed / secs) });
  }, 200);

  try {
    await projection.subscribe('orders.DLQ', () => {
      deadLettered++;
      done.check();
    });
    await projection.subscribeEnvelope<{ orderId: string; step: number }>(
      'orders',
      (event, ctx) => {
        if (event.aggregateId === poisonOrder && event.eventType === 'OrderPaid') {
          throw new Error('payment record is corrupt');
        }
        if (ctx.attempt === 1 && Math.random() < options.failureRate) {
          retried++;
          throw new Error('transient failure (simulated)');
        }
        processed++;
        checker.observe(event.eventId, event.aggregateId, event.eventVersion);
        done.check();
      },
      { maxAttempts: 3, backoff: { initialMs: 1, maxMs: 20 } },
    );
    await relay.start();
    await runOrderService(db, outbox, options, checker, poisonOrder);
    done.check();
    await done.wait(300_000);
    // Marking rows published happens on the ack, right after delivery: wait for the relay to catch up.
    await relay.close();
    outboxStats = { pending: (await outbox.stats()).pending, published: relay.stats().published };
  } finally {
    clearInterval(tick);
    bar?.update(processed, { rate: Math.round(processed / ((performance.now() - started) / 1000)) });
    bar?.stop();
    await relay.close();
    await Promise.all([orderService.close(), projection.close()]);
    await db.close();
  }
  const seconds = (performance.now() - started) / 1000;
  const report = checker.report();
  return {
    published: report.published + 1,
    processed: report.ok,
    lost: report.lost,
    outOfOrder: report.outOfOrder,
    duplicates: report.duplicated,
    deadLettered,
    retried,
    outboxPublished: outboxStats.published,
    outboxPending: outboxStats.pending,
    seconds,
    msgPerSec: Math.round(report.consumed / seconds),
  };
}

type Outbox = ReturnType<typeof createPgliteOutboxStore>;

/**
 * The order service: each command updates the order row and adds its event
 * to the outbox in the same transaction, `batch` commands per transaction.
 * Orders advance one lifecycle step per round, so each aggregate's events are
 * written in order.
 */
async function runOrderService(
  db: PGlite,
  outbox: Outbox,
  options: { orders: number; batch: number },
  checker: ReturnType<typeof createOrderChecker>,
  poisonOrder: string,
): Promise<void> {
  const ids = [...Array.from({ length: options.orders }, (_, i) => `order-${i}`), poisonOrder];
  for (let step = 0; step < lifecycle.length; step++) {
    const eventType = lifecycle[step] as string;
    for (let from = 0; from < ids.length; from += options.batch) {
      const slice = ids.slice(from, from + options.batch);
      await db.transaction(async (tx: PgliteTransaction) => {
        await tx.query(
          `INSERT INTO demo_orders (id, status, version)
           SELECT id, $2, $3 FROM unnest($1::text[]) AS id
           ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, version = EXCLUDED.version`,
          [slice, eventType, step],
        );
        const envelopes = await outbox.add(
          tx,
          slice.map((orderId) => ({
            topic: 'orders',
            envelope: { aggregateId: orderId, eventType, eventVersion: step, payload: { orderId, step } },
          })),
        );
        for (const e of envelopes) {
          // The poison order's OrderPaid is meant to end in the dead-letter topic, not in the projection.
          const poison = e.aggregateId === poisonOrder && eventType === 'OrderPaid';
          if (!poison) checker.expect(e.eventId, e.aggregateId, step);
        }
      });
    }
  }
}

export function formatSummary(s: DemoSummary): string {
  return [
    'demo summary (outbox on PGlite → relay → in-memory transport → projection)',
    `  published      ${s.published}`,
    `  processed      ${s.processed}`,
    `  lost           ${s.lost}`,
    `  out of order   ${s.outOfOrder}`,
    `  duplicates     ${s.duplicates}`,
    `  retried        ${s.retried} (simulated transient failures, retried in place)`,
    `  dead-lettered  ${s.deadLettered} (the poison order's OrderPaid → orders.DLQ)`,
    `  outbox rows    ${s.outboxPublished} marked published on broker ack, ${s.outboxPending} pending`,
    `  throughput     ${s.msgPerSec} msg/s over ${s.seconds.toFixed(2)} s`,
  ].join('\n');
}

/**
 * cli-progress is a devDependency (the bench's too): an installed package runs
 * the demo without the bar rather than failing.
 */
async function loadProgressBars(): Promise<typeof cliProgress | undefined> {
  try {
    return (await importOptional<{ default: typeof cliProgress }>('cli-progress', 'the demo progress bar'))
      .default;
  } catch (error) {
    if (error instanceof MissingDependencyError) return undefined;
    throw error;
  }
}
