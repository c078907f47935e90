/**
 * The outbox under a broker crash (fault tier): nats-server is killed with
 * SIGKILL under two relays and restarted; every committed row ends up once in
 * the stream (eventId = row id = Nats-Msg-Id) and marked published. Both stores.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { EventBus } from '../../src/core/types.ts';
import { createOutboxRelay, type OutboxRelay } from '../../src/outbox/relay.ts';
import { checkDelivery, formatReport } from '../../src/testing/checker.ts';
import {
  expectedFromDb,
  stopPostgres,
  storeFactories,
  unpublishedCount,
  waitUntil,
  withStore,
} from './fixtures.ts';
import { fastBackoff, readStream, withNats, writeEvents } from './nats-kit.ts';

after(stopPostgres);

for (const factory of storeFactories) {
  describe(`outbox on NATS JetStream under a server kill -9 (${factory.kind})`, () => {
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
  });
}
