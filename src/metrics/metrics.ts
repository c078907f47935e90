/**
 * Prometheus metrics with the Go SDK's names (README.md, Metrics), namespaced
 * `<transport>_eventbus_<clientId>`. Metrics are get-or-create on the
 * registry so several buses (or re-created ones) can share one registry.
 */

import type { Registry } from 'prom-client';
import client from 'prom-client';

export function metricNamespace(transport: string, clientId: string): string {
  return `${transport}_eventbus_${clientId}`.replace(/[^a-zA-Z0-9_]/g, '_');
}

/**
 * How many live buses use each metric of a registry: a metric is removed from
 * the registry when the last bus using it closes (buses with the same
 * transport and clientId share their metrics).
 */
const usersByRegistry = new WeakMap<Registry, Map<string, number>>();

function getOrCreate<T>(registry: Registry, name: string, create: () => T, claimed: string[]): T {
  let users = usersByRegistry.get(registry);
  if (!users) {
    users = new Map();
    usersByRegistry.set(registry, users);
  }
  users.set(name, (users.get(name) ?? 0) + 1);
  claimed.push(name);
  return (registry.getSingleMetric(name) as T | undefined) ?? create();
}

/** Gives up a bus's claims; a metric nobody uses any more leaves the registry. */
function release(registry: Registry, claimed: readonly string[]): void {
  const users = usersByRegistry.get(registry);
  for (const name of claimed) {
    const left = (users?.get(name) ?? 1) - 1;
    if (left > 0) {
      users?.set(name, left);
      continue;
    }
    users?.delete(name);
    registry.removeSingleMetric(name);
  }
}

/**
 * prom-client's `inc()` costs ~0.4 µs (it hashes the label set on every
 * call), several times per message. Hot-path counters therefore count into
 * plain numbers ("cells") and are pushed into prom-client by the metric's
 * `collect()` hook, which prom-client runs before every scrape: exact values,
 * no per-message cost.
 */
interface Cell {
  readonly labels: Record<string, string>;
  value: number;
  flushed: number;
}

const cellsByMetric = new WeakMap<object, Set<Cell>>();

function flushCells(metric: client.Counter<string>): void {
  const cells = cellsByMetric.get(metric);
  if (!cells) return;
  for (const cell of cells) {
    const delta = cell.value - cell.flushed;
    if (delta > 0) {
      metric.inc(cell.labels, delta);
      cell.flushed = cell.value;
    }
  }
}

function cellCounter(
  registry: Registry,
  name: string,
  help: string,
  labelNames: string[],
  claimed: string[],
): client.Counter<string> {
  return getOrCreate(
    registry,
    name,
    () =>
      new client.Counter({
        name,
        help,
        labelNames,
        registers: [registry],
        collect() {
          flushCells(this);
        },
      }),
    claimed,
  );
}

function cell(
  metric: client.Counter<string>,
  labels: Record<string, string>,
  mine: Map<Cell, client.Counter<string>>,
): Cell {
  let cells = cellsByMetric.get(metric);
  if (!cells) {
    cells = new Set();
    cellsByMetric.set(metric, cells);
  }
  const c: Cell = { labels, value: 0, flushed: 0 };
  cells.add(c);
  mine.set(c, metric);
  return c;
}

/** Pushes a closing bus's counts into metrics that stay (shared) and drops its cells. */
function retireCells(mine: Map<Cell, client.Counter<string>>): void {
  for (const [c, metric] of mine) {
    const delta = c.value - c.flushed;
    if (delta > 0) metric.inc(c.labels, delta);
    cellsByMetric.get(metric)?.delete(c);
  }
  mine.clear();
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
  /** Metric names this bus uses, and its counter cells: given back by unregister(). */
  const claimed: string[] = [];
  const mine = new Map<Cell, client.Counter<string>>();
  const labels = ['topic', 'group'];
  const buckets = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30];
  const sent = cellCounter(
    reg,
    `${ns}_messages_sent_total`,
    'Messages handed to the actor pool',
    labels,
    claimed,
  );
  const processed = cellCounter(
    reg,
    `${ns}_messages_processed_total`,
    'Messages whose handler finished, by outcome',
    [...labels, 'outcome'],
    claimed,
  );
  const latency = getOrCreate(
    reg,
    `${ns}_message_latency_seconds`,
    () =>
      new client.Histogram({
        name: `${ns}_message_latency_seconds`,
        help: 'Handler latency per message (all attempts)',
        labelNames: labels,
        buckets,
        registers: [reg],
      }),
    claimed,
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
    claimed,
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
    claimed,
  );
  const restarted = cellCounter(
    reg,
    `${ns}_actor_restarted_total`,
    'Actors restarted by the supervisor after a crash',
    labels,
    claimed,
  );
  const deadLetters = cellCounter(
    reg,
    `${ns}_dead_letters_total`,
    'Messages dead-lettered (or parked), by reason',
    [...labels, 'reason'],
    claimed,
  );
  const stuck = getOrCreate(
    reg,
    `${ns}_stuck_handlers`,
    () =>
      new client.Gauge({
        name: `${ns}_stuck_handlers`,
        help: 'Handlers past their timeout that ignored the abort and have not settled; their actor waits',
        labelNames: labels,
        registers: [reg],
      }),
    claimed,
  );
  const deadLetterFailures = cellCounter(
    reg,
    `${ns}_dead_letter_failures_total`,
    'Dead-letter or parking publishes that failed (the message waits and is retried)',
    labels,
    claimed,
  );
  const published = cellCounter(
    reg,
    `${pns}_publish_messages_total`,
    'Publishes acknowledged by the broker',
    ['topic'],
    claimed,
  );
  const publishErrors = cellCounter(
    reg,
    `${pns}_publish_errors_total`,
    'Publishes that failed, by error code',
    ['topic', 'code'],
    claimed,
  );
  const ackLatency = getOrCreate(
    reg,
    `${pns}_publish_ack_latency_seconds`,
    () =>
      new client.Histogram({
        name: `${pns}_publish_ack_latency_seconds`,
        help: 'Time from send to broker ack',
        buckets,
        registers: [reg],
      }),
    claimed,
  );
  let pendingNow = 0;
  getOrCreate(
    reg,
    `${pns}_publish_pending`,
    () =>
      new client.Gauge({
        name: `${pns}_publish_pending`,
        help: 'Publishes awaiting a broker ack',
        registers: [reg],
        collect() {
          this.set(pendingNow);
        },
      }),
    claimed,
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
    claimed,
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
    claimed,
  );
  const groupOwned = getOrCreate(
    reg,
    `${pns}_group_partitions_owned`,
    () =>
      new client.Gauge({
        name: `${pns}_group_partitions_owned`,
        help: 'Partitions (lanes) this member holds a lease on',
        labelNames: labels,
        registers: [reg],
      }),
    claimed,
  );
  const groupClaims = cellCounter(
    reg,
    `${pns}_group_partition_claims_total`,
    'Partition leases claimed',
    labels,
    claimed,
  );
  const groupHandoffs = cellCounter(
    reg,
    `${pns}_group_handoffs_total`,
    'Partitions handed over gracefully (rebalance, leave)',
    labels,
    claimed,
  );
  const groupLost = cellCounter(
    reg,
    `${pns}_group_leases_lost_total`,
    'Partition leases lost without a handoff (taken over, or lapsed while paused)',
    labels,
    claimed,
  );
  const handoffSeconds = getOrCreate(
    reg,
    `${pns}_group_handoff_seconds`,
    () =>
      new client.Histogram({
        name: `${pns}_group_handoff_seconds`,
        help: 'Duration of a graceful partition handoff (drain + release)',
        labelNames: labels,
        buckets,
        registers: [reg],
      }),
    claimed,
  );
  const outboxFailing = getOrCreate(
    reg,
    `${pns}_outbox_failing`,
    () =>
      new client.Gauge({
        name: `${pns}_outbox_failing`,
        help: 'Unpublished outbox rows whose publish failed at least once',
        registers: [reg],
      }),
    claimed,
  );
  const outboxFailingAge = getOrCreate(
    reg,
    `${pns}_outbox_failing_oldest_seconds`,
    () =>
      new client.Gauge({
        name: `${pns}_outbox_failing_oldest_seconds`,
        help: 'Age of the oldest unpublished outbox row whose publish failed at least once',
        registers: [reg],
      }),
    claimed,
  );
  const publishedByTopic = new Map<string, Cell>();
  const errorCells = new Map<string, Cell>();

  let unregistered = false;
  return {
    registry: reg,
    unregister() {
      if (unregistered) return;
      unregistered = true;
      retireCells(mine);
      release(reg, claimed);
    },
    forPool(topic, group) {
      const l = { topic, group };
      const sentC = cell(sent, l, mine);
      const okC = cell(processed, { ...l, outcome: 'success' }, mine);
      const failC = cell(processed, { ...l, outcome: 'failure' }, mine);
      const restartC = cell(restarted, l, mine);
      const deadLetterFailC = cell(deadLetterFailures, l, mine);
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
            c = cell(deadLetters, { ...l, reason }, mine);
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
      const claimsC = cell(groupClaims, l, mine);
      const handoffsC = cell(groupHandoffs, l, mine);
      const lostC = cell(groupLost, l, mine);
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
          c = cell(published, { topic }, mine);
          publishedByTopic.set(topic, c);
        }
        c.value++;
      },
      failed: (topic, code) => {
        const key = `${topic}\u0000${code}`;
        let c = errorCells.get(key);
        if (!c) {
          c = cell(publishErrors, { topic, code }, mine);
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
