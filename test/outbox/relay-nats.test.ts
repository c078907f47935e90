/**
 * The outbox against a real, spawned nats-server (JetStream, file storage):
 * eventId = row id = Nats-Msg-Id, so whatever a relay sends twice (after its
 * own crash) is stored once. Both stores. The server kill -9 under two relays
 * is in the fault tier (relay-nats-restart.fault.ts).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createOutboxRelay } from '../../src/outbox/relay.ts';
import { checkDelivery, formatReport } from '../../src/testing/checker.ts';
import {
  abortAfterAcks,
  expectedFromDb,
  stopPostgres,
  storeFactories,
  unpublishedCount,
  waitUntil,
  withStore,
} from './fixtures.ts';
import { readStream, withNats, writeEvents } from './nats-kit.ts';

after(stopPostgres);

for (const factory of storeFactories) {
  describe(`outbox on NATS JetStream (${factory.kind})`, () => {
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
          const acked = 600;
          const crashed = abortAfterAcks(crashBus, crashing, acked);
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
