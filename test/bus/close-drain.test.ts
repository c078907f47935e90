/**
 * close() as one graceful path (real nats-server): handlers in flight when
 * close() starts may still publish follow-ups (accepted and flushed); those
 * that do not finish within the deadline are left for redelivery, never
 * dead-lettered because of the close; the next bus of the group processes
 * them. Judged by the order checker on the follow-ups: every source event
 * has one (nothing acked that was not processed), in per-aggregate order.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createEventBus, type Envelope, type EventBus, type MessageContext } from '../../src/index.ts';
import { createOrderChecker, formatReport } from '../../src/testing/checker.ts';
import { deferred, until } from '../../src/testing/index.ts';
import { streamNameFor } from '../../src/transports/nats/names.ts';
import { type NatsServerHandle, startNatsServer } from '../harness/nats-server.ts';
import { type Inspector, inspector } from '../transports/nats/helpers.ts';

const AGGREGATES = 20;
const PER_AGGREGATE = 10;

interface Source {
  readonly index: number;
}
interface FollowUp {
  readonly sourceId: string;
  readonly index: number;
}

describe('close() with in-flight handlers that publish follow-ups (nats)', () => {
  let server: NatsServerHandle;
  let inspect: Inspector;
  before(async () => {
    server = await startNatsServer({ jetstream: true });
    inspect = await inspector(server.url);
  });
  after(async () => {
    await inspect?.close();
    await server?.stop();
  });

  const open = (clientId: string): Promise<EventBus> =>
    createEventBus({
      transport: 'nats',
      clientId,
      metrics: { enabled: false },
      nats: { servers: server.url },
    });

  it('0 dead-lettered because of the close; the unfinished are redelivered to the next bus', async () => {
    const topic = `close-${randomUUID().slice(0, 6)}`;
    const followTopic = `${topic}-done`;
    const checker = createOrderChecker();
    const buses: EventBus[] = [];
    try {
      const producer = await open('close-producer');
      buses.push(producer);
      for (let i = 0; i < AGGREGATES * PER_AGGREGATE; i++) {
        const eventId = randomUUID();
        const aggregateId = `agg-${i % AGGREGATES}`;
        const index = Math.floor(i / AGGREGATES);
        checker.expect(eventId, aggregateId, index);
        const r = await producer.publishEnvelopeAndWait(topic, {
          eventId,
          aggregateId,
          eventType: 'Source',
          eventVersion: index,
          payload: { index },
        });
        checker.acknowledged(r.eventId);
      }

      // Follow-ups are observed for the checker by a separate bus.
      const drained = until(
        () => checker.outstanding() === 0,
        () => `${checker.outstanding()} source events without a follow-up`,
      );
      const observer = await open('close-observer');
      buses.push(observer);
      await observer.subscribeEnvelope(followTopic, (e: Envelope<FollowUp>) => {
        checker.observe(e.payload.sourceId, e.aggregateId, e.payload.index);
        drained.check();
      });

      /** The follow-up of a source event: its eventId derives from the source's (broker de-duplication). */
      const followUp = (bus: EventBus, e: Envelope<Source>) =>
        bus.publishEnvelopeAndWait(followTopic, {
          eventId: `${e.eventId}-done`,
          aggregateId: e.aggregateId,
          eventType: 'FollowUp',
          eventVersion: e.eventVersion,
          payload: { sourceId: e.eventId, index: e.payload.index },
        });

      // First bus: handlers of even aggregates finish once close() has begun (and
      // publish then); those of odd aggregates never finish before the deadline.
      const first = await open('close-first');
      buses.push(first);
      const closing = deferred<void>();
      let started = 0;
      const startedKinds = new Set<number>();
      // Aggregates share actors (by hash), so not all 20 run at once: wait for both kinds.
      const allStarted = until(
        () => started >= AGGREGATES / 2 && startedKinds.size === 2,
        () => `${started} handlers started`,
      );
      let finishedFirst = 0;
      await first.subscribeEnvelope(
        topic,
        async (e: Envelope<Source>, ctx: MessageContext) => {
          started++;
          const k = Number(e.aggregateId.slice(4));
          startedKinds.add(k % 2);
          allStarted.check();
          if (k % 2 === 1) {
            await new Promise((_, reject) =>
              ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)),
            );
          }
          await closing.promise;
          await followUp(first, e);
          finishedFirst++;
        },
        { group: 'workers', handlerTimeoutMs: 60_000 },
      );
      await allStarted.wait(20_000);
      const closed = first.close({ timeoutMs: 3_000 });
      closing.resolve();
      await closed;

      const dlq = await inspect.jsm.streams
        .info(streamNameFor('EVENTBUS', `${topic}.DLQ`))
        .then((info) => info.state.messages)
        .catch(() => 0);

      // The next bus of the group gets what the first did not finish.
      const second = await open('close-second');
      buses.push(second);
      await second.subscribeEnvelope(topic, async (e: Envelope<Source>) => void (await followUp(second, e)), {
        group: 'workers',
      });
      await drained.wait(60_000);
      const report = checker.report();
      const text = `${formatReport(report)} finishedByFirst=${finishedFirst} deadLettered=${dlq}`;
      process.stdout.write(`# close: ${text}\n`);
      assert.equal(dlq, 0, text);
      assert.ok(finishedFirst > 0, `the first bus's handlers published during close: ${text}`);
      assert.ok(finishedFirst < AGGREGATES * PER_AGGREGATE, text);
      assert.equal(report.lost, 0, text);
      assert.equal(report.outOfOrder, 0, text);
      assert.equal(report.unexpected, 0, text);
      assert.equal(report.ok, AGGREGATES * PER_AGGREGATE, text);
    } finally {
      for (const bus of buses.reverse()) await bus.close({ timeoutMs: 5_000 });
    }
  });
});
