/**
 * One bus's hold on the metrics of a registry. Metrics are get-or-create on
 * the registry so several buses (or re-created ones) can share one registry;
 * each bus claims the names it uses and gives them back on close, and a
 * metric nobody uses any more leaves the registry.
 *
 * prom-client's `inc()` costs ~0.4 µs (it hashes the label set on every
 * call), several times per message. Hot-path counters therefore count into
 * plain numbers ("cells") and are pushed into prom-client by the metric's
 * `collect()` hook, which prom-client runs before every scrape: exact values,
 * no per-message cost.
 */
import type { Registry } from 'prom-client';
import client from 'prom-client';

/**
 * How many live buses use each metric of a registry: a metric is removed from
 * the registry when the last bus using it closes (buses with the same
 * transport and clientId share their metrics).
 */
const usersByRegistry = new WeakMap<Registry, Map<string, number>>();

export interface Cell {
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

export class MetricClaims {
  readonly registry: Registry;
  /** Metric names this bus uses, and its counter cells: given back by release(). */
  readonly #claimed: string[] = [];
  readonly #mine = new Map<Cell, client.Counter<string>>();

  constructor(registry: Registry) {
    this.registry = registry;
  }

  #getOrCreate<T>(name: string, create: () => T): T {
    let users = usersByRegistry.get(this.registry);
    if (!users) {
      users = new Map();
      usersByRegistry.set(this.registry, users);
    }
    users.set(name, (users.get(name) ?? 0) + 1);
    this.#claimed.push(name);
    return (this.registry.getSingleMetric(name) as T | undefined) ?? create();
  }

  /** A counter counted through cells (see cell()). */
  counter(name: string, help: string, labelNames: string[]): client.Counter<string> {
    const registers = [this.registry];
    return this.#getOrCreate(
      name,
      () =>
        new client.Counter({
          name,
          help,
          labelNames,
          registers,
          collect() {
            flushCells(this);
          },
        }),
    );
  }

  gauge(
    name: string,
    help: string,
    labelNames?: string[],
    collect?: (this: client.Gauge<string>) => void,
  ): client.Gauge<string> {
    const registers = [this.registry];
    return this.#getOrCreate(
      name,
      () =>
        new client.Gauge({
          name,
          help,
          ...(labelNames === undefined ? {} : { labelNames }),
          registers,
          ...(collect === undefined ? {} : { collect }),
        }),
    );
  }

  histogram(name: string, help: string, buckets: number[], labelNames?: string[]): client.Histogram<string> {
    const registers = [this.registry];
    return this.#getOrCreate(
      name,
      () =>
        new client.Histogram({
          name,
          help,
          ...(labelNames === undefined ? {} : { labelNames }),
          buckets,
          registers,
        }),
    );
  }

  /** A plain number this bus counts into; the counter's collect() pushes it before each scrape. */
  cell(metric: client.Counter<string>, labels: Record<string, string>): Cell {
    let cells = cellsByMetric.get(metric);
    if (!cells) {
      cells = new Set();
      cellsByMetric.set(metric, cells);
    }
    const c: Cell = { labels, value: 0, flushed: 0 };
    cells.add(c);
    this.#mine.set(c, metric);
    return c;
  }

  /**
   * Pushes this bus's counts into metrics that stay (shared) and drops its
   * cells, then gives up its claims; a metric nobody uses any more leaves the registry.
   */
  release(): void {
    for (const [c, metric] of this.#mine) {
      const delta = c.value - c.flushed;
      if (delta > 0) metric.inc(c.labels, delta);
      cellsByMetric.get(metric)?.delete(c);
    }
    this.#mine.clear();
    const users = usersByRegistry.get(this.registry);
    for (const name of this.#claimed) {
      const left = (users?.get(name) ?? 1) - 1;
      if (left > 0) {
        users?.set(name, left);
        continue;
      }
      users?.delete(name);
      this.registry.removeSingleMetric(name);
    }
  }
}
