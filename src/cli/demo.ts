/**
 * The demo (`npm start`): an order service emits domain events for many
 * orders (aggregates) concurrently; a projection consumes them through
 * `subscribeEnvelope`, some first attempts fail on purpose (retried in place),
 * one order is poison (dead-lettered). The order checker judges every event.
 */
import { randomUUID } from 'node:crypto';
import cliProgress from 'cli-progress';
import { createEventBus } from '../bus/create-event-bus.ts';
import type { EventBus } from '../core/types.ts';
import { createOrderChecker, formatReport } from '../testing/checker.ts';
import { until } from '../testing/waiters.ts';
import { createMemoryBroker } from '../transports/memory/index.ts';

export interface DemoOptions {
  readonly orders: number;
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
  readonly seconds: number;
  readonly msgPerSec: number;
}

const lifecycle = ['OrderCreated', 'ItemAdded', 'ItemAdded', 'OrderPaid', 'OrderShipped'] as const;

export async function runDemo(options: DemoOptions): Promise<DemoSummary> {
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
  const total = options.orders * lifecycle.length;
  const poisonOrder = 'order-poison';
  const bar = options.progress
    ? new cliProgress.SingleBar(
        { format: 'demo |{bar}| {value}/{total} events processed | {rate} msg/s', hideCursor: true },
        cliProgress.Presets.shades_classic,
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
    await publishOrders(orderService, options.orders, checker, poisonOrder);
    await orderService.flush();
    done.check();
    await done.wait(120_000);
  } finally {
    clearInterval(tick);
    bar?.update(processed, { rate: Math.round(processed / ((performance.now() - started) / 1000)) });
    bar?.stop();
    await Promise.all([orderService.close(), projection.close()]);
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
    seconds,
    msgPerSec: Math.round(report.consumed / seconds),
  };
}

async function publishOrders(
  bus: EventBus,
  orders: number,
  checker: ReturnType<typeof createOrderChecker>,
  poisonOrder: string,
): Promise<void> {
  const ids = [...Array.from({ length: orders }, (_, i) => `order-${i}`), poisonOrder];
  const publishers = 16;
  await Promise.all(
    Array.from({ length: publishers }, async (_, p) => {
      for (let i = p; i < ids.length; i += publishers) {
        const orderId = ids[i] as string;
        for (let step = 0; step < lifecycle.length; step++) {
          const eventId = randomUUID();
          // The poison order's OrderPaid is meant to end in the dead-letter topic, not in the projection.
          const poison = orderId === poisonOrder && lifecycle[step] === 'OrderPaid';
          if (!poison) checker.expect(eventId, orderId, step);
          await bus.publishEnvelope('orders', {
            eventId,
            aggregateId: orderId,
            eventType: lifecycle[step] as string,
            eventVersion: step,
            payload: { orderId, step },
          });
        }
      }
    }),
  );
}

export function formatSummary(s: DemoSummary): string {
  return [
    'demo summary (in-memory transport)',
    `  published      ${s.published}`,
    `  processed      ${s.processed}`,
    `  lost           ${s.lost}`,
    `  out of order   ${s.outOfOrder}`,
    `  duplicates     ${s.duplicates}`,
    `  retried        ${s.retried} (simulated transient failures, retried in place)`,
    `  dead-lettered  ${s.deadLettered} (the poison order's OrderPaid → orders.DLQ)`,
    `  throughput     ${s.msgPerSec} msg/s over ${s.seconds.toFixed(2)} s`,
  ].join('\n');
}
