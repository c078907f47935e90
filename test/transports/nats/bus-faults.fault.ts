/**
 * Bus-level fault tests against a real nats-server, judged by the order
 * checker (lost / unexpected / duplicated / out of order), bounded in count
 * and time. Figures are printed as `# fault:` lines for the closing notes.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createEventBus, type EventBus, type PublishResult } from '../../../src/index.ts';
import {
  createOrderChecker,
  deferred,
  formatReport,
  type OrderChecker,
  until,
} from '../../../src/testing/index.ts';
import { type NatsServerHandle, startNatsServer } from '../../harness/nats-server.ts';

/** Resolves each publish's result by eventId, so a publisher can wait for its ack and retry the same id. */
class ResultWaiter {
  readonly #waiting = new Map<string, { resolve: (r: PublishResult) => void; since: number }>();
  /** Longest time from a publish call to its result. */
  slowest = 0;
  readonly onResult = (r: PublishResult): void => {
    const w = this.#waiting.get(r.eventId);
    if (w) {
      this.#waiting.delete(r.eventId);
      this.slowest = Math.max(this.slowest, performance.now() - w.since);
      w.resolve(r);
    }
  };
  wait(eventId: string): Promise<PublishResult> {
    return new Promise((resolve) => this.#waiting.set(eventId, { resolve, since: performance.now() }));
  }
}

/**
 * Publishes `perKey` envelopes for one aggregate, each acknowledged before the
 * next (Watermill's Reconnect publisher); a failed or unknown outcome is
 * retried with the same eventId until the broker acknowledges it.
 */
async function publishAggregate(
  bus: EventBus,
  results: ResultWaiter,
  topic: string,
  key: string,
  perKey: number,
  checker: OrderChecker,
  onAcked: () => Promise<void> | void,
  stats: { attempts: number; failures: number },
  retryDelayMs = 0,
): Promise<void> {
  for (let i = 0; i < perKey; i++) {
    const eventId = randomUUID();
    checker.expect(eventId, key, i);
    for (;;) {
      stats.attempts++;
      const result = results.wait(eventId);
      try {
        await bus.publishEnvelope(topic, {
          eventId,
          aggregateId: key,
          eventType: 'T',
          eventVersion: i,
          payload: { i },
        });
      } catch {
        stats.failures++;
        continue;
      }
      const r = await result;
      if (r.success) {
        checker.acknowledged(eventId);
        await onAcked();
        break;
      }
      stats.failures++;
      checker.failed(eventId);
      if (retryDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, retryDelayMs));
    }
  }
}

describe('nats faults (bus level)', { timeout: 300_000 }, () => {
  let server: NatsServerHandle;
  const open: EventBus[] = [];
  const bus = async (clientId: string, extra: Record<string, unknown> = {}): Promise<EventBus> => {
    const { nats, ...rest } = extra;
    const b = await createEventBus({
      transport: 'nats',
      clientId,
      metrics: { enabled: false },
      ...rest,
      nats: { servers: server.url, publishTimeoutMs: 2000, publishRetries: 2, ...(nats as object) },
    } as never);
    open.push(b);
    return b;
  };

  before(async () => {
    server = await startNatsServer({ jetstream: true });
  });
  after(async () => {
    await Promise.all(open.map((b) => b.close({ timeoutMs: 5000 })));
    await server?.stop();
  });

  it('Reconnect: 10,000 envelopes, 100 publishers, kill -9 at 3,333 and 5,000 acked → nothing acked is lost, 0 out of order', async () => {
    const topic = `fault-reconnect-${randomUUID().slice(0, 6)}`;
    const checker = createOrderChecker();
    const results = new ResultWaiter();
    const producer = await bus('reconnect-p', { onPublishResult: results.onResult });
    const consumer = await bus('reconnect-c');
    const done = until(
      () => checker.expectedCount() === 10_000 && checker.outstanding() === 0,
      () => formatReport(checker.report()),
    );
    await consumer.subscribeEnvelope(topic, (e) => {
      checker.observe(e.eventId, e.aggregateId, e.eventVersion);
      done.check();
    });
    let acked = 0;
    const kills = [3333, 5000];
    let restarting: Promise<void> | undefined;
    const stats = { attempts: 0, failures: 0 };
    const onAcked = async (): Promise<void> => {
      acked++;
      if (kills[0] !== undefined && acked >= kills[0]) {
        kills.shift();
        restarting = (async () => {
          await server.kill('SIGKILL');
          await server.restart();
        })();
      }
      if (restarting) await restarting;
    };
    await Promise.all(
      Array.from({ length: 100 }, (_, k) =>
        publishAggregate(producer, results, topic, `agg-${k}`, 100, checker, onAcked, stats),
      ),
    );
    done.check();
    await done.wait(120_000);
    const r = checker.report();
    process.stdout.write(
      `# fault reconnect: attempts=${stats.attempts} failed-or-unknown=${stats.failures} ${formatReport(r)}\n`,
    );
    assert.equal(kills.length, 0, 'both kills happened');
    assert.equal(r.lost, 0, formatReport(r));
    assert.equal(r.unexpected, 0, formatReport(r));
    assert.equal(r.outOfOrder, 0, formatReport(r));
    assert.equal(r.acknowledged, 10_000);
  });

  it('pipelined publishing (many in flight per aggregate) through a kill -9 → stream order per aggregate holds', async () => {
    const topic = `fault-pipelined-${randomUUID().slice(0, 6)}`;
    const checker = createOrderChecker();
    const producer = await bus('pipelined-p', {
      onPublishResult: (r: PublishResult) =>
        r.success ? checker.acknowledged(r.eventId) : checker.failed(r.eventId),
    });
    const consumer = await bus('pipelined-c');
    const total = 20_000;
    const done = until(
      () => checker.expectedCount() === total && checker.outstanding() === 0,
      () => formatReport(checker.report()),
    );
    await consumer.subscribeEnvelope(topic, (e) => {
      checker.observe(e.eventId, e.aggregateId, e.eventVersion);
      done.check();
    });
    let restarted: Promise<void> | undefined;
    for (let i = 0; i < total; i++) {
      const eventId = randomUUID();
      const key = `p-${i % 20}`;
      checker.expect(eventId, key, Math.floor(i / 20));
      await producer.publishEnvelope(topic, {
        eventId,
        aggregateId: key,
        eventType: 'T',
        eventVersion: i,
        payload: i,
      });
      if (i === 8000) {
        restarted = (async () => {
          await server.kill('SIGKILL');
          await server.restart();
        })();
      }
    }
    await restarted;
    await producer.flush({ timeoutMs: 60_000 });
    done.check();
    await done.wait(120_000);
    const r = checker.report();
    process.stdout.write(`# fault pipelined kill -9: ${formatReport(r)}\n`);
    assert.equal(r.lost, 0, formatReport(r));
    assert.equal(r.outOfOrder, 0, formatReport(r));
    assert.equal(r.unexpected, 0, formatReport(r));
  });

  it('SIGSTOP for 8 s, then SIGCONT: every publish settles within its timeout, nothing lost, processing resumes', async () => {
    const topic = `fault-stop-${randomUUID().slice(0, 6)}`;
    const checker = createOrderChecker();
    const results = new ResultWaiter();
    // 1 s timeout × 2 attempts per transport send, and a 2 s bus deadline (the bus stops retrying
    // then): every outcome is due well before the server comes back after 8 s.
    const producer = await bus('stop-p', {
      publishDeadlineMs: 2000,
      nats: { publishTimeoutMs: 1000, publishRetries: 1 },
      onPublishResult: results.onResult,
    });
    const consumer = await bus('stop-c');
    const done = until(
      () => checker.expectedCount() === 2000 && checker.outstanding() === 0,
      () => formatReport(checker.report()),
    );
    await consumer.subscribeEnvelope(topic, (e) => {
      checker.observe(e.eventId, e.aggregateId, e.eventVersion);
      done.check();
    });
    let acked = 0;
    let stopped = false;
    const resumed = deferred();
    const stats = { attempts: 0, failures: 0 };
    // 50 aggregates × 40 events; each publisher waits for its ack and retries the same eventId
    // (every 500 ms, its retry policy) before the aggregate's next event: the documented way to
    // keep an aggregate's order across failures.
    await Promise.all(
      Array.from({ length: 50 }, (_, k) =>
        publishAggregate(
          producer,
          results,
          topic,
          `s-${k}`,
          40,
          checker,
          async () => {
            acked++;
            if (!stopped && acked >= 500) {
              stopped = true;
              await server.kill('SIGSTOP');
              setTimeout(() => {
                void server.kill('SIGCONT').then(() => resumed.resolve());
              }, 8000);
            }
          },
          stats,
          500,
        ),
      ),
    );
    await resumed.promise;
    done.check();
    await done.wait(120_000);
    const r = checker.report();
    // The 2 s deadline plus the attempt on the wire at that moment (publishTimeoutMs 1000 ×
    // (1 + 1 retry)) bounds every outcome, plus scheduling slack — below the 8 s stop, so no
    // result waited for the server to come back.
    const bound = 2000 + 1000 * 2 + 3000;
    process.stdout.write(
      `# fault sigstop: slowest result ${Math.round(results.slowest)} ms (bound ${bound}), attempts=${stats.attempts} failed-or-unknown=${stats.failures}; ${formatReport(r)}\n`,
    );
    assert.ok(stats.failures > 0, 'the stop was long enough to time publishes out');
    assert.ok(results.slowest <= bound, `a publish took ${Math.round(results.slowest)} ms to settle`);
    assert.equal(r.acknowledged, 2000, formatReport(r));
    assert.equal(r.lost, 0, formatReport(r));
    assert.equal(r.unexpected, 0, formatReport(r));
    assert.equal(r.outOfOrder, 0, formatReport(r));
  });
});
