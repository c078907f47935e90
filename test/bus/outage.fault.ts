/**
 * A broker outage the application does nothing about (real nats-server, kill
 * -9 and a restart on the same port and store after 30 s and 90 s): a
 * publisher set up as in the README (onPublishResult only logs, no retry
 * code) publishes 100 events/s over 50 aggregates before, during and after.
 * Everything must be stored, in per-aggregate order, 0 lost, judged by the
 * order checker; health says degraded while publishes are retried and the
 * log gets one line per state change, not one per message.
 *
 * A fault suite (`npm run test:faults`), not part of `npm test`.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { formatReport } from '../../src/testing/checker.ts';
import { type NatsServerHandle, startNatsServer } from '../harness/nats-server.ts';
import { openOutageRig, PacedLoad } from './outage-kit.ts';

const RATE = 100;
const AGGREGATES = 50;
const STEADY_MS = 5_000;

describe('publishing through a broker outage (fault suite)', { timeout: 600_000 }, () => {
  let server: NatsServerHandle;
  before(async () => {
    server = await startNatsServer({ jetstream: true });
  });
  after(async () => {
    await server?.stop();
  });

  for (const outageMs of [30_000, 90_000]) {
    it(`kill -9, ${outageMs / 1000} s down, restart: all stored in per-aggregate order, 0 lost, no app retry code`, async () => {
      const topic = `outage-${randomUUID().slice(0, 6)}`;
      const rig = await openOutageRig(server.url, topic);
      try {
        const load = new PacedLoad(rig, topic, AGGREGATES);
        let phaseEnds = performance.now() + STEADY_MS;
        await load.run(RATE, () => performance.now() >= phaseEnds);
        await server.kill('SIGKILL');
        const downAt = performance.now();
        phaseEnds = downAt + outageMs;
        const statuses = new Set<string>();
        let maxRetrying = 0;
        let maxPending = 0;
        await load.run(RATE, () => {
          const h = rig.publisher.health();
          statuses.add(h.status);
          maxRetrying = Math.max(maxRetrying, h.retryingPublishes);
          maxPending = Math.max(maxPending, h.pendingPublishes);
          return performance.now() >= phaseEnds;
        });
        await server.restart();
        phaseEnds = performance.now() + STEADY_MS;
        await load.run(RATE, () => performance.now() >= phaseEnds);
        await rig.publisher.flush({ timeoutMs: 180_000 });
        await rig.drained.wait(180_000);
        const report = rig.checker.report();
        const failures = rig.results.filter((r) => !r.success);
        const maxAttempts = Math.max(...rig.results.map((r) => r.attempts));
        const warnLines = rig.publisherLog.filter((e) => e.level === 'warn' || e.level === 'error').length;
        const text = `${formatReport(report)} failures=${failures.length} maxAttempts=${maxAttempts} maxRetrying=${maxRetrying} maxPending=${maxPending} statuses=${[...statuses].join('/')} publisherWarnLines=${warnLines} healthAfter=${rig.publisher.health().status}`;
        process.stdout.write(`# fault outage ${outageMs / 1000}s: ${text}\n`);
        assert.equal(failures.length, 0, `${text} e.g. ${failures[0]?.error?.message}`);
        assert.equal(report.acknowledged, report.published, text);
        assert.equal(report.lost, 0, text);
        assert.equal(report.outOfOrder, 0, text);
        assert.equal(report.unexpected, 0, text);
        assert.ok(statuses.has('degraded'), `health said degraded during the outage: ${text}`);
        assert.equal(rig.publisher.health().retryingPublishes, 0, text);
        // One line per state change (disconnect, retrying, reconnect, flowing again), not per message.
        assert.ok(warnLines < 20, text);
      } finally {
        await rig.close();
      }
    });
  }
});
