/**
 * What the conformance scenario files share: the suite's bus maker and
 * settings, the transport's declared features, and the publishing and
 * judging helpers.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { it as nodeIt, type TestContext, type TestOptions } from 'node:test';
import type { EventBusOptions } from '../bus/options.ts';
import type { TransportFeatures } from '../core/transport.ts';
import type { EventBus, PublishResult } from '../core/types.ts';
import { formatReport, type OrderChecker } from './checker.ts';

export type BusOverrides = Partial<Omit<EventBusOptions, 'transport'>> & { readonly clientId: string };

export interface ConformanceTarget {
  readonly name: string;
  /** A bus on the suite's broker. The transport's `features` (read from the bus) decide which scenarios apply. */
  createBus(overrides: BusOverrides): Promise<EventBus>;
  /** Puts bytes on a topic without the bus (core client / broker API), e.g. garbage on an envelope topic. */
  injectRaw?(topic: string, data: Uint8Array, headers?: Record<string, string>): Promise<void>;
  /** Multiplies message counts (1 = the full Watermill sizes). */
  readonly scale?: number;
  /** Per-scenario timeout. Default 120 s. */
  readonly timeoutMs?: number;
}

/** node:test's `it`, with the target's per-scenario timeout. */
export interface ScenarioIt {
  (name: string, fn: (t: TestContext) => Promise<void>): void;
  (name: string, options: TestOptions, fn: (t: TestContext) => Promise<void>): void;
}

/**
 * The timeout goes on each scenario: on the suite's describe it would bound
 * the whole suite (node:test suites time out as a whole), and a slow machine
 * then cancels the last scenarios.
 */
export function scenarioIt(timeout: number): ScenarioIt {
  return (
    name: string,
    a: TestOptions | ((t: TestContext) => Promise<void>),
    b?: (t: TestContext) => Promise<void>,
  ): void => {
    const [options, fn] = typeof a === 'function' ? [{}, a] : [a, b];
    void nodeIt(name, { timeout, ...options }, fn);
  };
}

export interface ConformanceKit {
  /** Registers one scenario (with the per-scenario timeout). */
  readonly it: ScenarioIt;
  readonly target: ConformanceTarget;
  /** A new bus on the target (closed after the suite unless removed from `open`). */
  bus(overrides?: Partial<BusOverrides>): Promise<EventBus>;
  readonly open: Set<EventBus>;
  /** A message count scaled by the target's `scale`. */
  n(count: number): number;
  readonly timeout: number;
  /** The transport's declared features (known once the suite's first bus exists). */
  features(): TransportFeatures;
}

export interface TestPayload {
  readonly n: number;
  readonly tag?: string;
}

export const uniqueTopic = (name: string): string => `ct-${name}-${randomUUID().slice(0, 8)}`;

/** Publishes `total` envelopes over `keys` aggregates from `publishers` concurrent publishers, per-key in order. */
export async function publishMany(
  bus: EventBus,
  topic: string,
  options: { total: number; keys: number; publishers: number; checker?: OrderChecker; prefix?: string },
): Promise<string[]> {
  const { total, keys, publishers, checker } = options;
  const prefix = options.prefix ?? 'agg';
  const perKey = Math.ceil(total / keys);
  const ids: string[] = [];
  // Each publisher owns whole aggregates, so per-aggregate publish order is well defined.
  await Promise.all(
    Array.from({ length: publishers }, async (_, p) => {
      for (let k = p; k < keys; k += publishers) {
        for (let i = 0; i < perKey; i++) {
          const n = k * perKey + i;
          if (n >= total) break;
          const eventId = randomUUID();
          const key = `${prefix}-${k}`;
          checker?.expect(eventId, key, i);
          ids.push(eventId);
          await bus.publishEnvelope(topic, {
            eventId,
            aggregateId: key,
            eventType: 'Test',
            eventVersion: i,
            payload: { n } satisfies TestPayload,
          });
        }
      }
    }),
  );
  return ids;
}

export function ackInto(checker: OrderChecker): (r: PublishResult) => void {
  return (r) => (r.success ? checker.acknowledged(r.eventId) : checker.failed(r.eventId));
}

export function assertClean(checker: OrderChecker, allowDuplicates = true): void {
  const r = checker.report();
  const msg = formatReport(r);
  assert.equal(r.lost, 0, `lost messages: ${msg}`);
  assert.equal(r.outOfOrder, 0, `out of order: ${msg}`);
  assert.equal(r.unexpected, 0, `unexpected: ${msg}`);
  assert.equal(r.unknown, 0, `publishes with unknown outcome: ${msg}`);
  if (!allowDuplicates) assert.equal(r.duplicated, 0, `duplicates: ${msg}`);
}
