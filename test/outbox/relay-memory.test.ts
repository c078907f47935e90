/**
 * The outbox end to end on the real bus (in-memory transport, shared broker):
 * app transactions → relays (each with its own bus and store connection, like
 * separate processes) → broker stream → a consumer bus. Both stores.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createEventBus } from '../../src/bus/create-event-bus.ts';
import { decodeEnvelope, type Envelope } from '../../src/core/envelope.ts';
import type { EventBus, PublishResult } from '../../src/core/types.ts';
import { createOutboxRelay } from '../../src/outbox/relay.ts';
import { checkDelivery, formatReport } from '../../src/testing/checker.ts';
import { createMemoryBroker, type MemoryBroker } from '../../src/transports/memory/index.ts';
import {
  abortAfterAcks,
  eventsFor,
  expectedFromDb,
  type StoreFixture,
  stopPostgres,
  storeFactories,
  unpublishedCount,
  waitUntil,
  withStore,
} from './fixtures.ts';

after(stopPostgres);

const TOPIC = 'orders';

interface Harness {
  readonly broker: MemoryBroker;
  readonly buses: EventBus[];
  readonly results: PublishResult[];
  bus(clientId: string, chaos?: { duplicateRate: number; seed: number }): Promise<EventBus>;
  /** The broker's stored stream, decoded, in stream order. */
  stream(): Envelope[];
  close(): Promise<void>;
}

function harness(): Harness {
  const broker = createMemoryBroker();
  const buses: EventBus[] = [];
  const results: PublishResult[] = [];
  return {
    broker,
    buses,
    results,
    async bus(clientId, chaos) {
      const bus = await createEventBus({
        transport: 'memory',
        clientId,
        memory: chaos ? { broker, chaos } : { broker },
        metrics: { enabled: false },
        onPublishResult: (r) => results.push(r),
      });
      buses.push(bus);
      return bus;
    },
    stream: () => broker.messages(TOPIC).map((m) => decodeEnvelope(m.data)),
    async close() {
      await Promise.all(buses.map((b) => b.close({ timeoutMs: 5000 })));
    },
  };
}

async function withHarness<T>(fn: (h: Harness) => Promise<T>): Promise<T> {
  const h = harness();
  try {
    return await fn(h);
  } finally {
    await h.close();
  }
}

/** `perAggregate` transactions, each adding the next event of every aggregate. */
async function writeEvents(f: StoreFixture, aggregates: number, perAggregate: number): Promise<void> {
  for (let i = 0; i < perAggregate; i++) {
    await f.store.transaction((tx) =>
      f.store.add(
        tx,
        Array.from({ length: aggregates }, (_, a) => eventsFor(TOPIC, `agg-${a}`, i, 1)).flat(),
      ),
    );
  }
}

async function publishedCount(f: StoreFixture): Promise<number> {
  const [row] = await f.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM eventbus_outbox WHERE published_at IS NOT NULL',
  );
  return Number(row?.n ?? 0);
}

for (const factory of storeFactories) {
  describe(`outbox on the memory bus (${factory.kind})`, () => {
    test('a rolled-back transaction publishes nothing; a committed one is published', () =>
      withStore(factory, (f) =>
        withHarness(async (h) => {
          const relay = createOutboxRelay({ store: f.store, bus: await h.bus('relay'), pollIntervalMs: 50 });
          await relay.start();
          try {
            await assert.rejects(
              f.store.transaction(async (tx) => {
                await f.store.add(tx, eventsFor(TOPIC, 'rolled-back', 0, 5));
                throw new Error('rollback');
              }),
            );
            // A later committed event: once it is in the stream, the relay has seen everything before it.
            const [marker] = await f.store.transaction((tx) =>
              f.store.add(tx, eventsFor(TOPIC, 'committed', 0, 1)),
            );
            await waitUntil(() => h.stream().some((e) => e.eventId === marker?.eventId), {
              what: 'the committed event in the stream',
            });
            assert.deepEqual(
              h.stream().map((e) => e.aggregateId),
              ['committed'],
            );
            await waitUntil(async () => (await unpublishedCount(f)) === 0);
            assert.deepEqual(
              (await f.query<{ aggregate_id: string }>('SELECT aggregate_id FROM eventbus_outbox')).map(
                (r) => r.aggregate_id,
              ),
              ['committed'],
            );
          } finally {
            await relay.close();
          }
        }),
      ));

    test('10,000 events over 100 aggregates, two relays: each published once, in order per aggregate', () =>
      withStore(factory, (f) =>
        withHarness(async (h) => {
          const aggregates = 100;
          const perAggregate = 100;
          const total = aggregates * perAggregate;
          const consumer = await h.bus('consumer');
          const seen: { eventId: string }[] = [];
          await consumer.subscribeEnvelope(
            TOPIC,
            (e) => {
              seen.push({ eventId: e.eventId });
            },
            { group: 'checker' },
          );
          // Each relay may hold at most 50 rows (so at most 50 of the 100 aggregates): both must work.
          const relay = async (id: string) =>
            createOutboxRelay({
              store: f.openStore(),
              bus: await h.bus(id),
              relayId: id,
              pollIntervalMs: 100,
              batchSize: 50,
            });
          const relays = [await relay('relay-a'), await relay('relay-b')];
          await Promise.all(relays.map((r) => r.start()));
          const startedAt = performance.now();
          try {
            await writeEvents(f, aggregates, perAggregate); // while both relays run
            const writtenAt = performance.now();
            await waitUntil(async () => (await unpublishedCount(f)) === 0, {
              what: 'every row marked published',
              timeoutMs: 60_000,
            });
            const doneAt = performance.now();
            await waitUntil(() => seen.length >= total, { what: 'the consumer to see every event' });
            const expected = await expectedFromDb(f);
            assert.equal(expected.length, total);

            // The broker stream: every committed row stored once, per-aggregate order kept.
            const stream = checkDelivery(expected, h.stream());
            assert.equal(stream.exactlyOnce, total, `stream: ${formatReport(stream)}`);
            // The consumer: every event handled once, in order per aggregate.
            const consumed = checkDelivery(expected, seen);
            assert.equal(consumed.exactlyOnce, total, `consumer: ${formatReport(consumed)}`);
            // Publishing: exactly one successful, non-duplicate result per event across both relays.
            const stored = new Map<string, number>();
            for (const r of h.results)
              if (r.success && !r.duplicate) stored.set(r.eventId, (stored.get(r.eventId) ?? 0) + 1);
            assert.equal(stored.size, total);
            assert.ok([...stored.values()].every((n) => n === 1));
            const stats = relays.map((r) => r.stats());
            assert.equal(
              stats.reduce((n, s) => n + s.published, 0),
              total,
              'the relays marked every row, none twice',
            );
            assert.ok(
              stats.every((s) => s.published > 0),
              `both relays took part: ${stats.map((s) => s.published).join(' / ')}`,
            );
            console.log(
              `[outbox ${factory.kind}] 2 relays (batchSize 50), ${total} events / ${aggregates} aggregates: ` +
                `written in ${Math.round(writtenAt - startedAt)} ms, all published ${Math.round(doneAt - startedAt)} ms after start ` +
                `(${Math.round(total / ((doneAt - startedAt) / 1000))} rows/s end to end); split ${stats.map((s) => s.published).join(' / ')}`,
            );
          } finally {
            await Promise.all(relays.map((r) => r.close()));
          }
        }),
      ));

    test('relay crash mid-batch: after its leases expire every committed row is in the stream once and published', () =>
      withStore(factory, (f) =>
        withHarness(async (h) => {
          const aggregates = 20;
          const perAggregate = 100;
          const total = aggregates * perAggregate;
          await writeEvents(f, aggregates, perAggregate);
          const leaseMs = 1500;
          const crashBus = await h.bus('relay-crashing');
          const crashing = createOutboxRelay({
            store: f.openStore(),
            bus: crashBus,
            relayId: 'crashing',
            leaseMs,
            pollIntervalMs: 50,
          });
          // Crash once 500 publishes were acked: some marked, some acked but unrecorded, some unsent.
          const acked = 500;
          const crashed = abortAfterAcks(crashBus, crashing, acked);
          await crashing.start();
          await crashed;
          const crashedAt = performance.now();
          const [atCrash] = await f.query<{ published: number; leased: number }>(
            `SELECT count(*) FILTER (WHERE published_at IS NOT NULL)::int AS published,
                    count(*) FILTER (WHERE published_at IS NULL AND claimed_by = 'crashing' AND claimed_until > now())::int AS leased
             FROM eventbus_outbox`,
          );
          assert.ok((atCrash?.leased ?? 0) > 0, 'the crashed relay left leases behind');

          const takeoverBus = await h.bus('relay-takeover');
          const takeover = createOutboxRelay({
            store: f.openStore(),
            bus: takeoverBus,
            relayId: 'takeover',
            pollIntervalMs: 50,
          });
          await takeover.start();
          try {
            await waitUntil(async () => (await unpublishedCount(f)) === 0, {
              what: 'every row published after the takeover',
              timeoutMs: 60_000,
            });
            const recoveredMs = performance.now() - crashedAt;
            const expected = await expectedFromDb(f);
            const stream = checkDelivery(expected, h.stream());
            assert.equal(stream.exactlyOnce, total, `stream: ${formatReport(stream)}`);
            assert.equal(await publishedCount(f), total);
            const republished = h.results.filter((r) => r.success && r.duplicate).length;
            const takeoverStats = takeover.stats();
            console.log(
              `[outbox ${factory.kind}] crash after ${acked} acks: ${atCrash?.published} rows marked, ` +
                `${atCrash?.leased} rows left leased (lease ${leaseMs} ms); takeover published ${takeoverStats.published} rows, ` +
                `${republished} of them re-sent and de-duplicated by the broker; all ${total} published ${Math.round(recoveredMs)} ms after the crash`,
            );
          } finally {
            await takeover.close();
          }
        }),
      ));

    test('inbox under redelivery: the side effect happens once per event', () =>
      withStore(factory, (f) =>
        withHarness(async (h) => {
          await f.query('CREATE TABLE projection (event_id text PRIMARY KEY, aggregate_id text, index int)');
          const total = 300;
          await writeEvents(f, 10, total / 10);
          const relay = createOutboxRelay({ store: f.store, bus: await h.bus('relay'), pollIntervalMs: 50 });
          await relay.start();
          // A consumer whose acks get "lost" 30% of the time: those events are delivered again.
          const consumer = await h.bus('consumer', { duplicateRate: 0.3, seed: 7 });
          const deliveries = new Map<string, number>();
          let started = 0;
          let finished = 0;
          let applied = 0;
          await consumer.subscribeEnvelope<{ aggregateId: string; index: number }>(
            TOPIC,
            async (e) => {
              started++;
              deliveries.set(e.eventId, (deliveries.get(e.eventId) ?? 0) + 1);
              const first = await f.store.transaction((tx) =>
                f.store.processOnce(
                  tx,
                  e.eventId,
                  async () => {
                    await (tx as { query(t: string, p: unknown[]): Promise<unknown> }).query(
                      'INSERT INTO projection VALUES ($1, $2, $3)',
                      [e.eventId, e.payload.aggregateId, e.payload.index],
                    );
                  },
                  { consumer: 'projection' },
                ),
              );
              if (first) applied++;
              finished++;
            },
            { group: 'projection' },
          );
          try {
            await waitUntil(() => deliveries.size === total && started === finished && finished > total, {
              what: 'every event delivered, some of them again, no handler running',
            });
            const redelivered = finished - total;
            assert.ok(redelivered > 0, 'the chaos transport redelivered events');
            assert.equal(
              applied,
              total,
              'processOnce ran the side effect once per event, skipping every redelivery',
            );
            const [{ n, distinct }] = (await f.query<{ n: number; distinct: number }>(
              'SELECT count(*)::int AS n, count(DISTINCT event_id)::int AS distinct FROM projection',
            )) as [{ n: number; distinct: number }];
            assert.equal(n, total, 'one projection row per event');
            assert.equal(distinct, total);
            await waitUntil(async () => (await unpublishedCount(f)) === 0);
          } finally {
            await relay.close();
          }
        }),
      ));

    test('relay throughput (printed, not asserted)', () =>
      withStore(factory, (f) =>
        withHarness(async (h) => {
          const aggregates = 100;
          const perAggregate = 50;
          const total = aggregates * perAggregate;
          await writeEvents(f, aggregates, perAggregate);
          const relay = createOutboxRelay({ store: f.store, bus: await h.bus('relay'), pollIntervalMs: 100 });
          const startedAt = performance.now();
          await relay.start();
          try {
            await waitUntil(async () => (await unpublishedCount(f)) === 0, {
              what: 'the backlog drained',
              timeoutMs: 60_000,
            });
          } finally {
            await relay.close();
          }
          const seconds = (performance.now() - startedAt) / 1000;
          const stream = checkDelivery(await expectedFromDb(f), h.stream());
          assert.equal(stream.exactlyOnce, total, formatReport(stream));
          console.log(
            `[outbox ${factory.kind}] relay throughput: ${total} rows / ${aggregates} aggregates drained in ${seconds.toFixed(2)} s = ${Math.round(total / seconds)} rows/s (1 relay, batchSize 1000, memory bus)`,
          );
        }),
      ));
  });
}
