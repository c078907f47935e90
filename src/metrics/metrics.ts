/**
 * Prometheus metrics with the Go SDK's names (SPEC §6), namespaced
 * `<transport>_eventbus_<clientId>`. Metrics are get-or-create on the
 * registry so several buses (or re-created ones) can share one registry.
 */

import type { Registry } from 'prom-client';
import client from 'prom-client';

export function metricNamespace(transport: string, clientId: string): string {
  return `${transport}_eventbus_${clientId}`.replace(/[^a-zA-Z0-9_]/g, '_');
}

function getOrCreate<T>(registry: Registry, name: string, create: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create();
}

/** Per-subscription (topic label) actor-pool metrics. */
export interface PoolMetrics {
  messageSent(): void;
  messageProcessed(success: boolean, latencySeconds: number): void;
  inboxDepth(depth: number, utilization: number): void;
  actorRestarted(): void;
  deadLettered(reason: string): void;
  rawFailure(): void;
}

export interface PublishMetrics {
  published(topic: string): void;
  failed(topic: string, code: string): void;
  ackLatency(seconds: number): void;
  pending(count: number): void;
}

export interface OutboxMetrics {
  pending(count: number): void;
  lagSeconds(seconds: number): void;
}

export interface BusMetrics {
  readonly registry: Registry | undefined;
  forPool(topic: string, group: string): PoolMetrics;
  readonly publish: PublishMetrics;
  readonly outbox: OutboxMetrics;
}

const noopPool: PoolMetrics = {
  messageSent() {},
  messageProcessed() {},
  inboxDepth() {},
  actorRestarted() {},
  deadLettered() {},
  rawFailure() {},
};

export const noopMetrics: BusMetrics = {
  registry: undefined,
  forPool: () => noopPool,
  publish: { published() {}, failed() {}, ackLatency() {}, pending() {} },
  outbox: { pending() {}, lagSeconds() {} },
};

export function createBusMetrics(transport: string, clientId: string, registry?: Registry): BusMetrics {
  const reg = registry ?? client.register;
  const ns = `${metricNamespace(transport, clientId)}_actor_pool`;
  const pns = metricNamespace(transport, clientId);
  const labels = ['topic', 'group'];
  const sent = getOrCreate(
    reg,
    `${ns}_messages_sent_total`,
    () =>
      new client.Counter({
        name: `${ns}_messages_sent_total`,
        help: 'Messages handed to the actor pool',
        labelNames: labels,
        registers: [reg],
      }),
  );
  const processed = getOrCreate(
    reg,
    `${ns}_messages_processed_total`,
    () =>
      new client.Counter({
        name: `${ns}_messages_processed_total`,
        help: 'Messages whose handler finished, by outcome',
        labelNames: [...labels, 'outcome'],
        registers: [reg],
      }),
  );
  const latency = getOrCreate(
    reg,
    `${ns}_message_latency_seconds`,
    () =>
      new client.Histogram({
        name: `${ns}_message_latency_seconds`,
        help: 'Handler latency per message (all attempts)',
        labelNames: labels,
        buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
        registers: [reg],
      }),
  );
  const depth = getOrCreate(
    reg,
    `${ns}_inbox_depth`,
    () =>
      new client.Gauge({
        name: `${ns}_inbox_depth`,
        help: 'Messages queued in actor inboxes',
        labelNames: labels,
        registers: [reg],
      }),
  );
  const utilization = getOrCreate(
    reg,
    `${ns}_inbox_utilization`,
    () =>
      new client.Gauge({
        name: `${ns}_inbox_utilization`,
        help: 'Queued messages / total inbox capacity (0..1)',
        labelNames: labels,
        registers: [reg],
      }),
  );
  const restarted = getOrCreate(
    reg,
    `${ns}_actor_restarted_total`,
    () =>
      new client.Counter({
        name: `${ns}_actor_restarted_total`,
        help: 'Actors restarted by the supervisor after a crash',
        labelNames: labels,
        registers: [reg],
      }),
  );
  const deadLetters = getOrCreate(
    reg,
    `${ns}_dead_letters_total`,
    () =>
      new client.Counter({
        name: `${ns}_dead_letters_total`,
        help: 'Messages dead-lettered (or parked), by reason',
        labelNames: [...labels, 'reason'],
        registers: [reg],
      }),
  );
  const published = getOrCreate(
    reg,
    `${pns}_publish_messages_total`,
    () =>
      new client.Counter({
        name: `${pns}_publish_messages_total`,
        help: 'Publishes acknowledged by the broker',
        labelNames: ['topic'],
        registers: [reg],
      }),
  );
  const publishErrors = getOrCreate(
    reg,
    `${pns}_publish_errors_total`,
    () =>
      new client.Counter({
        name: `${pns}_publish_errors_total`,
        help: 'Publishes that failed, by error code',
        labelNames: ['topic', 'code'],
        registers: [reg],
      }),
  );
  const ackLatency = getOrCreate(
    reg,
    `${pns}_publish_ack_latency_seconds`,
    () =>
      new client.Histogram({
        name: `${pns}_publish_ack_latency_seconds`,
        help: 'Time from send to broker ack',
        buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
        registers: [reg],
      }),
  );
  const pending = getOrCreate(
    reg,
    `${pns}_publish_pending`,
    () =>
      new client.Gauge({
        name: `${pns}_publish_pending`,
        help: 'Publishes awaiting a broker ack',
        registers: [reg],
      }),
  );
  const outboxPending = getOrCreate(
    reg,
    `${pns}_outbox_pending`,
    () =>
      new client.Gauge({
        name: `${pns}_outbox_pending`,
        help: 'Outbox rows not yet published',
        registers: [reg],
      }),
  );
  const outboxLag = getOrCreate(
    reg,
    `${pns}_outbox_lag_seconds`,
    () =>
      new client.Gauge({
        name: `${pns}_outbox_lag_seconds`,
        help: 'Age of the oldest unpublished outbox row',
        registers: [reg],
      }),
  );

  return {
    registry: reg,
    forPool(topic, group) {
      const l = { topic, group };
      const sentL = sent.labels(l);
      const okL = processed.labels({ ...l, outcome: 'success' });
      const failL = processed.labels({ ...l, outcome: 'failure' });
      const latencyL = latency.labels(l);
      const depthL = depth.labels(l);
      const utilL = utilization.labels(l);
      const restartL = restarted.labels(l);
      return {
        messageSent: () => sentL.inc(),
        messageProcessed(success, seconds) {
          (success ? okL : failL).inc();
          latencyL.observe(seconds);
        },
        inboxDepth(d, u) {
          depthL.set(d);
          utilL.set(u);
        },
        actorRestarted: () => restartL.inc(),
        deadLettered: (reason) => deadLetters.inc({ ...l, reason }),
        rawFailure: () => failL.inc(),
      };
    },
    publish: {
      published: (topic) => published.inc({ topic }),
      failed: (topic, code) => publishErrors.inc({ topic, code }),
      ackLatency: (s) => ackLatency.observe(s),
      pending: (n) => pending.set(n),
    },
    outbox: {
      pending: (n) => outboxPending.set(n),
      lagSeconds: (s) => outboxLag.set(s),
    },
  };
}
