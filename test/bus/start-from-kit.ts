/**
 * The start-position scenarios every transport must pass (SubscribeOptions.
 * startFrom), judged by the checker:
 *
 * 1. A new group with 'latest' skips the backlog (a consumed backlog message
 *    is `unexpected`), one with 'earliest' gets it (else `lost`). Backlog and
 *    live events share their aggregates, so a backlog message would come
 *    before the live ones of its partition: once every live message arrived,
 *    none can still be on its way.
 * 2. The group's position is kept: a member joining later, members leaving
 *    and a member subscribing after the group stood empty (still with
 *    'latest') lose nothing published after the group started.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import type { EventBus, Subscription } from '../../src/index.ts';
import { createOrderChecker, formatReport, type OrderChecker } from '../../src/testing/checker.ts';
import { pollUntil } from '../../src/testing/waiters.ts';

export interface StartFromSuiteOptions {
  readonly name: string;
  /** A bus of its own (another process, as far as the group is concerned). */
  readonly createBus: (clientId: string) => Promise<EventBus>;
  readonly timeoutMs?: number;
}

const AGGREGATES = 8;

interface Payload {
  readonly key: string;
  readonly index: number;
}

/** The checkers raise no event a test could wait on: their counts are polled. */
const until = (condition: () => boolean, what: string, timeoutMs: number): Promise<void> =>
  pollUntil(condition, { what, timeoutMs });

/** Publishes `perAggregate` events to each aggregate, from index `from`; each checker expects them. */
async function publish(
  bus: EventBus,
  topic: string,
  from: number,
  perAggregate: number,
  checkers: readonly OrderChecker[],
): Promise<void> {
  for (let index = from; index < from + perAggregate; index++) {
    for (let a = 0; a < AGGREGATES; a++) {
      const key = `agg-${a}`;
      const eventId = randomUUID();
      for (const c of checkers) c.expect(eventId, key, index);
      await bus.publishEnvelopeAndWait(topic, {
        eventId,
        aggregateId: key,
        eventType: 'Tick',
        eventVersion: 1,
        payload: { key, index } satisfies Payload,
      });
      for (const c of checkers) c.acknowledged(eventId);
    }
  }
}

function observer(checker: OrderChecker) {
  return (envelope: { eventId: string; payload: unknown }): void => {
    const { key, index } = envelope.payload as Payload;
    checker.observe(envelope.eventId, key, index);
  };
}

function assertClean(checker: OrderChecker, what: string): void {
  const report = checker.report();
  const text = `${what}: ${formatReport(report)}`;
  assert.equal(report.lost, 0, text);
  assert.equal(report.unexpected, 0, text);
  assert.equal(report.outOfOrder, 0, text);
  assert.ok(report.ok > 0, text);
}

export function runStartFromSuite(options: StartFromSuiteOptions): void {
  const timeoutMs = options.timeoutMs ?? 60_000;
  describe(`startFrom (${options.name})`, () => {
    it("a new group with 'latest' skips the backlog; with 'earliest' (and by default) it gets it", async () => {
      const topic = `start-${randomUUID().slice(0, 8)}`;
      const latest = createOrderChecker();
      const earliest = createOrderChecker();
      const byDefault = createOrderChecker();
      const buses: EventBus[] = [];
      const open = async (id: string) => {
        const bus = await options.createBus(`${id}-${randomUUID().slice(0, 6)}`);
        buses.push(bus);
        return bus;
      };
      try {
        const producer = await open('producer');
        // The backlog: only the groups that start from the beginning expect it.
        await publish(producer, topic, 0, 3, [earliest, byDefault]);
        const consumer = await open('consumer');
        await consumer.subscribeEnvelope(topic, observer(latest), { group: 'late', startFrom: 'latest' });
        await consumer.subscribeEnvelope(topic, observer(earliest), {
          group: 'early',
          startFrom: 'earliest',
        });
        await consumer.subscribeEnvelope(topic, observer(byDefault), { group: 'default' });
        await publish(producer, topic, 3, 3, [latest, earliest, byDefault]);
        await until(
          () => latest.outstanding() + earliest.outstanding() + byDefault.outstanding() === 0,
          'every group consumed what it expects',
          timeoutMs,
        );
        assertClean(latest, "'latest'");
        assert.equal(latest.report().published, 3 * AGGREGATES, 'only the live events');
        assertClean(earliest, "'earliest'");
        assertClean(byDefault, 'default');
        assert.equal(earliest.report().published, 6 * AGGREGATES, 'backlog and live events');
      } finally {
        await Promise.allSettled(buses.map((b) => b.close()));
      }
    });

    it("members joining and leaving later, even after the group stood empty, continue from the group's position", async () => {
      const topic = `join-${randomUUID().slice(0, 8)}`;
      const checker = createOrderChecker();
      const buses: EventBus[] = [];
      const open = async (id: string) => {
        const bus = await options.createBus(`${id}-${randomUUID().slice(0, 6)}`);
        buses.push(bus);
        return bus;
      };
      const join = async (bus: EventBus): Promise<Subscription> =>
        bus.subscribeEnvelope(topic, observer(checker), { group: 'g', startFrom: 'latest' });
      const drained = () => until(() => checker.outstanding() === 0, 'the group caught up', timeoutMs);
      try {
        const producer = await open('producer');
        await publish(producer, topic, 0, 2, []); // before the group: skipped (unexpected if consumed)
        const first = await open('m1');
        await join(first);
        await publish(producer, topic, 2, 2, [checker]);
        await drained();
        const second = await open('m2');
        await join(second); // joins a running group: its lanes continue, nothing restarts at "now"
        await publish(producer, topic, 4, 2, [checker]);
        await drained();
        await first.close();
        await second.close();
        // Published while the group has no member: still after the group started.
        await publish(producer, topic, 6, 2, [checker]);
        const third = await open('m3');
        await join(third);
        await publish(producer, topic, 8, 1, [checker]);
        await drained();
        assertClean(checker, 'group g');
        assert.equal(checker.report().published, 7 * AGGREGATES);
      } finally {
        await Promise.allSettled(buses.map((b) => b.close()));
      }
    });

    it("a 'latest' group that stood empty before any traffic does not start again at the end", async () => {
      const topic = `idle-${randomUUID().slice(0, 8)}`;
      const checker = createOrderChecker();
      const buses: EventBus[] = [];
      const open = async (id: string) => {
        const bus = await options.createBus(`${id}-${randomUUID().slice(0, 6)}`);
        buses.push(bus);
        return bus;
      };
      try {
        const producer = await open('producer');
        await publish(producer, topic, 0, 1, []); // before the group: skipped
        const first = await open('m1');
        await first.subscribeEnvelope(topic, observer(checker), { group: 'g', startFrom: 'latest' });
        await first.close(); // the group started, saw nothing, and has no member now
        await publish(producer, topic, 1, 2, [checker]);
        const second = await open('m2');
        await second.subscribeEnvelope(topic, observer(checker), { group: 'g', startFrom: 'latest' });
        await publish(producer, topic, 3, 1, [checker]);
        await until(() => checker.outstanding() === 0, 'the group caught up', timeoutMs);
        assertClean(checker, 'group g');
      } finally {
        await Promise.allSettled(buses.map((b) => b.close()));
      }
    });

    it("raw subscriptions: a new group with 'latest' skips the backlog", async () => {
      const topic = `raw-${randomUUID().slice(0, 8)}`;
      const checker = createOrderChecker();
      const buses: EventBus[] = [];
      try {
        const producer = await options.createBus(`raw-p-${randomUUID().slice(0, 6)}`);
        buses.push(producer);
        const send = async (index: number, expected: boolean) => {
          for (let a = 0; a < AGGREGATES; a++) {
            const key = `agg-${a}`;
            const msgId = randomUUID();
            if (expected) checker.expect(msgId, key, index);
            const data = new TextEncoder().encode(JSON.stringify({ key, index, msgId }));
            await producer.publishAndWait(topic, data, { msgId, key });
            if (expected) checker.acknowledged(msgId);
          }
        };
        await send(0, false);
        const consumer = await options.createBus(`raw-c-${randomUUID().slice(0, 6)}`);
        buses.push(consumer);
        await consumer.subscribe(
          topic,
          (data) => {
            const { key, index, msgId } = JSON.parse(new TextDecoder().decode(data));
            checker.observe(msgId, key, index);
          },
          { group: 'raw-late', startFrom: 'latest' },
        );
        await send(1, true);
        await until(() => checker.outstanding() === 0, 'the live raw messages arrived', timeoutMs);
        assertClean(checker, "raw 'latest'");
      } finally {
        await Promise.allSettled(buses.map((b) => b.close()));
      }
    });

    it('rejects an unknown start position', async () => {
      const bus = await options.createBus(`bad-${randomUUID().slice(0, 6)}`);
      try {
        await assert.rejects(
          bus.subscribeEnvelope('any-topic', () => {}, { startFrom: 'newest' as never }),
          /Expected `startFrom` to be 'earliest' or 'latest', got "newest"/,
        );
      } finally {
        await bus.close();
      }
    });
  });
}
