/**
 * The demo (`npm start`): an order service changes orders in an embedded
 * PostgreSQL (PGlite) and writes each domain event into the transactional
 * outbox in the same transaction; an outbox relay publishes them through the
 * bus (in-memory transport) in order per aggregate, marking rows published
 * only on the broker's ack. A projection consumes them through
 * `subscribeEnvelope` in a partitioned consumer group; some first attempts
 * fail on purpose (retried in place), one order is poison (dead-lettered).
 * The order checker judges every event.
 *
 * Aborting `signal` (Ctrl-C) stops the order service, closes everything and
 * returns the summary so far with `interrupted: true`.
 */
import { setImmediate } from 'node:timers/promises';
import type { PGlite } from '@electric-sql/pglite';
import { createEventBus } from '../bus/create-event-bus.ts';
import { Headers } from '../core/envelope.ts';
import { importOptional } from '../core/optional-dependency.ts';
import type { EventBus } from '../core/types.ts';
import { createOutboxRelay, createPgliteOutboxStore, type PgliteTransaction } from '../outbox/index.ts';
import { createOrderChecker, formatReport } from '../testing/checker.ts';
import { deferred } from '../testing/waiters.ts';
import { createMemoryBroker } from '../transports/memory/index.ts';
import { type DemoDisplay, formatCount } from './demo-display.ts';

export interface DemoOptions {
  readonly orders: number;
  /** Order commands per database transaction. */
  readonly batch: number;
  readonly failureRate: number;
  readonly display: DemoDisplay;
  /** Aborting it (Ctrl-C) stops the run; the summary covers what happened so far. */
  readonly signal?: AbortSignal;
}

export interface DemoSummary {
  /** Stopped by the signal before every event was handled. */
  readonly interrupted: boolean;
  /** Events the run was to produce: (orders + the poison order) × 5 lifecycle steps. */
  readonly total: number;
  readonly written: number;
  readonly published: number;
  /** Events the projection handled (first handling of each), not counting the dead letter. */
  readonly processed: number;
  /** Acknowledged and never handled (an interrupted run: still in the broker when it stopped). */
  readonly lost: number;
  readonly outOfOrder: number;
  readonly duplicates: number;
  readonly deadLettered: number;
  readonly retried: number;
  readonly outboxPublished: number;
  readonly outboxPending: number;
  readonly pgliteStartSeconds: number;
  /** Time spent inside the order service's transactions (PGlite, shared with the relay). */
  readonly outboxWriteSeconds: number;
  /** From the first outbox write to the last event handled. */
  readonly eventSeconds: number;
  /** The bus alone: the relay's publishEnvelope → the projection's handler, ms. */
  readonly busLatencyMs: { readonly p50: number; readonly p99: number; readonly max: number };
}

const lifecycle = ['OrderCreated', 'ItemAdded', 'ItemAdded', 'OrderPaid', 'OrderShipped'] as const;
const poisonOrder = 'order-poison';

class Interrupted extends Error {}

/** Resolves with `work`, or rejects with Interrupted once `signal` aborts (work goes on unawaited). */
function unlessInterrupted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return work;
  if (signal.aborted) return Promise.reject(new Interrupted());
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new Interrupted());
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

export async function runDemo(options: DemoOptions): Promise<DemoSummary> {
  const { display, signal } = options;
  const total = (options.orders + 1) * lifecycle.length;
  const started = performance.now();
  display.line('[1/4] starting embedded PostgreSQL (PGlite, PostgreSQL compiled to WebAssembly): 10–20 s…');
  // Optional peer dependency of the package (a devDependency of this repository);
  // loaded before anything is opened, so a missing one leaves nothing behind.
  const pglite = await importOptional<typeof import('@electric-sql/pglite')>(
    '@electric-sql/pglite',
    'eventbus demo (embedded PostgreSQL)',
  );
  const opening = pglite.PGlite.create();
  let db: PGlite;
  try {
    db = await unlessInterrupted(opening, signal);
  } catch (error) {
    if (!(error instanceof Interrupted)) throw error;
    // PGlite's start cannot be cancelled: close it whenever it is up (the caller may exit first).
    opening.then((late) => late.close()).catch(() => {});
    return emptySummary(total, (performance.now() - started) / 1000);
  }
  const pgliteStartSeconds = (performance.now() - started) / 1000;
  const outbox = createPgliteOutboxStore(db);
  await outbox.migrate();
  await db.exec(
    'CREATE TABLE IF NOT EXISTS demo_orders (id text PRIMARY KEY, status text NOT NULL, version int NOT NULL)',
  );
  display.line(`      PGlite ready in ${pgliteStartSeconds.toFixed(1)} s, outbox schema migrated`);

  display.line(
    '[2/4] starting two buses on the in-memory transport: order-service (publishes through the outbox relay), ' +
      'projection (a partitioned consumer group)',
  );
  const broker = createMemoryBroker();
  const checker = createOrderChecker();
  const published = new Set<string>();
  const orderService = await createEventBus({
    transport: 'memory',
    clientId: 'order-service',
    memory: { broker },
    metrics: { enabled: false },
    onPublishResult: (r) => {
      if (r.success) {
        published.add(r.eventId);
        checker.acknowledged(r.eventId);
        done.check(); // the last result may come after the last event was handled
      } else {
        checker.failed(r.eventId);
      }
    },
  });
  const projection = await createEventBus({
    transport: 'memory',
    clientId: 'projection',
    memory: { broker },
    metrics: { enabled: false },
  });
  const sentAt = new Map<string, number>();
  const latencies: number[] = [];
  const relay = createOutboxRelay({
    store: outbox,
    bus: timedBus(orderService, sentAt),
    pollIntervalMs: 200,
  });

  const handled = new Set<string>();
  let written = 0;
  let retried = 0;
  let deadLettered = 0;
  let outboxWriteMs = 0;
  let firstWriteAt = 0;
  let lastHandledAt = 0;
  let interrupted = false;
  let outboxStats = { pending: 0, published: 0 };
  // Every event published (acknowledged) too: `outstanding` counts acknowledged events only, so
  // without it the run ended while the last event's publish had not been acknowledged yet.
  const done = allHandled(
    () =>
      checker.expectedCount() === total - 1 &&
      published.size === total &&
      checker.outstanding() === 0 &&
      deadLettered === 1,
    () => formatReport(checker.report()),
  );
  const noteHandled = (eventId: string): void => {
    handled.add(eventId);
    lastHandledAt = performance.now();
    const sent = sentAt.get(eventId);
    if (sent !== undefined) {
      latencies.push(lastHandledAt - sent);
      sentAt.delete(eventId);
    }
  };

  try {
    await projection.subscribe('orders.DLQ', (_data, ctx) => {
      deadLettered++;
      noteHandled(ctx.headers[Headers.eventId] ?? 'dead letter');
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
        noteHandled(event.eventId);
        checker.observe(event.eventId, event.aggregateId, event.eventVersion);
        done.check();
      },
      { maxAttempts: 3, backoff: { initialMs: 1, maxMs: 20 } },
    );
    await relay.start();
    display.line(
      `[3/4] order service: ${formatCount(options.orders + 1)} orders × ${lifecycle.length} steps = ` +
        `${formatCount(total)} events written into the outbox (${options.batch} orders per transaction); ` +
        'the relay publishes them, the projection handles them',
    );
    display.startCounting(() => ({ total, written, published: published.size, handled: handled.size }));
    firstWriteAt = performance.now();
    await runOrderService(db, outbox, options, checker, {
      onCommitted(rows, ms) {
        written += rows;
        outboxWriteMs += ms;
      },
    });
    done.check();
    await unlessInterrupted(done.wait(300_000), signal);
  } catch (error) {
    if (!(error instanceof Interrupted)) throw error;
    interrupted = true;
  } finally {
    display.stopCounting();
    display.line(
      interrupted
        ? '[4/4] interrupted: stopping the relay, draining the projection, closing the database'
        : '[4/4] every event handled: closing the relay, the buses and the database',
    );
    // Marking rows published happens on the ack, right after delivery: close() waits for the marks.
    await relay.close();
    outboxStats = { pending: (await outbox.stats()).pending, published: relay.stats().published };
    await Promise.all([orderService.close({ timeoutMs: 5_000 }), projection.close({ timeoutMs: 5_000 })]);
    await db.close();
  }
  const report = checker.report();
  const sorted = latencies.sort((a, b) => a - b);
  return {
    interrupted,
    total,
    written,
    published: published.size,
    processed: report.ok,
    lost: report.lost,
    outOfOrder: report.outOfOrder,
    duplicates: report.duplicated,
    deadLettered,
    retried,
    outboxPublished: outboxStats.published,
    outboxPending: outboxStats.pending,
    pgliteStartSeconds,
    outboxWriteSeconds: outboxWriteMs / 1000,
    eventSeconds: firstWriteAt === 0 ? 0 : (Math.max(lastHandledAt, firstWriteAt) - firstWriteAt) / 1000,
    busLatencyMs: { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: sorted.at(-1) ?? 0 },
  };
}

/**
 * Resolves once `condition` holds (call `check()` on every change). The
 * deadline timer is cleared on success and never keeps the process alive.
 */
function allHandled(condition: () => boolean, describe: () => string) {
  const outcome = deferred();
  let timer: NodeJS.Timeout | undefined;
  return {
    check(): void {
      if (condition()) {
        clearTimeout(timer);
        outcome.resolve();
      }
    },
    wait(timeoutMs: number): Promise<void> {
      timer = setTimeout(
        () => outcome.reject(new Error(`Timed out after ${timeoutMs} ms waiting: ${describe()}`)),
        timeoutMs,
      ).unref();
      this.check();
      return outcome.promise;
    },
  };
}

/** The order-service bus as the relay sees it, noting when each event was handed to the bus. */
function timedBus(
  bus: EventBus,
  sentAt: Map<string, number>,
): Pick<EventBus, 'publishEnvelope' | 'publishResults'> {
  return {
    publishEnvelope(topic, envelope, options) {
      const id = envelope.eventId;
      if (id !== undefined && !sentAt.has(id)) sentAt.set(id, performance.now());
      return bus.publishEnvelope(topic, envelope, options);
    },
    publishResults: () => bus.publishResults(),
  };
}

function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

function emptySummary(total: number, pgliteStartSeconds: number): DemoSummary {
  return {
    interrupted: true,
    total,
    written: 0,
    published: 0,
    processed: 0,
    lost: 0,
    outOfOrder: 0,
    duplicates: 0,
    deadLettered: 0,
    retried: 0,
    outboxPublished: 0,
    outboxPending: 0,
    pgliteStartSeconds,
    outboxWriteSeconds: 0,
    eventSeconds: 0,
    busLatencyMs: { p50: 0, p99: 0, max: 0 },
  };
}

type Outbox = ReturnType<typeof createPgliteOutboxStore>;

/**
 * The order service: each command updates the order row and adds its event
 * to the outbox in the same transaction, `batch` commands per transaction.
 * Orders advance one lifecycle step per round, so each aggregate's events are
 * written in order. Stops between transactions once `signal` aborts.
 */
async function runOrderService(
  db: PGlite,
  outbox: Outbox,
  options: { orders: number; batch: number; signal?: AbortSignal },
  checker: ReturnType<typeof createOrderChecker>,
  progress: { onCommitted(rows: number, ms: number): void },
): Promise<void> {
  const ids = [...Array.from({ length: options.orders }, (_, i) => `order-${i}`), poisonOrder];
  for (let step = 0; step < lifecycle.length; step++) {
    const eventType = lifecycle[step] as string;
    for (let from = 0; from < ids.length; from += options.batch) {
      if (options.signal?.aborted) throw new Interrupted();
      const slice = ids.slice(from, from + options.batch);
      const began = performance.now();
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
      progress.onCommitted(slice.length, performance.now() - began);
      // PGlite runs queries in-process and settles them as microtasks: without a turn of the
      // event loop here the loop would starve timers (the progress display) and the bus's deliveries.
      await setImmediate();
    }
  }
}

const perSecond = (count: number, seconds: number): string =>
  seconds > 0 ? formatCount(count / seconds) : '–';

export function formatSummary(s: DemoSummary): string {
  const lines = [
    `demo summary${s.interrupted ? ' (INTERRUPTED: what happened until Ctrl-C)' : ''}` +
      ' — outbox on PGlite → relay → in-memory transport → projection',
    `  events         ${formatCount(s.total)} planned, ${formatCount(s.written)} written to the outbox, ` +
      `${formatCount(s.published)} published (broker ack), ${formatCount(s.processed)} handled + ` +
      `${s.deadLettered} dead-lettered`,
    s.interrupted
      ? `  not handled    ${s.lost} (acknowledged, still in the broker when the run stopped)`
      : `  lost           ${s.lost}`,
    `  out of order   ${s.outOfOrder}`,
    `  duplicates     ${s.duplicates}`,
    `  retried        ${s.retried} (simulated transient failures, retried in place)`,
    `  dead-lettered  ${s.deadLettered} (the poison order's OrderPaid → orders.DLQ)`,
    `  outbox rows    ${formatCount(s.outboxPublished)} marked published on broker ack, ` +
      `${formatCount(s.outboxPending)} pending`,
    '  speed, the database and the bus apart:',
    `    PGlite start         ${s.pgliteStartSeconds.toFixed(1)} s (WebAssembly PostgreSQL booting in-process)`,
    `    outbox writes        ${perSecond(s.written, s.outboxWriteSeconds)} rows/s inside the order service's ` +
      `transactions (${s.outboxWriteSeconds.toFixed(2)} s; PGlite is one connection, shared with the relay)`,
    `    bus publish→handled  p50 ${s.busLatencyMs.p50.toFixed(1)} ms, p99 ${s.busLatencyMs.p99.toFixed(1)} ms, ` +
      `max ${s.busLatencyMs.max.toFixed(1)} ms (relay's publishEnvelope → projection handler, retries included)`,
    `    end to end           ${perSecond(s.processed + s.deadLettered, s.eventSeconds)} events/s over ` +
      `${s.eventSeconds.toFixed(2)} s (first outbox write → last event handled: paced by the database, ` +
      'not by the bus)',
  ];
  return lines.join('\n');
}
