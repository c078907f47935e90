/**
 * The publish deadline with the broker gone (real nats-server, kill -9): each
 * accepted event gets exactly one failure result, in per-aggregate order, the
 * bus stays usable, and once the server is back new events are stored in
 * order (judged by the order checker). `publishEnvelopeAndWait` rejects with
 * the typed error at the deadline.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { PublishHeldError, TimeoutError } from '../../src/index.ts';
import { formatReport } from '../../src/testing/checker.ts';
import { until } from '../../src/testing/index.ts';
import { type NatsServerHandle, startNatsServer } from '../harness/nats-server.ts';
import { openOutageRig, PacedLoad } from './outage-kit.ts';

const AGGREGATES = 4;
const PER_AGGREGATE = 5;

describe('publish deadline with the broker gone (nats)', () => {
  let server: NatsServerHandle;
  before(async () => {
    server = await startNatsServer({ jetstream: true });
  });
  after(async () => {
    await server?.stop();
  });

  it('each event fails exactly once, in order; the bus keeps working after the server returns', async () => {
    const topic = `deadline-${randomUUID().slice(0, 6)}`;
    const rig = await openOutageRig(server.url, topic, {
      publishDeadlineMs: 2_000,
      nats: { servers: server.url, publishTimeoutMs: 300, publishRetries: 1, reconnectTimeWaitMs: 200 },
    });
    try {
      const load = new PacedLoad(rig, topic, AGGREGATES);
      await load.publish(AGGREGATES); // index 0 of each, stored
      await rig.publisher.flush({ timeoutMs: 10_000 });
      await server.kill('SIGKILL');

      const before = rig.results.length;
      const all = until(
        () => rig.results.length >= before + AGGREGATES * PER_AGGREGATE,
        () => `${rig.results.length - before} of ${AGGREGATES * PER_AGGREGATE} results`,
      );
      const tick = setInterval(() => all.check(), 50);
      await load.publish(AGGREGATES * PER_AGGREGATE);
      const waitedId = randomUUID();
      rig.checker.expect(waitedId, 'waited', 0);
      const waited = rig.publisher
        .publishEnvelopeAndWait(topic, {
          eventId: waitedId,
          aggregateId: 'waited',
          eventType: 'T',
          eventVersion: 0,
          payload: { index: 0 },
        })
        .then(
          () => undefined,
          (error: unknown) => error,
        );
      await all.wait(30_000);
      clearInterval(tick);
      const rejection = await waited;
      assert.ok(
        rejection instanceof TimeoutError,
        `publishEnvelopeAndWait rejects at the deadline: ${String(rejection)}`,
      );

      const failed = rig.results.slice(before).filter((r) => r.aggregateId !== 'waited');
      assert.equal(failed.length, AGGREGATES * PER_AGGREGATE);
      assert.equal(new Set(failed.map((r) => r.eventId)).size, failed.length, 'exactly one result per event');
      for (let k = 0; k < AGGREGATES; k++) {
        const mine = failed.filter((r) => r.aggregateId === `agg-${k}`);
        assert.deepEqual(
          mine.map((r) => r.envelope?.eventVersion),
          [1, 2, 3, 4, 5],
          `agg-${k}: failures in order, each with its envelope`,
        );
        assert.ok(mine[0]?.error instanceof TimeoutError, String(mine[0]?.error));
        for (const r of mine.slice(1)) assert.ok(r.error instanceof PublishHeldError, String(r.error));
        assert.ok((mine[0]?.attempts ?? 0) >= 2, 'the head was retried before the deadline');
      }
      assert.equal(rig.publisher.health().retryingPublishes, 0);

      await server.restart();
      await load.publish(AGGREGATES * PER_AGGREGATE);
      await rig.publisher.flush({ timeoutMs: 30_000 });
      await rig.drained.wait(30_000);
      const report = rig.checker.report();
      const text = formatReport(report);
      process.stdout.write(`# deadline: ${text} failedResults=${failed.length}\n`);
      assert.equal(report.acknowledged, AGGREGATES * (1 + PER_AGGREGATE), text);
      assert.equal(report.lost, 0, text);
      assert.equal(report.outOfOrder, 0, text);
      assert.equal(report.unexpected, 0, text);
    } finally {
      await rig.close();
    }
  });
});
