/**
 * Shared pieces of the Kafka fault tests (`*.fault.ts`): buses on a Kafka
 * broker, a backlog published with the checker's bookkeeping, and waiting on
 * the checker. Every verdict comes from src/testing/checker.ts.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { EventBus, PublishResult } from '../../../src/index.ts';
import { createEventBus } from '../../../src/index.ts';
import { type CheckerReport, formatReport, type OrderChecker } from '../../../src/testing/checker.ts';
import { pollUntil } from '../../../src/testing/waiters.ts';
import type { KafkaTransportOptions } from '../../../src/transports/kafka/options.ts';

export const uniqueName = (name: string): string => `jxt-kf-${name}-${randomUUID().slice(0, 8)}`;

/** Kafka settings of the fault tests: quick group timing so a dead member is noticed in seconds. */
export function faultKafkaOptions(brokers: readonly string[]): KafkaTransportOptions {
  return {
    brokers: [...brokers],
    partitions: 6,
    sessionTimeoutMs: 6_000,
    heartbeatIntervalMs: 500,
    revokeTimeoutMs: 3_000,
    commitIntervalMs: 200,
  };
}

export interface CheckedBus {
  readonly bus: EventBus;
  readonly results: Map<string, PublishResult>;
}

export async function kafkaBus(
  brokers: readonly string[],
  name: string,
  kafka: Partial<KafkaTransportOptions> = {},
): Promise<CheckedBus> {
  const results = new Map<string, PublishResult>();
  const bus = await createEventBus({
    transport: 'kafka',
    clientId: uniqueName(name),
    kafka: { ...faultKafkaOptions(brokers), ...kafka },
    metrics: { enabled: false },
    onPublishResult: (r) => results.set(r.eventId, r),
  });
  return { bus, results };
}

export interface EventPayload {
  readonly index: number;
}

/**
 * Publishes `perAggregate` events for each of `aggregates` aggregates,
 * version-major (every batch interleaves aggregates), tells the checker, and
 * waits for every result.
 */
export async function publishBacklog(
  producer: CheckedBus,
  checker: OrderChecker,
  topic: string,
  aggregates: number,
  perAggregate: number,
  from = 0,
): Promise<void> {
  const ids: string[] = [];
  for (let index = from; index < perAggregate; index++) {
    for (let a = 0; a < aggregates; a++) {
      const aggregateId = `agg-${a}`;
      // Announced before publishing: delivery may come before publishEnvelope resolves.
      const eventId = randomUUID();
      checker.expect(eventId, aggregateId, index);
      await producer.bus.publishEnvelope<EventPayload>(topic, {
        eventId,
        aggregateId,
        eventType: 'Tested',
        eventVersion: index + 1,
        payload: { index },
      });
      ids.push(eventId);
    }
  }
  await producer.bus.flush({ timeoutMs: 60_000 });
  for (const id of ids) {
    const result = producer.results.get(id);
    if (result?.success) checker.acknowledged(id);
    else checker.failed(id);
  }
}

/** Waits until the checker has seen every acknowledged event (checked every 20 ms). */
export async function allConsumed(checker: OrderChecker, timeoutMs: number): Promise<void> {
  await waitFor(
    'every acknowledged event to be handled',
    () => checker.outstanding() === 0,
    timeoutMs,
    () => formatReport(checker.report()),
  );
}

/** pollUntil with the fault kit's argument order. */
export function waitFor(
  what: string,
  condition: () => boolean,
  timeoutMs: number,
  describe?: () => string,
): Promise<void> {
  return pollUntil(condition, describe === undefined ? { what, timeoutMs } : { what, timeoutMs, describe });
}

/** The fault tests' verdict: nothing acknowledged lost, nothing out of order, nothing unexpected. */
export function assertNoLossNoReorder(report: CheckerReport, what: string): void {
  const line = formatReport(report);
  assert.equal(report.lost, 0, `${what}: lost (${line})`);
  assert.equal(report.outOfOrder, 0, `${what}: out of order (${line})`);
  assert.equal(report.unexpected, 0, `${what}: unexpected (${line})`);
}
