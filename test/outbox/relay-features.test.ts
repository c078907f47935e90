/**
 * The relay reads the transport's features (src/outbox/relay-features.ts):
 * on real transports where they differ, the memory transport (broker
 * de-duplication, its window) and Kafka (none, via kfake or KAFKA_BROKERS).
 *
 * The crash test is the point of the flag: a relay publishes rows, dies
 * before marking them, and the next relay re-sends them. On memory the
 * broker stores each once; on Kafka the stream holds the second copies and
 * the consumer's inbox (`processOnce`) absorbs them.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { createEventBus } from '../../src/bus/create-event-bus.ts';
import { InvalidArgumentError } from '../../src/core/errors.ts';
import type { TransportFeatures } from '../../src/core/transport.ts';
import type { EventBus, PublishResult } from '../../src/core/types.ts';
import { createOutboxRelay, type OutboxRelay } from '../../src/outbox/relay.ts';
import { resolveRelayFeatures } from '../../src/outbox/relay-features.ts';
import { checkDelivery, formatReport } from '../../src/testing/checker.ts';
import { createMemoryBroker } from '../../src/transports/memory/index.ts';
import { announceKafkaSkip, kafkaSkipReason, useKafkaForTests } from '../harness/kafka-broker.ts';
import {
  captureLogger,
  eventsFor,
  expectedFromDb,
  type StoreFixture,
  storeFactories,
  waitUntil,
  withStore,
} from './fixtures.ts';

const pglite = storeFactories.find((f) => f.kind === 'pglite') as (typeof storeFactories)[number];

const features = (over: Partial<TransportFeatures>): TransportFeatures => ({
  persistent: true,
  consumerGroups: true,
  newSubscriberReceivesOldMessages: true,
  brokerDeduplication: true,
  nakRedelivers: true,
  nakDelay: true,
  ...over,
});

describe('relay features: what the relay makes of a transport', () => {
  const resolve = (f: TransportFeatures | undefined, duplicateWindowMs?: number, require?: boolean) =>
    resolveRelayFeatures({ features: f, duplicateWindowMs, requireBrokerDeduplication: require });

  test('a bus without features is taken to de-duplicate (what the relay always assumed)', () => {
    assert.deepEqual(resolve(undefined), {
      brokerDeduplication: true,
      duplicateWindowMs: 120_000,
      warnings: [],
    });
  });

  test("the transport's window is the default; a longer configured window warns", () => {
    assert.equal(resolve(features({ duplicateWindowMs: 30_000 })).duplicateWindowMs, 30_000);
    assert.deepEqual(resolve(features({ duplicateWindowMs: 30_000 }), 10_000).warnings, []);
    assert.match(
      resolve(features({ duplicateWindowMs: 30_000 }), 60_000).warnings.join(),
      /longer than the transport's de-duplication window/,
    );
  });

  test('no broker de-duplication: a warning, or a refusal when required', () => {
    const r = resolve(features({ brokerDeduplication: false }), 60_000);
    assert.equal(r.brokerDeduplication, false);
    assert.match(r.warnings.join(), /no broker de-duplication.*processOnce.*duplicateWindowMs is ignored/);
    assert.throws(
      () => resolve(features({ brokerDeduplication: false }), undefined, true),
      InvalidArgumentError,
    );
    assert.equal(resolve(features({}), undefined, true).brokerDeduplication, true);
    assert.throws(() => resolve(features({}), undefined, 'yes' as unknown as boolean), InvalidArgumentError);
  });

  test('a transport that does not keep messages is named', () => {
    assert.match(resolve(features({ persistent: false })).warnings.join(), /does not keep messages/);
  });
});

interface Target {
  readonly name: string;
  readonly dedup: boolean;
  bus(clientId: string): Promise<EventBus>;
}

async function addRows(f: StoreFixture, topic: string, aggregates: number, perAggregate: number) {
  for (let i = 0; i < perAggregate; i++) {
    await f.store.transaction((tx) =>
      f.store.add(
        tx,
        Array.from({ length: aggregates }, (_, a) => eventsFor(topic, `agg-${a}`, i, 1)).flat(),
      ),
    );
  }
}

async function closeAll(items: ReadonlyArray<OutboxRelay | EventBus | undefined>): Promise<void> {
  for (const item of items) await item?.close({ timeoutMs: 5000 });
}

function crashSuite(target: () => Target): void {
  test('rows re-sent after a relay crash: stored once with de-duplication, else absorbed by the inbox', () =>
    withStore(pglite, async (f) => {
      const t = target();
      const topic = `outbox-feat-${randomUUID().slice(0, 8)}`;
      const results: PublishResult[] = [];
      const bus = await t.bus(`relay-${topic}`);
      const consumer = await t.bus(`billing-${topic}`);
      let crashed: OutboxRelay | undefined;
      let next: OutboxRelay | undefined;
      try {
        const stream = bus.publishResults();
        void (async () => {
          for await (const r of stream) results.push(r);
        })();
        await addRows(f, topic, 3, 4);
        // The crash: every row goes out and is acked, the mark never lands, the process dies.
        crashed = createOutboxRelay({
          store: { ...f.store, markPublished: () => new Promise<number>(() => {}) },
          bus,
          relayId: 'crashed',
          pollIntervalMs: 20,
          leaseMs: 3000,
          listen: false,
        });
        await crashed.start();
        await waitUntil(() => results.filter((r) => r.success).length === 12, { what: 'all 12 rows acked' });
        crashed.abort();

        const { logger, entries } = captureLogger();
        next = createOutboxRelay({
          store: f.store,
          bus,
          relayId: 'next',
          pollIntervalMs: 50,
          logger,
          listen: false,
        });
        await next.start();
        const warned = entries.some((e) => /no broker de-duplication/.test(String(e.msg)));
        assert.equal(warned, !t.dedup, 'the relay says at start whether consumers must absorb re-sends');
        await waitUntil(() => results.length === 24, { what: 'the 12 re-sends acked', timeoutMs: 60_000 });
        const resent = results.slice(12);
        assert.ok(resent.every((r) => r.success));
        assert.equal(
          resent.filter((r) => r.duplicate).length,
          t.dedup ? 12 : 0,
          t.dedup ? 'the broker recognised every re-send' : 'Kafka stores every re-send again',
        );

        // The consumer side: the inbox applies each event once, in per-aggregate order.
        const delivered: string[] = [];
        const applied: { eventId: string }[] = [];
        await consumer.subscribeEnvelope(topic, async (e) => {
          delivered.push(e.eventId);
          const first = await f.store.transaction((tx) =>
            f.store.processOnce(tx, e.eventId, () => {}, { consumer: 'billing' }),
          );
          if (first) applied.push({ eventId: e.eventId });
        });
        const copies = t.dedup ? 12 : 24;
        await waitUntil(() => delivered.length >= copies, {
          what: `${copies} stored copies delivered`,
          timeoutMs: 60_000,
        });
        const report = checkDelivery(await expectedFromDb(f), applied);
        assert.equal(report.exactlyOnce, 12, formatReport(report));
        assert.equal(new Set(delivered).size, 12);
      } finally {
        crashed?.abort();
        await closeAll([next, consumer, bus]);
      }
    }));
}

describe('relay features on the memory transport (broker de-duplication)', () => {
  const broker = createMemoryBroker({ duplicateWindowMs: 100_000 });
  const memory: Target = {
    name: 'memory',
    dedup: true,
    bus: (clientId) =>
      createEventBus({ transport: 'memory', clientId, memory: { broker }, metrics: { enabled: false } }),
  };

  test("the lag warning is measured against the transport's window, and a longer configured one warns", () =>
    withStore(pglite, async (f) => {
      const bus = await memory.bus('lag-window');
      const { logger, entries } = captureLogger();
      // Nothing is claimed: the rows stay pending, so only the lag is measured.
      const store = { ...f.store, claim: async () => [] };
      const relay = createOutboxRelay({ store, bus, logger, statsIntervalMs: 20, listen: false });
      const longer = createOutboxRelay({ store, bus, logger, duplicateWindowMs: 200_000, listen: false });
      try {
        await addRows(f, 'lag', 1, 1);
        // 70 s: above half of the broker's 100 s window, below half of the 120 s default.
        await f.query("UPDATE eventbus_outbox SET created_at = now() - interval '70 seconds'");
        await relay.start();
        await waitUntil(() => relay.stats().lagWarning, { what: 'the lag warning' });
        await longer.start();
        assert.ok(
          entries.some(
            (e) =>
              e.level === 'warn' && /longer than the transport's de-duplication window/.test(String(e.msg)),
          ),
        );
      } finally {
        await closeAll([relay, longer, bus]);
      }
    }));

  crashSuite(() => memory);
});

announceKafkaSkip('the relay feature tests on Kafka');

describe('relay features on Kafka (no broker de-duplication)', { skip: kafkaSkipReason }, () => {
  const cluster = useKafkaForTests();
  const kafka: Target = {
    name: 'kafka',
    dedup: false,
    bus: (clientId) =>
      createEventBus({
        transport: 'kafka',
        clientId,
        kafka: { brokers: cluster.brokers(), partitions: 4, heartbeatIntervalMs: 500 },
        metrics: { enabled: false },
      }),
  };

  test('requireBrokerDeduplication refuses the bus; otherwise no duplicate-window lag warning', () =>
    withStore(pglite, async (f) => {
      const bus = await kafka.bus(`lag-${randomUUID().slice(0, 8)}`);
      const { logger } = captureLogger();
      const store = { ...f.store, claim: async () => [] };
      const relay = createOutboxRelay({ store, bus, logger, statsIntervalMs: 20, listen: false });
      try {
        assert.equal(bus.features.brokerDeduplication, false);
        assert.throws(
          () => createOutboxRelay({ store, bus, requireBrokerDeduplication: true }),
          InvalidArgumentError,
        );
        await addRows(f, 'lag', 1, 1);
        await f.query("UPDATE eventbus_outbox SET created_at = now() - interval '600 seconds'");
        await relay.start();
        await waitUntil(() => (relay.stats().lagSeconds ?? 0) >= 600, { what: 'the lag measured' });
        assert.equal(relay.stats().lagWarning, false, 'no window, nothing to warn about');
      } finally {
        await closeAll([relay, bus]);
      }
    }));

  crashSuite(() => kafka);
});
