/**
 * The relay's Prometheus gauges (`<ns>_outbox_pending`, `<ns>_outbox_lag_seconds`),
 * named like the bus's own metrics so they sit beside them on one registry.
 */
import type { Registry } from 'prom-client';
import { createBusMetrics, type OutboxMetrics } from '../metrics/metrics.ts';

export type { OutboxMetrics };

export interface OutboxMetricsOptions {
  /** The relay's bus transport: 'memory', 'nats' or 'kafka' (the metric namespace's first part). */
  readonly transport: string;
  /** The relay's bus clientId. */
  readonly clientId: string;
  /** Default: prom-client's global registry (as the bus's default). */
  readonly registry?: Registry;
}

/** For `createOutboxRelay({ metrics: createOutboxMetrics({ transport, clientId, registry }) })`. */
export function createOutboxMetrics(options: OutboxMetricsOptions): OutboxMetrics {
  return createBusMetrics(options.transport, options.clientId, options.registry).outbox;
}
