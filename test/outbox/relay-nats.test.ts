/**
 * The outbox against a real, spawned nats-server (JetStream, file storage):
 * eventId = row id = Nats-Msg-Id, so whatever a relay sends twice (after a
 * server kill -9, after its own crash) is stored once. Both stores.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { createEventBus } from '../../src/bus/create-event-bus.ts';
import { decodeEnvelope } from '../../src/core/envelope.ts';
import type { EventBus, PublishResult } from '../../src/core/types.ts';
import { createOutboxRelay, type OutboxRelay } from '../../src/outbox/relay.ts';
import { checkDelivery, formatReport } from '../../src/testing/checker.ts';
import { type NatsServerHandle, startNatsServer } from '../harness/nats-server.ts';
import {
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
const STREAM = 'EVENTBUS_orders';

interface StreamEntry {
  readonly eventId: string;
  readonly msgId: string;
}

/** Every message of the stream, in stream order (an ordered consumer). */
async function readStream(url: string): Promise<StreamEntry[]> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    const total = (await jsm.streams.info(STREAM)).state.messages;
    const consumer = await jetstream(nc).consumers.get(STREAM);
    const out: StreamEntry[] = [];
    while (out.length < total) {
      const batch = await consumer.fetch({ max_messages: Math.min(2000, total - out.length), expires: 2000 });
      let got = 0;
      for await (const m of batch) {
        got++;
        out.push({ eventId: decodeEnvelope(m.data).eventId, msgId: m.headers?.get('Nats-Msg-Id') ?? '' });
      }
      if (got === 0) break;
    }
    return out;
  } finally {
    await nc.close();
  }
}

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

interface NatsHarness {
  readonly server: NatsServerHandle;
  readonly results: PublishResult[];
  bus(clientId: string): Promise<EventBus>;
  close(): Promise<void>;
}

async function withNats<T>(fn: (h: NatsHarness) => Promise<T>): Promise<T> {
  const server = await startNatsServer({ jetstream: true });
  const buses: EventBus[] = [];
  const results: PublishResult[] = [];
  const h: NatsHarness = {
    server,
    results,
    async bus(clientId) {
      const bus = await createEventBus({
        transport: 'nats',
        clientId,
        // Short PubAck timeouts so an outage turns into failed results (and relay retries) quickly.
        nats: { servers: server.url, publishTimeoutMs: 1000, publishRetries: 1 },
        metrics: { enabled: false },
        onPublishResult: (r) => results.push(r),
      });
      buses.push(bus);
      return bus;
    },
    async close() {
      await Promise.all(buses.map((b) => b.close({ timeoutMs: 5000 })));
      await server.stop();
    },
  };
  try {
    return await fn(h);
  } finally {
    await h.close();
  }
}

const fastBackoff = { initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0.2 };

for (const factory of storeFactories) {
  describe(`outbox on NATS JetStream (${factory.kind})`, () => {
    test('nats-server kill -9 and restart under two relays: each committed row once in the stream, all published', () =>
      withStore(factory, (f) =>
        withNats(async (h) => {
          const aggregates = 50;
          const perAggregate = 60;
          const total = aggregates * perAggregate;
          await writeEvents(f, aggregates, perAggregate);
          const relays: OutboxRelay[] = [];
          const buses: EventBus[] = [];
          for (const id of ['relay-a', 'relay-b']) {
            const bus = await h.bus(id);
            buses.push(bus);
            relays.push(
              createOutboxRelay({
                store: f.openStore(),
                bus,
                relayId: id,
                batchSize: 40,
                pollIntervalMs: 100,
                backoff: fastBackoff,
              }),
            );
          }
          let killed: Promise<void> | undefined;
          let killedAt = 0;
          const onProgress = setInterval(() => {
            const ok = h.results.filter((r) => r.success).length;
            if (killed === undefined && ok >= total / 3) {
              killedAt = performance.now();
              // Down long enough for in-flight publishes to time out and be retried by the buses.
              killed = h.server
                .kill('SIGKILL')
                .then(() =>
                  waitUntil(() => buses.some((b) => b.health().retryingPublishes > 0), {
                    what: 'publishes being retried while the server is down',
                  }),
                )
                .then(() => h.server.restart());
            }
          }, 5);
          try {
            await Promise.all(relays.map((r) => r.start()));
            await waitUntil(() => killed !== undefined, {
              what: 'a third of the events acked',
              timeoutMs: 60_000,
            });
            await killed;
            const restartedAt = performance.now();
            await waitUntil(async () => (await unpublishedCount(f)) === 0, {
              what: 'every row published after the restart',
              timeoutMs: 90_000,
            });
            const doneAt = performance.now();
            const stream = await readStream(h.server.url);
            const report = checkDelivery(await expectedFromDb(f), stream);
            assert.equal(report.exactlyOnce, total, `stream: ${formatReport(report)}`);
            assert.ok(
              stream.every((m) => m.msgId === m.eventId),
              'Nats-Msg-Id = eventId = outbox row id',
            );
            const failed = h.results.filter((r) => !r.success);
            assert.equal(failed.length, 0, 'the buses rode out the outage: no failure reached the relays');
            const duplicates = h.results.filter((r) => r.success && r.duplicate).length;
            const stats = relays.map((r) => r.stats());
            assert.equal(
              stats.reduce((n, s) => n + s.published, 0),
              total,
            );
            console.log(
              `[outbox ${factory.kind} + NATS] kill -9 after ${total / 3} acks: server down for ${Math.round(restartedAt - killedAt)} ms, ` +
                `${failed.length} failed results, max ${Math.max(...h.results.map((r) => r.attempts))} attempts by the bus, ` +
                `${duplicates} re-sends answered duplicate; all ${total} rows published ${Math.round(doneAt - killedAt)} ms after the kill; ` +
                `stream holds each once (${stream.length} messages); split ${stats.map((s) => s.published).join(' / ')}`,
            );
          } finally {
            clearInterval(onProgress);
            await Promise.all(relays.map((r) => r.close({ timeoutMs: 5000 })));
          }
        }),
      ));

    test('relay crash mid-batch: the takeover re-sends what the crashed relay had not recorded; the stream holds each row once', () =>
      withStore(factory, (f) =>
        withNats(async (h) => {
          const aggregates = 20;
          const perAggregate = 100;
          const total = aggregates * perAggregate;
          await writeEvents(f, aggregates, perAggregate);
          const crashBus = await h.bus('relay-crashing');
          const crashing = createOutboxRelay({
            store: f.openStore(),
            bus: crashBus,
            relayId: 'crashing',
            leaseMs: 1500,
            pollIntervalMs: 50,
          });
          let acked = 0;
          const crashed = new Promise<void>((resolve) => {
            const results = crashBus.publishResults();
            void (async () => {
              for await (const r of results) {
                if (r.success && ++acked === 600) {
                  crashing.abort();
                  results.close();
                  resolve();
                }
              }
            })();
          });
          await crashing.start();
          await crashed;
          const crashedAt = performance.now();
          const takeover = createOutboxRelay({
            store: f.openStore(),
            bus: await h.bus('relay-takeover'),
            relayId: 'takeover',
            pollIntervalMs: 50,
          });
          await takeover.start();
          try {
            await waitUntil(async () => (await unpublishedCount(f)) === 0, {
              what: 'every row published after the takeover',
              timeoutMs: 60_000,
            });
            const stream = await readStream(h.server.url);
            const report = checkDelivery(await expectedFromDb(f), stream);
            assert.equal(report.exactlyOnce, total, `stream: ${formatReport(report)}`);
            assert.equal(stream.length, total);
            const duplicates = h.results.filter((r) => r.success && r.duplicate).length;
            console.log(
              `[outbox ${factory.kind} + NATS] relay crash after ${acked} acks: takeover published ${takeover.stats().published} rows, ` +
                `${duplicates} re-sends de-duplicated by Nats-Msg-Id; all ${total} published ${Math.round(performance.now() - crashedAt)} ms after the crash`,
            );
          } finally {
            await takeover.close();
          }
        }),
      ));
  });
}
