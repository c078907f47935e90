/**
 * What every measured run shares: a counter the hot path bumps (with resource
 * checkpoints at every tenth and at 100k), a completion wait with a deadline,
 * and the wrapper that takes the resource baseline, shows the phase's
 * progress bar and turns the run's outcome into a report row.
 */
import type { CheckerReport, OrderChecker } from '../src/testing/checker.ts';
import type { RunProbe, RunResources, Sampler } from './resources.ts';

/** A gap between two consecutive messages longer than this counts as a stall. */
export const STALL_MS = 500;

interface Waiter {
  readonly target: number;
  readonly resolve: () => void;
}

export class Counter {
  n = 0;
  readonly #target: number;
  readonly #probe: RunProbe | undefined;
  readonly #label: string;
  #nextMark: number;
  #step: number;
  #waiters: Waiter[] = [];

  constructor(target: number, label: string, probe?: RunProbe) {
    this.#target = target;
    this.#probe = probe;
    this.#label = label;
    this.#step = Math.max(1, Math.floor(target / 10));
    this.#nextMark = target >= 100_000 ? Math.min(this.#step, 100_000) : this.#step;
  }

  /** Gaps of more than STALL_MS between consecutive increments (intake stalls), and their total. */
  stalls = 0;
  stalledMs = 0;
  longestGapMs = 0;
  #last = 0;

  /** Messages the broker delivered more than once (delivery count > 1 at the handler). */
  redelivered = 0;

  /** One more message; `deliveries` is the broker's delivery count when known. */
  inc(deliveries = 1): void {
    if (deliveries > 1) this.redelivered++;
    const now = performance.now();
    if (this.n > 0) {
      const gap = now - this.#last;
      if (gap > this.longestGapMs) this.longestGapMs = gap;
      if (gap > STALL_MS) {
        this.stalls++;
        this.stalledMs += gap;
      }
    }
    this.#last = now;
    const n = ++this.n;
    if (n === this.#nextMark) this.#mark(n);
    if (this.#waiters.length > 0 && n >= (this.#waiters[0] as Waiter).target) this.#wake();
  }

  #mark(n: number): void {
    this.#probe?.checkpoint(`${this.#label} ${n}`, n);
    let next = n + this.#step;
    if (n < 100_000 && next > 100_000 && this.#target >= 100_000) next = 100_000;
    if (n < this.#target && next > this.#target) next = this.#target;
    this.#nextMark = next;
  }

  #wake(): void {
    const keep: Waiter[] = [];
    for (const w of this.#waiters) {
      if (this.n >= w.target) w.resolve();
      else keep.push(w);
    }
    this.#waiters = keep.sort((a, b) => a.target - b.target);
  }

  /** Resolves once n >= target (default: the counter's target). */
  reached(target = this.#target): Promise<void> {
    if (this.n >= target) return Promise.resolve();
    return new Promise((resolve) => {
      this.#waiters.push({ target, resolve });
      this.#waiters.sort((a, b) => a.target - b.target);
    });
  }
}

/**
 * The consumer callback every runner uses: classify the message, count it
 * (and, for latency runs, stamp its arrival).
 */
export function observer(
  checker: OrderChecker,
  consumed: Counter,
  arrived?: (id: string) => void,
): (id: string, key: string, version: number, deliveries?: number) => void {
  return (id, key, version, deliveries) => {
    arrived?.(id);
    checker.observe(id, key, version);
    consumed.inc(deliveries);
  };
}

export function stallsOf(counter: Counter): StallStats {
  return {
    redelivered: counter.redelivered,
    count: counter.stalls,
    totalMs: Math.round(counter.stalledMs),
    longestGapMs: Math.round(counter.longestGapMs),
  };
}

/** Resolves with true when `promise` settled within `ms`, false on the deadline. */
export async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true as const), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Generous completion deadline for n messages: a stall shows up as a note, not a hang. */
export function deadlineFor(n: number): number {
  return 60_000 + n * 2;
}

export interface StallStats {
  /** Handled messages whose broker delivery count was > 1 (their first delivery was not settled in time). */
  readonly redelivered: number;
  /** Gaps > STALL_MS between consecutive messages of the run's main counter. */
  readonly count: number;
  readonly totalMs: number;
  readonly longestGapMs: number;
}

export interface RunSpec {
  /** Phase label (progress bar, timeline). */
  readonly label: string;
  readonly total: number;
}

export interface RunOutcome {
  readonly elapsedMs: number;
  readonly checker: OrderChecker;
  readonly notes: string[];
  readonly acksSettled?: boolean;
  /** Our subscriber's transport counters at the end (health().details.subscriptions): pulls, deliveries, skips. */
  readonly transportStats?: unknown;
  /** End-to-end runs: what the broker stored (read back untimed), to tell publish-side from consume-side problems. */
  readonly stored?: StoredOrder;
}

export interface StoredOrder {
  readonly outOfOrder: number;
  readonly lost: number;
  readonly duplicated: number;
  readonly examples: readonly string[];
}

export interface MeasureContext {
  readonly sampler: Sampler;
}

/** What a measured run hands back once its checker was summarised and released. */
export type Measured<T extends { readonly checker: OrderChecker }> = Omit<T, 'checker'>;

/**
 * Runs `body` between a resource baseline (before anything is opened) and the
 * after-close measurement; `body` must close every connection it opened. The
 * checker's report is taken and the checker released before "after" is
 * measured, so the bench's own per-message bookkeeping is not counted as ours.
 */
export async function measured<T extends { readonly notes: string[]; readonly checker: OrderChecker }>(
  ctx: MeasureContext,
  spec: RunSpec,
  body: (probe: RunProbe, counter: Counter) => Promise<T>,
  options: { readonly gcAtCheckpoints?: boolean } = {},
): Promise<{
  outcome: Measured<T>;
  report: CheckerReport;
  resources: RunResources;
  stalls: StallStats;
}> {
  ctx.sampler.phase = spec.label;
  const probe = ctx.sampler.probe();
  probe.gcAtCheckpoints = options.gcAtCheckpoints === true;
  const counter = new Counter(spec.total, spec.label, probe);
  let result: T | undefined = await body(probe, counter);
  const report = result.checker.report();
  const { checker: _released, ...rest } = result;
  const outcome = rest as Measured<T>;
  result = undefined;
  const resources = await probe.finish();
  ctx.sampler.release(probe);
  const notes = outcome.notes;
  if (resources.handleDelta > 0) {
    notes.push(
      `handles not back to baseline after close: +${resources.handleDelta} (${JSON.stringify(resources.leakedHandleTypes)})`,
    );
  }
  return { outcome, report, resources, stalls: stallsOf(counter) };
}
