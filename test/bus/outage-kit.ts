/**
 * Shared by the publish-outage suites (real nats-server): a publisher bus set
 * up as the README shows (onPublishResult only logs), a consumer bus feeding
 * the order checker, and a paced load of envelopes spread over aggregates.
 */
import { randomUUID } from 'node:crypto';
import { createEventBus, type Envelope, type EventBus, type PublishResult } from '../../src/index.ts';
import { createOrderChecker, type OrderChecker } from '../../src/testing/checker.ts';
import { type Signal, until } from '../../src/testing/index.ts';
import { captureLogger, type LogEntry } from '../transports/nats/helpers.ts';

export interface OutageRig {
  readonly publisher: EventBus;
  readonly consumer: EventBus;
  readonly checker: OrderChecker;
  /** Results per eventId, in arrival order. */
  readonly results: PublishResult[];
  readonly publisherLog: LogEntry[];
  /** Fires when every acknowledged event was consumed. */
  readonly drained: Signal;
  close(): Promise<void>;
}

export async function openOutageRig(
  servers: string,
  topic: string,
  publisherOptions: Readonly<Record<string, unknown>> = {},
): Promise<OutageRig> {
  const checker = createOrderChecker();
  const results: PublishResult[] = [];
  const logger = captureLogger();
  const drained = until(
    () => checker.outstanding() === 0,
    () => `${checker.outstanding()} acknowledged events not consumed yet`,
  );
  const publisher = await createEventBus({
    transport: 'nats',
    clientId: 'outage-publisher',
    metrics: { enabled: false },
    logger,
    nats: { servers },
    ...publisherOptions,
    // As in the README: the application only looks at results, it never republishes.
    onPublishResult: (r) => {
      results.push(r);
      if (r.success) checker.acknowledged(r.eventId);
      else checker.failed(r.eventId);
      drained.check();
    },
  });
  await publisher.flush(); // nothing yet; proves the bus is up
  const consumer = await createEventBus({
    transport: 'nats',
    clientId: 'outage-consumer',
    metrics: { enabled: false },
    nats: { servers },
  });
  await consumer.subscribeEnvelope(topic, (e: Envelope<{ index: number }>) => {
    checker.observe(e.eventId, e.aggregateId, e.payload.index);
    drained.check();
  });
  return {
    publisher,
    consumer,
    checker,
    results,
    publisherLog: logger.entries,
    drained,
    async close() {
      await publisher.close({ timeoutMs: 5_000 });
      await consumer.close({ timeoutMs: 5_000 });
    },
  };
}

/** Publishes `count` envelopes over `aggregates` aggregates, continuing each aggregate's index. */
export class PacedLoad {
  readonly #next = new Map<string, number>();
  #i = 0;
  readonly rig: OutageRig;
  readonly topic: string;
  readonly aggregates: number;
  constructor(rig: OutageRig, topic: string, aggregates: number) {
    this.rig = rig;
    this.topic = topic;
    this.aggregates = aggregates;
  }

  /** Publishes `perSecond` events a second until `stop()` returns true (load shape, not synchronisation). */
  async run(perSecond: number, stop: () => boolean): Promise<void> {
    const batch = Math.max(1, Math.round(perSecond / 10));
    while (!stop()) {
      await this.publish(batch);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  async publish(count: number): Promise<void> {
    for (let n = 0; n < count; n++) {
      const aggregateId = `agg-${this.#i++ % this.aggregates}`;
      const index = this.#next.get(aggregateId) ?? 0;
      this.#next.set(aggregateId, index + 1);
      const eventId = randomUUID();
      this.rig.checker.expect(eventId, aggregateId, index);
      await this.rig.publisher.publishEnvelope(this.topic, {
        eventId,
        aggregateId,
        eventType: 'OutageLoad',
        eventVersion: index,
        payload: { index },
      });
    }
  }
}
