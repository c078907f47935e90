/**
 * Partitioned consumer groups on a real nats-server, through the bus API:
 * members are buses (each its own connection, like processes), judged by the
 * order checker. The multi-process fault suites (kill -9, SIGSTOP, resets)
 * are in *.fault.ts.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { DiscardPolicy, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { createEventBus, type EventBus } from '../../../src/index.ts';
import { createOrderChecker, formatReport, type OrderChecker } from '../../../src/testing/index.ts';
import { type NatsServerHandle, startNatsServer } from '../../harness/nats-server.ts';
import { captureLogger, type Inspector, inspector, waitUntil } from './helpers.ts';

describe('nats partitioned consumer groups', () => {
  let server: NatsServerHandle;
  let inspect: Inspector;
  const buses: EventBus[] = [];

  before(async () => {
    server = await startNatsServer({ jetstream: true });
    inspect = await inspector(server.url);
  });

  after(async () => {
    for (const bus of buses) await bus.close({ timeoutMs: 5_000 });
    await inspect?.close();
    await server?.stop();
  });

  async function bus(extra: Record<string, unknown> = {}, logger = captureLogger()): Promise<EventBus> {
    const b = await createEventBus({
      transport: 'nats',
      clientId: 'partitioned-test',
      nats: { servers: server.url, partitions: 8, group: { leaseMs: 1_000 }, ...extra },
      logger,
    });
    buses.push(b);
    return b;
  }

  /** The lanes this bus's member holds on `topic` (from health(): transport details). */
  function owned(b: EventBus, topic: string): string[] {
    const subs = (b.health().details?.subscriptions ?? []) as Array<{
      topic: string;
      membership?: { owned: string[] };
    }>;
    return subs.find((s) => s.topic === topic)?.membership?.owned ?? [];
  }

  /** Publishes `perKey` events for each of `keys` aggregates, interleaved; the checker learns of every ack. */
  async function publish(b: EventBus, topic: string, checker: OrderChecker, keys: number, perKey: number) {
    const results = new Map<string, Promise<void>>();
    for (let i = 0; i < perKey; i++) {
      for (let k = 0; k < keys; k++) {
        const eventId = randomUUID();
        const key = `agg-${k}`;
        checker.expect(eventId, key, i);
        await b.publishEnvelope(topic, {
          eventId,
          aggregateId: key,
          eventType: 'T',
          eventVersion: i + 1,
          payload: { i },
        });
        results.set(eventId, Promise.resolve());
      }
    }
    await b.flush({ timeoutMs: 30_000 });
  }

  function subscriber(
    b: EventBus,
    topic: string,
    checker: OrderChecker,
    group: string,
    seen: Set<string>,
    running: Map<string, string>,
    overlaps: string[],
    name: string,
  ) {
    return b.subscribeEnvelope<{ i: number }>(
      topic,
      async (event, ctx) => {
        const other = running.get(event.aggregateId);
        if (other !== undefined) overlaps.push(`${event.aggregateId}: ${other} and ${name}`);
        running.set(event.aggregateId, name);
        seen.add(name);
        await new Promise((resolve) => setImmediate(resolve));
        running.delete(event.aggregateId);
        if (ctx.stillOwner()) checker.observe(event.eventId, event.aggregateId, event.payload.i);
      },
      { group },
    );
  }

  it('an envelope topic gets partition subjects, recorded with the stream; events land in hash(aggregate) mod P', async () => {
    const b = await bus();
    await b.publishEnvelope('layout.topic', {
      aggregateId: 'order-1',
      eventType: 'T',
      eventVersion: 1,
      payload: {},
    });
    await b.flush({ timeoutMs: 10_000 });
    const info = await inspect.jsm.streams.info('EVENTBUS_layout_topic');
    assert.deepEqual(info.config.subjects, ['layout.topic', 'layout.topic._P_.*']);
    assert.equal(info.config.description, 'jxt-eventbus partitions=8');
    const stored = await inspect.jsm.streams.getMessage('EVENTBUS_layout_topic', { seq: 1 });
    assert.match(stored?.subject ?? '', /^layout\.topic\._P_\.[0-7]$/);
  });

  it('two members split the partitions; every event handled in order, no aggregate on both at once', async () => {
    const checker = createOrderChecker();
    const a = await bus();
    const b = await bus();
    const seen = new Set<string>();
    const running = new Map<string, string>();
    const overlaps: string[] = [];
    await subscriber(a, 'split.topic', checker, 'g', seen, running, overlaps, 'a');
    await subscriber(b, 'split.topic', checker, 'g', seen, running, overlaps, 'b');
    // a held every partition; it hands some over once it has seen b for two ticks.
    await waitUntil(() => {
      const [ofA, ofB] = [owned(a, 'split.topic').length, owned(b, 'split.topic').length];
      return ofA > 0 && ofB > 0 && ofA + ofB === 9; // 8 partitions + the plain lane
    }, 'a and b split the 9 lanes');
    await publish(a, 'split.topic', checker, 40, 50);
    await waitUntil(() => checker.outstanding() === 0, 'all 2,000 handled', 60_000);
    const report = checker.report();
    assert.equal(report.lost + report.outOfOrder + report.unexpected, 0, formatReport(report));
    assert.deepEqual(overlaps, []);
    const stats = (a.health().subscriptions ?? []) as unknown[];
    assert.ok(stats.length > 0);
    assert.deepEqual([...seen].sort(), ['a', 'b'], 'both members handled events');
  });

  it('a member that leaves mid-stream hands its partitions over; nothing lost, nothing out of order', async () => {
    const checker = createOrderChecker();
    const a = await bus();
    const b = await bus();
    const seen = new Set<string>();
    const running = new Map<string, string>();
    const overlaps: string[] = [];
    await subscriber(a, 'leave.topic', checker, 'g', seen, running, overlaps, 'a');
    const subB = await subscriber(b, 'leave.topic', checker, 'g', seen, running, overlaps, 'b');
    await waitUntil(() => owned(b, 'leave.topic').length > 0, 'b holds partitions');
    const publishing = publish(a, 'leave.topic', checker, 40, 50);
    await waitUntil(() => seen.has('b') && checker.outstanding() < 1_500, 'b handled some');
    await subB.close({ timeoutMs: 5_000 });
    await publishing;
    await waitUntil(() => checker.outstanding() === 0, 'all handled after the handoff', 60_000);
    const report = checker.report();
    assert.equal(report.lost + report.outOfOrder + report.unexpected, 0, formatReport(report));
    assert.deepEqual(overlaps, []);
  });

  it('a stream without partitions (older version): one active member per group, a warning says why', async () => {
    await inspect.jsm.streams.add({
      name: 'EVENTBUS_legacy_topic',
      subjects: ['legacy.topic'],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
    });
    const logger = captureLogger();
    const checker = createOrderChecker();
    const a = await bus({}, logger);
    const b = await bus();
    const seen = new Set<string>();
    const running = new Map<string, string>();
    const overlaps: string[] = [];
    await subscriber(a, 'legacy.topic', checker, 'g', seen, running, overlaps, 'a');
    await subscriber(b, 'legacy.topic', checker, 'g', seen, running, overlaps, 'b');
    await publish(a, 'legacy.topic', checker, 20, 20);
    await waitUntil(() => checker.outstanding() === 0, 'all 400 handled', 60_000);
    const report = checker.report();
    assert.equal(report.lost + report.outOfOrder + report.unexpected, 0, formatReport(report));
    assert.equal(seen.size, 1, 'exactly one member was active');
    assert.ok(logger.entries.some((e) => e.level === 'warn' && /no partition subjects/.test(e.msg)));
    const stored = await inspect.jsm.streams.getMessage('EVENTBUS_legacy_topic', { seq: 1 });
    assert.equal(stored?.subject, 'legacy.topic', 'publishers keep the plain subject');
  });

  it('a different partition count later uses the recorded one (changing it would reorder), with a warning', async () => {
    const first = await bus();
    await first.publishEnvelope('count.topic', {
      aggregateId: 'x',
      eventType: 'T',
      eventVersion: 1,
      payload: {},
    });
    await first.flush({ timeoutMs: 10_000 });
    const logger = captureLogger();
    const second = await bus({ partitions: 3 }, logger);
    await second.publishEnvelope('count.topic', {
      aggregateId: 'x',
      eventType: 'T',
      eventVersion: 2,
      payload: {},
    });
    await second.flush({ timeoutMs: 10_000 });
    const one = await inspect.jsm.streams.getMessage('EVENTBUS_count_topic', { seq: 1 });
    const two = await inspect.jsm.streams.getMessage('EVENTBUS_count_topic', { seq: 2 });
    assert.equal(two?.subject, one?.subject, 'the same aggregate stays in the same partition');
    assert.ok(logger.entries.some((e) => e.level === 'warn' && /created with 8 partitions/.test(e.msg)));
  });
});
