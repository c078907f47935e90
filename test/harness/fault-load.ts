/**
 * The publishing side of fault suites: a bus in the test process whose
 * publish results go to the order checker, and a load of envelopes spread
 * round-robin over aggregates. Each envelope's payload carries `index`, its
 * position within its aggregate (what member-process.ts reports).
 */
import { randomUUID } from 'node:crypto';
import { createEventBus, type EventBus } from '../../src/index.ts';
import type { OrderChecker } from '../../src/testing/checker.ts';

/** A publisher bus whose results mark the checker: acknowledged, or failed (outcome unknown). */
export function createLoadPublisher(
  busOptions: Readonly<Record<string, unknown>>,
  checker: OrderChecker,
  clientId = 'fault-publisher',
): Promise<EventBus> {
  return createEventBus({
    ...busOptions,
    clientId,
    metrics: { enabled: false },
    onPublishResult: (r: { eventId: string; success: boolean }) =>
      r.success ? checker.acknowledged(r.eventId) : checker.failed(r.eventId),
  } as never);
}

const YIELD_EVERY = 50;

export interface LoadOptions {
  readonly events: number;
  readonly aggregates: number;
  /** Aggregate ids are `<prefix><k>`. Default 'agg-'. */
  readonly prefix?: string;
  /** Called after each accepted publish with how many were accepted (e.g. to inject a fault). */
  readonly onAccepted?: (accepted: number) => Promise<void> | void;
}

/**
 * Publishes `events` envelopes, event i to aggregate i mod `aggregates` at
 * index ⌊i / aggregates⌋, announcing each to the checker first; resolves once
 * every publish has its result (flush).
 */
export async function publishLoad(
  bus: EventBus,
  topic: string,
  checker: OrderChecker,
  options: LoadOptions,
): Promise<void> {
  const prefix = options.prefix ?? 'agg-';
  for (let i = 0; i < options.events; i++) {
    const eventId = randomUUID();
    const aggregateId = `${prefix}${i % options.aggregates}`;
    const index = Math.floor(i / options.aggregates);
    checker.expect(eventId, aggregateId, index);
    await bus.publishEnvelope(topic, {
      eventId,
      aggregateId,
      eventType: 'FaultLoad',
      eventVersion: index,
      payload: { index },
    });
    await options.onAccepted?.(i + 1);
    // publishEnvelope resolves on acceptance (a microtask): without a turn of
    // the event loop now and then, this loop would starve the test process's
    // I/O, members' reports would pile up in their pipes and block them.
    if (i % YIELD_EVERY === YIELD_EVERY - 1) await new Promise((resolve) => setImmediate(resolve));
  }
  await bus.flush({ timeoutMs: 120_000 });
}
