/**
 * Prometheus metrics with the Go SDK's names (README.md, Metrics), namespaced
 * `<transport>_eventbus_<clientId>`. How a bus shares a registry with others
 * and counts without per-message cost is in claims.ts.
 */

import type { Registry } from 'prom-client';
import client from 'prom-client';
import { type Cell, MetricClaims } from './claims.ts';

export function metricNamespace(transport: string, clientId: string): string {
  return `${transport}_eventbus_${clientId}`.replace(/[^a-zA-Z0-9_]/g, '_');
}

/** Per-subscription (topic label) actor-pool metrics. */
export interface PoolMetrics {
  messageSent(): void;
  messageProcessed(success: boolean, latencySeconds: number): void;
  inboxDepth(depth: number, utilization: number): void;
  actorRestarted(): void;
  deadLettered(reason: string): void;
  rawFailure(): void;
  /** Handlers that timed out, ignored their abort signal and have not settled yet (a gauge). */
  stuckHandlers(count: number): void;
  /** A dead-letter (or parking) publish failed; the message waits and it is retried. */
  deadLetterFailed(): void;
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
  /** Unpublished rows that failed at least once, and the age of the oldest. */
  failing?(count: number, oldestSeconds: number): void;
}

/** A consumer-group member's partition ownership (README.md, Ordering across the members of a group). */
export interface GroupMetrics {
  owned(partitions: number): void;
  claimed(): void;
  handedOff(seconds: number): void;
  leaseLost(): void;
}

export interface BusMetrics {
  readonly registry: Registry | undefined;
  forPool(topic: string, group: string): PoolMetrics;
  forGroup(topic: string, group: string): GroupMetrics;
  readonly publish: PublishMetrics;
  readonly outbox: OutboxMetrics;
  /**
   * Removes this bus's metrics from the registry (on close), so a closed bus
   * no longer shows and a new bus can register the same names. Metrics shared
   * with a live bus (same transport and clientId) stay until it closes too.
   * Idempotent.
   */
  unregister(): void;
}

const noopPool: PoolMetrics = {
  messageSent() {},
  messageProcessed() {},
  inboxDepth() {},
  actorRestarted() {},
  deadLettered() {},
  rawFailure() {},
  stuckHandlers() {},
  deadLetterFailed() {},
};

export const noopGroup: GroupMetrics = { owned() {}, claimed() {}, handedOff() {}, leaseLost() {} };

export const noopMetrics: BusMetrics = {
  registry: undefined,
  forPool: () => noopPool,
  forGroup: () => noopGroup,
  publish: { published() {}, failed() {}, ackLatency() {}, pending() {} },
  outbox: { pending() {}, lagSeconds() {}, failing() {} },
  unregister() {},
};

export function createBusMetrics(transport: string, clientId: string, registry?: Registry): BusMetrics {
  const reg = registry ?? client.register;
  const ns = `${metricNamespace(transport, clientId)}_actor_pool`;
  const pns = metricNamespace(transport, clientId);
  const claims = new MetricClaims(reg);
  const labels = ['topic', 'group'];
  const buckets = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30];
  const sent = claims.counter(`${ns}_messages_sent_total`, 'Messages handed to the actor pool', labels);
  const processed = claims.counter(
    `${ns}_messages_processed_total`,
    'Messages whose handler finished, by outcome',
    [...labels, 'outcome'],
  );
  const latency = claims.histogram(
    `${ns}_message_latency_seconds`,
    'Handler latency per message (all attempts)',
    buckets,
    labels,
  );
  const depth = claims.gauge(`${ns}_inbox_depth`, 'Messages queued in actor inboxes', labels);
  const utilization = claims.gauge(
    `${ns}_inbox_utilization`,
    'Queued messages / total inbox capacity (0..1)',
    labels,
  );
  const restarted = claims.counter(
    `${ns}_actor_restarted_total`,
    'Actors restarted by the supervisor after a crash',
    labels,
  );
  const deadLetters = claims.counter(
    `${ns}_dead_letters_total`,
    'Messages dead-lettered (or parked), by reason',
    [...labels, 'reason'],
  );
  const stuck = claims.gauge(
    `${ns}_stuck_handlers`,
    'Handlers past their timeout that ignored the abort and have not settled; their actor waits',
    labels,
  );
  const deadLetterFailures = claims.counter(
    `${ns}_dead_letter_failures_total`,
    'Dead-letter or parking publishes that failed (the message waits and is retried)',
    labels,
  );
  const published = claims.counter(`${pns}_publish_messages_total`, 'Publishes acknowledged by the broker', [
    'topic',
  ]);
  const publishErrors = claims.counter(
    `${pns}_publish_errors_total`,
    'Publishes that failed, by error code',
    ['topic', 'code'],
  );
  const ackLatency = claims.histogram(
    `${pns}_publish_ack_latency_seconds`,
    'Time from send to broker ack',
    buckets,
  );
  let pendingNow = 0;
  claims.gauge(`${pns}_publish_pending`, 'Publishes awaiting a broker ack', undefined, function collect() {
    this.set(pendingNow);
  });
  const outboxPending = claims.gauge(`${pns}_outbox_pending`, 'Outbox rows not yet published');
  const outboxLag = claims.gauge(`${pns}_outbox_lag_seconds`, 'Age of the oldest unpublished outbox row');
  const groupOwned = claims.gauge(
    `${pns}_group_partitions_owned`,
    'Partitions (lanes) this member holds a lease on',
    labels,
  );
  const groupClaims = claims.counter(
    `${pns}_group_partition_claims_total`,
    'Partition leases claimed',
    labels,
  );
  const groupHandoffs = claims.counter(
    `${pns}_group_handoffs_total`,
    'Partitions handed over gracefully (rebalance, leave)',
    labels,
  );
  const groupLost = claims.counter(
    `${pns}_group_leases_lost_total`,
    'Partition leases lost without a handoff (taken over, or lapsed while paused)',
    labels,
  );
  const handoffSeconds = claims.histogram(
    `${pns}_group_handoff_seconds`,
    'Duration of a graceful partition handoff (drain + release)',
    buckets,
    labels,
  );
  const outboxFailing = claims.gauge(
    `${pns}_outbox_failing`,
    'Unpublished outbox rows whose publish failed at least once',
  );
  const outboxFailingAge = claims.gauge(
    `${pns}_outbox_failing_oldest_seconds`,
    'Age of the oldest unpublished outbox row whose publish failed at least once',
  );
  const publishedByTopic = new Map<string, Cell>();
  const errorCells = new Map<string, Cell>();

  let unregistered = false;
  return {
    registry: reg,
    unregister() {
      if (unregistered) return;
      unregistered = true;
      claims.release();
    },
    forPool(topic, group) {
      const l = { topic, group };
      const sentC = claims.cell(sent, l);
      const okC = claims.cell(processed, { ...l, outcome: 'success' });
      const failC = claims.cell(processed, { ...l, outcome: 'failure' });
      const restartC = claims.cell(restarted, l);
      const deadLetterFailC = claims.cell(deadLetterFailures, l);
      const deadByReason = new Map<string, Cell>();
      const latencyL = latency.labels(l);
      return {
        messageSent: () => {
          sentC.value++;
        },
        messageProcessed(success, seconds) {
          (success ? okC : failC).value++;
          latencyL.observe(seconds);
        },
        inboxDepth(d, u) {
          depth.set(l, d);
          utilization.set(l, u);
        },
        actorRestarted: () => {
          restartC.value++;
        },
        deadLettered: (reason) => {
          let c = deadByReason.get(reason);
          if (!c) {
            c = claims.cell(deadLetters, { ...l, reason });
            deadByReason.set(reason, c);
          }
          c.value++;
        },
        rawFailure: () => {
          failC.value++;
        },
        stuckHandlers: (count) => {
          stuck.set(l, count);
        },
        deadLetterFailed: () => {
          deadLetterFailC.value++;
        },
      };
    },
    forGroup(topic, group) {
      const l = { topic, group };
      const claimsC = claims.cell(groupClaims, l);
      const handoffsC = claims.cell(groupHandoffs, l);
      const lostC = claims.cell(groupLost, l);
      const handoffL = handoffSeconds.labels(l);
      return {
        owned: (n) => groupOwned.set(l, n),
        claimed: () => {
          claimsC.value++;
        },
        handedOff: (seconds) => {
          handoffsC.value++;
          handoffL.observe(seconds);
        },
        leaseLost: () => {
          lostC.value++;
        },
      };
    },
    publish: {
      published: (topic) => {
        let c = publishedByTopic.get(topic);
        if (!c) {
          c = claims.cell(published, { topic });
          publishedByTopic.set(topic, c);
        }
        c.value++;
      },
      failed: (topic, code) => {
        const key = `${topic}\u0000${code}`;
        let c = errorCells.get(key);
        if (!c) {
          c = claims.cell(publishErrors, { topic, code });
          errorCells.set(key, c);
        }
        c.value++;
      },
      ackLatency: (s) => ackLatency.observe(s),
      pending: (n) => {
        pendingNow = n;
      },
    },
    outbox: {
      pending: (n) => outboxPending.set(n),
      lagSeconds: (s) => outboxLag.set(s),
      failing: (n, s) => {
        outboxFailing.set(n);
        outboxFailingAge.set(s);
      },
    },
  };
}
