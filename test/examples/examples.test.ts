/**
 * Every example in examples/ runs here as a reader would run it (see kit.ts:
 * built package, `import 'jxt-eventbus'` by name, strict type-check first)
 * against real components from test/harness: a nats-server per example, a
 * PostgreSQL database for the outbox and inbox, the Kafka test broker (or
 * KAFKA_BROKERS) for the bridge. Each example must exit by itself with code 0
 * (the shutdown example on SIGTERM); what it left behind (stream, topic,
 * tables) is then judged independently, with the order checker where order
 * and loss are the question.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createEventBus } from '../../src/index.ts';
import { createOrderChecker, formatReport, type OrderChecker } from '../../src/testing/checker.ts';
import { until } from '../../src/testing/waiters.ts';
import { announceKafkaSkip, kafkaForTests, kafkaSkipReason } from '../harness/kafka-broker.ts';
import { killLineProcesses } from '../harness/line-process.ts';
import { type NatsServerHandle, startNatsServer } from '../harness/nats-server.ts';
import { type PostgresServer, startPostgres } from '../harness/postgres.ts';
import { buildExamplesPackage, type ExamplesPackage } from './kit.ts';

const EXIT_TIMEOUT_MS = 180_000;
const READ_TIMEOUT_MS = 120_000;

let examples: ExamplesPackage;
let postgres: PostgresServer;
const servers: NatsServerHandle[] = [];

before(async () => {
  [examples, postgres] = await Promise.all([buildExamplesPackage(), startPostgres()]);
});
after(async () => {
  killLineProcesses();
  await Promise.all([examples?.remove(), postgres?.stop(), ...servers.map((s) => s.stop())]);
});

/** A nats-server of the example's own, so no example reads another's events. */
async function natsServer(): Promise<NatsServerHandle> {
  const server = await startNatsServer();
  servers.push(server);
  return server;
}

async function query<R extends pg.QueryResultRow>(
  url: string,
  text: string,
  params: unknown[] = [],
): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(text, params)).rows;
  } finally {
    await client.end();
  }
}

/** Waits until the checker has seen every acknowledged message, then asserts nothing was lost or reordered. */
async function judge(checker: OrderChecker, signal: { check(): void; wait(ms: number): Promise<void> }) {
  signal.check();
  await signal.wait(READ_TIMEOUT_MS);
  const report = checker.report();
  assert.equal(report.lost, 0, formatReport(report));
  assert.equal(report.outOfOrder, 0, formatReport(report));
  assert.equal(report.unexpected, 0, formatReport(report));
}

const testBus = (url: string, clientId: string) =>
  createEventBus({ transport: 'nats', clientId, nats: { servers: url }, metrics: { enabled: false } });

describe('examples/', () => {
  it('outbox-service: every order event is in the stream once, in order per order, and marked published', async () => {
    const nats = await natsServer();
    const databaseUrl = await postgres.createDatabase('example_outbox_service');
    const orders = 20;
    const run = examples.start('outbox-service', {
      DATABASE_URL: databaseUrl,
      NATS_URL: nats.url,
      ORDERS: String(orders),
    });
    assert.equal(await run.exited(EXIT_TIMEOUT_MS), 0, run.output());
    assert.match(run.output(), new RegExp(`${orders * 2} events published, 0 rows pending`));

    const rows = await query<{ id: string; aggregate_id: string; published: boolean }>(
      databaseUrl,
      'SELECT id, aggregate_id, published_at IS NOT NULL AS published FROM eventbus_outbox ORDER BY seq',
    );
    assert.equal(rows.length, orders * 2);
    assert.deepEqual(
      rows.filter((r) => !r.published).map((r) => r.id),
      [],
      'rows not marked published',
    );
    // The stream, read by a new consumer group, against the outbox rows in commit order.
    const checker = createOrderChecker();
    const indexOf = new Map<string, number>();
    const perAggregate = new Map<string, number>();
    for (const row of rows) {
      const index = perAggregate.get(row.aggregate_id) ?? 0;
      perAggregate.set(row.aggregate_id, index + 1);
      indexOf.set(row.id, index);
      checker.expect(row.id, row.aggregate_id, index);
      checker.acknowledged(row.id);
    }
    const done = until(
      () => checker.outstanding() === 0,
      () => formatReport(checker.report()),
    );
    const reader = await testBus(nats.url, 'verify-outbox');
    try {
      await reader.subscribeEnvelope(
        'orders',
        (e) => {
          checker.observe(e.eventId, e.aggregateId, indexOf.get(e.eventId) ?? -1);
          done.check();
        },
        { group: 'verify-outbox' },
      );
      await judge(checker, done);
    } finally {
      await reader.close();
    }
  });

  it('inbox-projection: the redelivered events are skipped, the totals match the stream exactly', async () => {
    const nats = await natsServer();
    const databaseUrl = await postgres.createDatabase('example_inbox_projection');
    const orders = 20;
    const run = examples.start('inbox-projection', {
      DATABASE_URL: databaseUrl,
      NATS_URL: nats.url,
      ORDERS: String(orders),
    });
    assert.equal(await run.exited(EXIT_TIMEOUT_MS), 0, run.output());
    const skipped = Number(/(\d+) redeliveries skipped by the inbox/.exec(run.output())?.[1]);
    assert.ok(skipped >= orders, `each order's second item was delivered twice: ${run.output()}`);

    // What the stream holds, read independently: the totals each order must have.
    const stream = new Map<string, { aggregateId: string; price: number }>();
    const read = until(
      () => stream.size === orders * 3,
      () => `${stream.size} of ${orders * 3} events read from order-items`,
    );
    const reader = await testBus(nats.url, 'verify-inbox');
    try {
      await reader.subscribeEnvelope<{ price: number }>(
        'order-items',
        (e) => {
          stream.set(e.eventId, { aggregateId: e.aggregateId, price: e.payload.price });
          read.check();
        },
        { group: 'verify-inbox' },
      );
      await read.wait(READ_TIMEOUT_MS);
    } finally {
      await reader.close();
    }
    const expected = new Map<string, { items: number; total: number }>();
    for (const { aggregateId, price } of stream.values()) {
      const t = expected.get(aggregateId) ?? { items: 0, total: 0 };
      expected.set(aggregateId, { items: t.items + 1, total: t.total + price });
    }
    const totals = await query<{ order_id: string; items: number; total: string }>(
      databaseUrl,
      'SELECT order_id, items, total FROM order_totals ORDER BY order_id',
    );
    assert.deepEqual(
      new Map(totals.map((t) => [t.order_id, { items: t.items, total: Number(t.total) }])),
      expected,
      'each event applied exactly once',
    );
    const inbox = await query<{ event_id: string }>(
      databaseUrl,
      "SELECT event_id FROM eventbus_inbox WHERE consumer = 'order-totals'",
    );
    assert.deepEqual(
      new Set(inbox.map((r) => r.event_id)),
      new Set(stream.keys()),
      'one inbox record per event',
    );
  });

  announceKafkaSkip('the NATS/Kafka bridge example');
  it('nats-kafka-bridge: every NATS order event reaches the Kafka topic, in order per order', {
    skip: kafkaSkipReason,
  }, async () => {
    const nats = await natsServer();
    const kafka = await kafkaForTests();
    try {
      const brokers = kafka.brokers.join(',');
      const run = examples.start('nats-kafka-bridge', {
        NATS_URL: nats.url,
        KAFKA_BROKERS: brokers,
        ORDERS: '10',
      });
      assert.equal(await run.exited(EXIT_TIMEOUT_MS), 0, run.output());

      // The NATS stream says what was published (in order per order); the Kafka topic must hold it all.
      const checker = createOrderChecker();
      const sourceRead = until(
        () => checker.expectedCount() === 30,
        () => `${checker.expectedCount()} of 30 events read from NATS 'orders'`,
      );
      const done = until(
        () => checker.outstanding() === 0,
        () => formatReport(checker.report()),
      );
      const source = await testBus(nats.url, 'verify-bridge');
      const sink = await createEventBus({
        transport: 'kafka',
        clientId: 'verify-bridge',
        kafka: { brokers: kafka.brokers },
        metrics: { enabled: false },
      });
      try {
        await source.subscribeEnvelope(
          'orders',
          (e) => {
            checker.expect(e.eventId, e.aggregateId, e.eventVersion);
            checker.acknowledged(e.eventId);
            sourceRead.check();
          },
          { group: 'verify-bridge' },
        );
        await sourceRead.wait(READ_TIMEOUT_MS); // all expected before the first observation
        await sink.subscribeEnvelope(
          'order-analytics',
          (e) => {
            checker.observe(e.eventId, e.aggregateId, e.eventVersion);
            done.check();
          },
          { group: 'verify-bridge' },
        );
        await judge(checker, done);
      } finally {
        await Promise.all([source.close(), sink.close()]);
      }
    } finally {
      await kafka.stop();
    }
  });

  it('graceful-shutdown: SIGTERM mid-stream drains and exits 0; the next instance gets the rest, nothing lost', async () => {
    const nats = await natsServer();
    const checker = createOrderChecker();
    const done = until(
      () => checker.outstanding() === 0,
      () => formatReport(checker.report()),
    );
    let handledBy = 'first';
    const handled = { first: 0, second: 0 };
    const onLine = (line: string): void => {
      const m = /^handled (\S+) (\S+) (\d+)$/.exec(line);
      if (!m) return;
      handled[handledBy as keyof typeof handled]++;
      checker.observe(m[1] as string, m[2] as string, Number(m[3]));
      done.check();
    };
    const publisher = await createEventBus({
      transport: 'nats',
      clientId: 'shipments-publisher',
      nats: { servers: nats.url },
      metrics: { enabled: false },
      onPublishResult: (r) => {
        if (r.success) checker.acknowledged(r.eventId);
        else checker.failed(r.eventId);
        done.check();
      },
    });
    const aggregates = 20;
    let nextVersion = 1;
    const publishRound = async (versions: number): Promise<void> => {
      for (let v = nextVersion; v < nextVersion + versions; v++) {
        for (let a = 0; a < aggregates; a++) {
          // Announced to the checker before it is sent: its ack may come before publishEnvelope returns.
          const eventId = randomUUID();
          checker.expect(eventId, `shipment-${a}`, v);
          await publisher.publishEnvelope('shipments', {
            eventId,
            aggregateId: `shipment-${a}`,
            eventType: 'ShipmentUpdated',
            eventVersion: v,
            payload: { carrier: 'dhl' },
          });
        }
      }
      nextVersion += versions;
    };
    const env = { NATS_URL: nats.url, PORT: '0', DRAIN_DEADLINE_MS: '10000' };
    try {
      await publishRound(10);
      const first = examples.start('graceful-shutdown', env, onLine);
      await first.waitForLine(/probes on :\d+/, READ_TIMEOUT_MS);
      await first.waitForLine(/^handled /, READ_TIMEOUT_MS);
      const port = /probes on :(\d+)/.exec(first.output())?.[1];
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      assert.equal(ready.status, 200, 'ready while consuming');
      // SIGTERM while events keep arriving: the first instance stops taking them, the second gets the rest.
      first.child.kill('SIGTERM');
      await publishRound(10);
      assert.equal(await first.exited(EXIT_TIMEOUT_MS), 0, first.output());
      assert.match(first.output(), /drained and disconnected/);
      // Drained: every handler the first instance started, it also finished (none cut off by the exit).
      const finished = new Set(first.lines.map((l) => /^handled (\S+)/.exec(l)?.[1]));
      const cutOff = first.lines.filter((l) => l.startsWith('handling ') && !finished.has(l.slice(9)));
      assert.deepEqual(cutOff, [], 'handlers started and not finished before the exit');

      handledBy = 'second';
      const second = examples.start('graceful-shutdown', env, onLine);
      try {
        await publisher.flush();
        await judge(checker, done);
        console.log(`# graceful-shutdown: first instance handled ${handled.first}, second ${handled.second}`);
        // A drained instance acked everything it handled before disconnecting: nothing is handled twice.
        assert.equal(checker.report().duplicated, 0, formatReport(checker.report()));
      } finally {
        second.child.kill('SIGTERM');
        assert.equal(await second.exited(EXIT_TIMEOUT_MS), 0, second.output());
      }
    } finally {
      await publisher.close();
    }
  });
});
