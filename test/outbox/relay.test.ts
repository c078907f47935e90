/**
 * Relay behaviour on the real bus (memory transport, its publish chaos for
 * failures and held acks; see relay-bus.ts) on both stores: order per
 * aggregate, mark-only-on-ack, retries with backoff, NOTIFY after commit,
 * graceful close, abort, lag warning.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { PublishRejectedError } from '../../src/core/errors.ts';
import { createOutboxRelay, type OutboxRelay } from '../../src/outbox/relay.ts';
import { checkDelivery, formatReport } from '../../src/testing/checker.ts';
import {
  captureLogger,
  eventsFor,
  expectedFromDb,
  type StoreFixture,
  stopPostgres,
  storeFactories,
  unpublishedCount,
  waitUntil,
  withStore,
} from './fixtures.ts';
import { type TestRelayBus, withRelayBus } from './relay-bus.ts';

after(stopPostgres);

const fastBackoff = { initialMs: 5, maxMs: 20, multiplier: 2, jitter: 0 };

async function addAggregates(f: StoreFixture, aggregates: number, perAggregate: number, topic = 'orders') {
  // Interleaved transactions, several aggregates each, like a busy application.
  for (let i = 0; i < perAggregate; i++) {
    await f.store.transaction((tx) =>
      f.store.add(
        tx,
        Array.from({ length: aggregates }, (_, a) => eventsFor(topic, `agg-${a}`, i, 1)).flat(),
      ),
    );
  }
}

async function withRelay<T>(relay: OutboxRelay, fn: () => Promise<T>): Promise<T> {
  await relay.start();
  try {
    return await fn();
  } finally {
    await relay.close({ timeoutMs: 5000 });
  }
}

for (const factory of storeFactories) {
  describe(`outbox relay (${factory.kind}, memory bus)`, () => {
    test('marks a row published only after its successful PublishResult', () =>
      withStore(factory, (f) =>
        withRelayBus({}, async (bus) => {
          bus.hold = true;
          await addAggregates(f, 3, 1);
          const relay = createOutboxRelay({
            store: f.store,
            bus: bus.relayBus,
            pollIntervalMs: 50,
            leaseMs: 10_000,
          });
          await withRelay(relay, async () => {
            await waitUntil(() => bus.heldCount === 3, { what: 'three publishes awaiting their acks' });
            assert.equal(await unpublishedCount(f), 3, 'sent but unacked rows stay unpublished');
            bus.releaseHeld();
            await waitUntil(async () => (await unpublishedCount(f)) === 0, {
              what: 'rows marked after the acks',
            });
          });
          assert.equal(relay.stats().published, 3);
        }),
      ));

    test('never has two publishes of one aggregate in flight, and keeps their order', () =>
      withStore(factory, (f) =>
        withRelayBus({ maxAckDelayMs: 3 }, async (bus) => {
          await addAggregates(f, 10, 20);
          const relay = createOutboxRelay({
            store: f.store,
            bus: bus.relayBus,
            pollIntervalMs: 50,
            batchSize: 64,
          });
          await withRelay(relay, () =>
            waitUntil(async () => (await unpublishedCount(f)) === 0, { what: 'all rows published' }),
          );
          assert.deepEqual(bus.concurrentPerAggregate, []);
          const report = checkDelivery(await expectedFromDb(f), bus.observed());
          assert.equal(report.exactlyOnce, 200, formatReport(report));
        }),
      ));

    test('failed publishes are retried with backoff, holding back their aggregate; order survives', () => {
      const refusedOnce = new Set<string>();
      return withStore(factory, (f) =>
        // Every 5th event fails twice: the broker rejects it, then a retryable transport error
        // outlives the bus's (tiny) publish deadline, a TimeoutError; the third send succeeds.
        // And some publishes are not even accepted the first time (the topic's schema refuses them).
        withRelayBus(
          {
            maxAckDelayMs: 2,
            publishDeadlineMs: 1,
            fault: (e, attempt) => {
              const index = (e.payload as { index: number }).index;
              if (index % 5 !== 2) return undefined;
              if (attempt === 1) return { kind: 'fail', error: new PublishRejectedError('stream full') };
              if (attempt === 2) return { kind: 'fail' };
              return undefined;
            },
            refuse: ({ aggregateId, index }) => {
              if (index !== 8 || refusedOnce.has(aggregateId)) return false;
              refusedOnce.add(aggregateId);
              return true;
            },
          },
          async (bus) => {
            await addAggregates(f, 8, 15);
            const { logger, entries } = captureLogger();
            const relay = createOutboxRelay({
              store: f.store,
              bus: bus.relayBus,
              pollIntervalMs: 20,
              backoff: fastBackoff,
              logger,
            });
            await withRelay(relay, () =>
              waitUntil(async () => (await unpublishedCount(f)) === 0, { what: 'all rows published' }),
            );
            const report = checkDelivery(await expectedFromDb(f), bus.observed());
            assert.equal(report.exactlyOnce, 120, formatReport(report));
            assert.deepEqual(bus.concurrentPerAggregate, []);
            const attempts = await f.query<{ index: number; attempts: number; last_error: string | null }>(
              "SELECT (envelope->'payload'->>'index')::int AS index, attempts, last_error FROM eventbus_outbox WHERE aggregate_id = 'agg-0' ORDER BY seq",
            );
            // At least the planned failures. Whether the bus's own retry of the retryable error
            // lands inside its 1 ms deadline depends on the machine's load, so a row may fail
            // once more; every failure is still counted once, by the relay and in the row.
            for (const row of attempts) {
              const planned = row.index % 5 === 2 ? 2 : row.index === 8 ? 1 : 0;
              assert.ok(
                row.attempts >= planned,
                `attempts of agg-0#${row.index}: ${row.attempts} < ${planned}`,
              );
              if (planned === 0) assert.equal(row.attempts, 0, `agg-0#${row.index} never failed`);
            }
            assert.match(String(attempts[2]?.last_error), /EVENTBUS_TIMEOUT/);
            const [total] = await f.query<{ attempts: number }>(
              'SELECT SUM(attempts)::int AS attempts FROM eventbus_outbox',
            );
            assert.ok(relay.stats().failed >= 8 * 3 * 2 + 8, `failed ${relay.stats().failed}`);
            assert.equal(
              relay.stats().failed,
              total?.attempts,
              'each failure counted once by the relay and the row',
            );
            assert.ok(entries.some((e) => e.level === 'warn' && /publish failed/.test(String(e.msg))));
          },
        ),
      );
    });

    test('a released row re-claimed before the release is acknowledged keeps its place ahead of newer rows', () =>
      withStore(factory, (f) =>
        withRelayBus(
          {
            fault: (e, attempt) =>
              (e.payload as { index: number }).index === 0 && attempt === 1
                ? { kind: 'fail', error: new PublishRejectedError('first try fails') }
                : undefined,
          },
          async (bus) => {
            let openGate!: () => void;
            const gate = new Promise<void>((r) => {
              openGate = r;
            });
            let releases = 0;
            const claimed: string[] = [];
            const store = {
              ...f.store,
              // The release commits at once, but the relay hears about it only when the gate opens.
              release: async (...args: Parameters<typeof f.store.release>) => {
                const n = await f.store.release(...args);
                releases++;
                await gate;
                return n;
              },
              claim: async (...args: Parameters<typeof f.store.claim>) => {
                const rows = await f.store.claim(...args);
                claimed.push(...rows.map((r) => r.id));
                return rows;
              },
            };
            await addAggregates(f, 1, 2);
            const relay = createOutboxRelay({
              store,
              bus: bus.relayBus,
              pollIntervalMs: 600_000,
              listen: false,
              backoff: { initialMs: 0, maxMs: 0, jitter: 0 },
            });
            await withRelay(relay, async () => {
              await waitUntil(() => releases === 1, { what: 'the failed row released (in the database)' });
              const [newer] = await f.store.transaction((tx) =>
                f.store.add(tx, eventsFor('orders', 'agg-0', 2, 1)),
              );
              relay.notify();
              await waitUntil(() => claimed.includes(newer?.eventId as string), {
                what: 'a claim returning the released rows and the newer one',
              });
              openGate();
              await waitUntil(async () => (await unpublishedCount(f)) === 0, { what: 'all three published' });
            });
            const report = checkDelivery(await expectedFromDb(f), bus.observed());
            assert.equal(report.exactlyOnce, 3, formatReport(report));
            assert.deepEqual(bus.concurrentPerAggregate, []);
          },
        ),
      ));

    test('drains a backlog many times its batch size with no poll tick and no NOTIFY', () =>
      withStore(factory, (f) =>
        withRelayBus({}, async (bus) => {
          bus.hold = true;
          await addAggregates(f, 16, 3);
          // The first mark waits until every ack of the first batch is in, so the next mark
          // covers most of the batch: most lanes retire in one go, while a claim is deciding.
          let firstMark = true;
          const store = {
            ...f.store,
            markPublished: async (ids: readonly string[]) => {
              if (firstMark) {
                firstMark = false;
                await waitUntil(() => bus.results.length >= 16, { what: 'all acks of the first batch' });
              }
              return f.store.markPublished(ids);
            },
          };
          // Only the start-up claim and the relay's own follow-up claims can move this backlog.
          const relay = createOutboxRelay({
            store,
            bus: bus.relayBus,
            batchSize: 16,
            pollIntervalMs: 600_000,
            listen: false,
          });
          await withRelay(relay, async () => {
            await waitUntil(() => bus.heldCount === 16, { what: 'the first batch in flight' });
            bus.hold = false;
            bus.releaseHeld();
            await waitUntil(async () => (await unpublishedCount(f)) === 0, {
              what: 'all 48 rows published',
              timeoutMs: 15_000,
            });
          });
          const report = checkDelivery(await expectedFromDb(f), bus.observed());
          assert.equal(report.exactlyOnce, 48, formatReport(report));
        }),
      ));

    test('a duplicate:true result (broker already had it) counts as published', () =>
      withStore(factory, (f) =>
        withRelayBus({}, async (bus) => {
          await addAggregates(f, 1, 3);
          const [first] = await expectedFromDb(f);
          // The broker stored the first event earlier (e.g. a crashed relay sent it).
          await bus.bus.publishEnvelope('orders', {
            eventId: first?.eventId as string,
            aggregateId: 'agg-0',
            eventType: 'TestEvent',
            eventVersion: 1,
            payload: { aggregateId: 'agg-0', index: 0 },
          });
          await waitUntil(() => bus.log().length === 1);
          const relay = createOutboxRelay({ store: f.store, bus: bus.relayBus, pollIntervalMs: 20 });
          await withRelay(relay, () =>
            waitUntil(async () => (await unpublishedCount(f)) === 0, { what: 'all rows published' }),
          );
          assert.equal(bus.log().length, 3);
          assert.equal(bus.results.filter((r) => r.duplicate).length, 1);
        }),
      ));

    test('rows committed after start go out on NOTIFY, without waiting for a poll', () =>
      withStore(factory, (f) =>
        withRelayBus({}, async (bus) => {
          const relay = createOutboxRelay({ store: f.store, bus: bus.relayBus, pollIntervalMs: 600_000 });
          await withRelay(relay, async () => {
            await waitUntil(() => relay.stats().pending !== undefined, { what: 'the relay to be up' });
            await addAggregates(f, 2, 2);
            await waitUntil(async () => (await unpublishedCount(f)) === 0, {
              what: 'rows published on NOTIFY (the poll interval is 10 minutes)',
              timeoutMs: 10_000,
            });
          });
        }),
      ));

    test('notify() publishes at once when LISTEN is off', () =>
      withStore(factory, (f) =>
        withRelayBus({}, async (bus) => {
          const relay = createOutboxRelay({
            store: f.store,
            bus: bus.relayBus,
            pollIntervalMs: 600_000,
            listen: false,
          });
          await withRelay(relay, async () => {
            await addAggregates(f, 2, 2);
            relay.notify();
            await waitUntil(async () => (await unpublishedCount(f)) === 0, {
              what: 'rows published on notify()',
            });
          });
        }),
      ));

    test('close waits for in-flight publishes, records them, and releases every other lease', () =>
      withStore(factory, (f) =>
        withRelayBus({}, async (bus) => {
          bus.hold = true;
          await addAggregates(f, 4, 5);
          const relay = createOutboxRelay({ store: f.store, bus: bus.relayBus, pollIntervalMs: 50 });
          await relay.start();
          await waitUntil(() => bus.heldCount === 4, { what: 'one publish per aggregate in flight' });
          const closing = relay.close({ timeoutMs: 10_000 });
          bus.releaseHeld();
          await closing;
          const rows = await f.query<{ published: boolean; claimed_by: string | null }>(
            'SELECT published_at IS NOT NULL AS published, claimed_by FROM eventbus_outbox',
          );
          assert.equal(rows.filter((r) => r.published).length, 4, 'the four acked rows are marked');
          assert.deepEqual(
            rows.filter((r) => r.claimed_by !== null),
            [],
            'no leases left behind',
          );
          assert.equal(relay.stats().state, 'closed');
          // A new relay picks up the rest at once (no lease to wait for).
          bus.hold = false;
          const next = createOutboxRelay({
            store: f.store,
            bus: bus.relayBus,
            pollIntervalMs: 50,
            leaseMs: 600_000,
          });
          await withRelay(next, () => waitUntil(async () => (await unpublishedCount(f)) === 0));
          const report = checkDelivery(await expectedFromDb(f), bus.observed());
          assert.equal(report.exactlyOnce, 20, formatReport(report));
        }),
      ));

    /** A running relay with one publish of each of two aggregates in flight, their acks held. */
    async function relayWithTwoHeld(f: StoreFixture, bus: TestRelayBus): Promise<OutboxRelay> {
      bus.hold = true;
      await addAggregates(f, 2, 2);
      const relay = createOutboxRelay({ store: f.store, bus: bus.relayBus, pollIntervalMs: 50 });
      await relay.start();
      await waitUntil(() => bus.heldCount === 2);
      return relay;
    }

    /** Rows still leased or marked published. */
    async function leasedOrMarked(f: StoreFixture): Promise<number | undefined> {
      const rows = await f.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM eventbus_outbox WHERE claimed_by IS NOT NULL OR published_at IS NOT NULL',
      );
      return rows[0]?.n;
    }

    test('close gives up on unconfirmed publishes at its deadline and releases them', () =>
      withStore(factory, (f) =>
        withRelayBus({}, async (bus) => {
          const relay = await relayWithTwoHeld(f, bus);
          await relay.close({ timeoutMs: 50 });
          assert.equal(await leasedOrMarked(f), 0);
        }),
      ));

    test('close({ signal }) gives up at the signal, long before its timeout; a bad option changes nothing', () =>
      withStore(factory, (f) =>
        withRelayBus({}, async (bus) => {
          const relay = await relayWithTwoHeld(f, bus);
          await assert.rejects(relay.close({ timeoutMs: -1 }), { code: 'EVENTBUS_INVALID_ARGUMENT' });
          assert.equal(relay.stats().state, 'running', 'a rejected close leaves the relay running');
          const stop = new AbortController();
          const closing = relay.close({ signal: stop.signal, timeoutMs: 600_000 });
          assert.equal(relay.stats().state, 'closing');
          stop.abort();
          await closing;
          assert.equal(relay.stats().state, 'closed');
          assert.equal(await leasedOrMarked(f), 0, 'the unconfirmed rows were released, none marked');
        }),
      ));

    test('abort leaves its leases; another relay takes over once they expire', () =>
      withStore(factory, (f) =>
        withRelayBus({}, async (bus) => {
          bus.hold = true;
          await addAggregates(f, 3, 4);
          const crashed = createOutboxRelay({
            store: f.store,
            bus: bus.relayBus,
            relayId: 'crashed',
            pollIntervalMs: 20,
            leaseMs: 400,
          });
          await crashed.start();
          await waitUntil(() => bus.heldCount === 3);
          crashed.abort();
          bus.hold = false;
          bus.releaseHeld(); // acks arrive after the crash: nobody records them
          const [held] = await f.query<{ n: number }>(
            "SELECT count(*)::int AS n FROM eventbus_outbox WHERE claimed_by = 'crashed' AND published_at IS NULL",
          );
          assert.ok((held?.n ?? 0) > 0, 'the crashed relay still holds leases');
          const next = createOutboxRelay({
            store: f.store,
            bus: bus.relayBus,
            relayId: 'next',
            pollIntervalMs: 20,
          });
          await withRelay(next, () => waitUntil(async () => (await unpublishedCount(f)) === 0));
          const report = checkDelivery(await expectedFromDb(f), bus.observed());
          assert.equal(report.exactlyOnce, 12, formatReport(report));
          assert.equal(
            bus.results.filter((r) => r.duplicate).length,
            3,
            'the three acked-but-unrecorded rows were re-sent',
          );
        }),
      ));

    test('warns (log, metric, stats) when the lag approaches the duplicate window', () =>
      withStore(factory, (f) =>
        withRelayBus({}, async (bus) => {
          bus.hold = true;
          await addAggregates(f, 1, 1);
          await f.query("UPDATE eventbus_outbox SET created_at = now() - interval '70 seconds'");
          const { logger, entries } = captureLogger();
          const lags: number[] = [];
          const pendings: number[] = [];
          const relay = createOutboxRelay({
            store: f.store,
            bus: bus.relayBus,
            logger,
            duplicateWindowMs: 120_000,
            statsIntervalMs: 20,
            metrics: { pending: (n) => pendings.push(n), lagSeconds: (s) => lags.push(s) },
          });
          await withRelay(relay, async () => {
            await waitUntil(() => relay.stats().lagWarning, { what: 'the lag warning' });
            assert.ok(
              entries.some(
                (e) => e.level === 'warn' && /approaches the stream duplicate window/.test(String(e.msg)),
              ),
            );
            assert.ok((lags.at(-1) ?? 0) >= 70);
            assert.equal(pendings.at(-1), 1);
            bus.hold = false; // the publish may not have gone out yet: ack it whenever it does
            bus.releaseHeld();
            await waitUntil(() => relay.stats().lagWarning === false, { what: 'the warning to clear' });
          });
        }),
      ));
  });
}

describe('outbox relay (postgres): LISTEN connection lost', () => {
  const factory = storeFactories.find((f) => f.kind === 'postgres');
  test('falls back to polling and listens again on a new connection', { skip: !factory }, () =>
    withStore(factory as (typeof storeFactories)[number], (f) =>
      withRelayBus({}, async (bus) => {
        const { logger, entries } = captureLogger();
        const relay = createOutboxRelay({ store: f.store, bus: bus.relayBus, pollIntervalMs: 50, logger });
        const listenerPids = async () =>
          (
            await f.query<{ pid: number }>(
              "SELECT pid FROM pg_stat_activity WHERE query = 'LISTEN eventbus_outbox' AND datname = current_database()",
            )
          ).map((r) => r.pid);
        await withRelay(relay, async () => {
          await waitUntil(async () => (await listenerPids()).length === 1, { what: 'the LISTEN connection' });
          const [first] = await listenerPids();
          await f.query('SELECT pg_terminate_backend($1)', [first]);
          await waitUntil(() => entries.some((e) => /LISTEN connection lost/.test(String(e.msg))), {
            what: 'the relay to notice',
          });
          await waitUntil(
            async () => {
              const pids = await listenerPids();
              return pids.length === 1 && pids[0] !== first;
            },
            { what: 'a new LISTEN connection' },
          );
          await addAggregates(f, 2, 2);
          await waitUntil(async () => (await unpublishedCount(f)) === 0, { what: 'rows published' });
        });
      }),
    ),
  );
});
