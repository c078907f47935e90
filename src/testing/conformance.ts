/**
 * The transport conformance suite (after Watermill's universal Pub/Sub tests):
 * one set of scenarios, run against every transport through the public bus
 * API, gated by the features the transport declares (read from the bus, so
 * they cannot drift from the transport). Every run that moves many messages
 * is judged by the order checker, not by counting. The scenarios live in
 * conformance-delivery.ts, conformance-ordering.ts and conformance-failures.ts.
 */
import { after, before, describe } from 'node:test';
import type { TransportFeatures } from '../core/transport.ts';
import type { EventBus } from '../core/types.ts';
import { runDeliveryScenarios } from './conformance-delivery.ts';
import { runFailureScenarios } from './conformance-failures.ts';
import { type ConformanceKit, type ConformanceTarget, scenarioIt } from './conformance-kit.ts';
import { runOrderingScenarios } from './conformance-ordering.ts';

export type { BusOverrides, ConformanceKit, ConformanceTarget } from './conformance-kit.ts';
export { runDeliveryScenarios, runFailureScenarios, runOrderingScenarios };

/** Registers the whole suite with node:test. */
export function runConformanceSuite(target: ConformanceTarget): void {
  const scale = target.scale ?? 1;
  const timeout = target.timeoutMs ?? 120_000;
  let clients = 0;
  let declared: TransportFeatures | undefined;
  const open = new Set<EventBus>();
  const kit: ConformanceKit = {
    it: scenarioIt(timeout),
    target,
    open,
    timeout,
    n: (count) => Math.max(1, Math.round(count * scale)),
    bus: async (overrides = {}) => {
      const b = await target.createBus({ clientId: `ct${++clients}`, ...overrides });
      open.add(b);
      return b;
    },
    features: () => {
      if (declared === undefined) throw new Error('conformance: features are read in before()');
      return declared;
    },
  };

  describe(`conformance: ${target.name}`, () => {
    before(async () => {
      declared = (await kit.bus()).features;
    });
    after(async () => {
      await Promise.all([...open].map((b) => b.close({ timeoutMs: 5000 })));
    });
    runDeliveryScenarios(kit);
    runOrderingScenarios(kit);
    runFailureScenarios(kit);
  });
}
