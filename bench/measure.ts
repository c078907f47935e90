/**
 * What every measured run shares: a counter the hot path bumps (stalls, and
 * resource checkpoints at every tenth and at 100k), a completion wait with a
 * deadline, and `measured`, which takes the resource baseline (after a full
 * GC), runs the body, summarises and releases its checker, then measures
 * "after" once handles settled.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { CheckerReport, OrderChecker } from '../src/testing/checker.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** A gap between two consecutive messages longer than this counts as a stall. */
export const STALL_MS = 500;

export interface Memory {
  readonly rss: number;
  readonly heapUsed: number;
  readonly handles: number;
}
export interface Checkpoint extends Memory {
  readonly processed: number;
}
export interface RunResources {
  readonly before: Memory;
  /** Highest values seen during the run (250 ms samples and checkpoints). */
  readonly during: { readonly rssMax: number; readonly heapUsedMax: number; readonly handlesMax: number };
  /** After close, up to 1 s for handles to settle, and a full GC. */
  readonly after: Memory;
  /** after.handles − before.handles (0 = back to baseline). */
  readonly handleDelta: number;
  /** Handle types whose count grew over the run. */
  readonly leakedHandleTypes: Readonly<Record<string, number>>;
  readonly checkpoints: readonly Checkpoint[];
}
export interface StallStats {
  /** Handled messages whose broker delivery count was > 1. */
  readonly redelivered: number;
  readonly count: number;
  readonly totalMs: number;
  readonly longestGapMs: number;
}
/** What the broker stored (read back untimed): tells publish-side from consume-side problems. */
export interface StoredOrder {
  readonly outOfOrder: number;
  readonly lost: number;
  readonly duplicated: number;
  readonly examples: readonly string[];
}
export interface RunOutcome {
  readonly elapsedMs: number;
  readonly checker: OrderChecker;
  readonly notes: string[];
  /** Consumption runs: every ack / offset commit reached the broker. */
  readonly acksSettled?: boolean;
  /** Our subscriber's transport counters at the end (health().details). */
  readonly transportStats?: unknown;
  readonly stored?: StoredOrder;
}

function memory(): Memory {
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, handles: process.getActiveResourcesInfo().length };
}

function handleTypes(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of process.getActiveResourcesInfo()) out[t] = (out[t] ?? 0) + 1;
  return out;
}

/** Resources of one run: baseline, maxima, checkpoints (a full GC before each with `gcAtCheckpoints`). */
class Probe {
  readonly #types = handleTypes();
  readonly checkpoints: Checkpoint[] = [];
  max = { rssMax: 0, heapUsedMax: 0, handlesMax: 0 };
  readonly before: Memory;
  readonly gcAtCheckpoints: boolean;
  constructor(gcAtCheckpoints: boolean) {
    this.gcAtCheckpoints = gcAtCheckpoints;
    gc();
    this.before = this.sample();
  }
  sample(): Memory {
    const m = memory();
    const { rssMax, heapUsedMax, handlesMax } = this.max;
    this.max = {
      rssMax: Math.max(rssMax, m.rss),
      heapUsedMax: Math.max(heapUsedMax, m.heapUsed),
      handlesMax: Math.max(handlesMax, m.handles),
    };
    return m;
  }
  checkpoint(processed: number): void {
    if (this.gcAtCheckpoints) gc();
    this.checkpoints.push({ ...this.sample(), processed });
  }
  async finish(): Promise<RunResources> {
    const deadline = performance.now() + 1_000;
    while (memory().handles > this.before.handles && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    gc();
    const after = memory();
    const leaked = Object.entries(handleTypes())
      .filter(([type, count]) => count > (this.#types[type] ?? 0))
      .map(([type, count]) => [type, count - (this.#types[type] ?? 0)]);
    return {
      before: this.before,
      during: this.max,
      after,
      handleDelta: after.handles - this.before.handles,
      leakedHandleTypes: Object.fromEntries(leaked),
      checkpoints: this.checkpoints,
    };
  }
}

export class Counter {
  n = 0;
  stalls = 0;
  stalledMs = 0;
  longestGapMs = 0;
  redelivered = 0;
  #last = 0;
  #nextMark: number;
  readonly #step: number;
  #waiters: { target: number; resolve: () => void }[] = [];
  readonly target: number;
  readonly probe: Probe | undefined;

  constructor(target: number, probe?: Probe) {
    this.target = target;
    this.probe = probe;
    this.#step = Math.max(1, Math.floor(target / 10));
    this.#nextMark = this.#after(0);
  }

  /** The next checkpoint after n: every tenth of the target, plus 100,000 (the soak's reference point). */
  #after(n: number): number {
    const next = n + this.#step;
    if (n < 100_000 && next > 100_000 && this.target >= 100_000) return 100_000;
    return n < this.target && next > this.target ? this.target : next;
  }

  /** One more message; `deliveries` is the broker's delivery count when known. */
  inc(deliveries = 1): void {
    if (deliveries > 1) this.redelivered++;
    const now = performance.now();
    const gap = now - this.#last;
    if (this.n > 0 && gap > this.longestGapMs) this.longestGapMs = gap;
    if (this.n > 0 && gap > STALL_MS) {
      this.stalls++;
      this.stalledMs += gap;
    }
    this.#last = now;
    const n = ++this.n;
    if (n === this.#nextMark) {
      this.probe?.checkpoint(n);
      this.#nextMark = this.#after(n);
    }
    if (this.#waiters.some((w) => n >= w.target)) {
      for (const w of this.#waiters.filter((x) => n >= x.target)) w.resolve();
      this.#waiters = this.#waiters.filter((w) => n < w.target);
    }
  }

  /** Resolves once n >= target (default: the counter's target). */
  reached(target = this.target): Promise<void> {
    if (this.n >= target) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ target, resolve }));
  }

  stallStats(): StallStats {
    return {
      redelivered: this.redelivered,
      count: this.stalls,
      totalMs: Math.round(this.stalledMs),
      longestGapMs: Math.round(this.longestGapMs),
    };
  }
}

/** The consumer callback of every runner: classify, count (and stamp latency arrivals). */
export type OnEvent = (id: string, key: string, version: number, deliveries?: number) => void;
export function observer(checker: OrderChecker, consumed: Counter, arrived?: (id: string) => void): OnEvent {
  return (id, key, version, deliveries) => {
    arrived?.(id);
    checker.observe(id, key, version);
    consumed.inc(deliveries);
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

/**
 * Calls `send(from, to)` over [0, n) in `batch`-sized ranges, in order, with
 * at most `limit` unsettled at once (the next as soon as one settles);
 * resolves once all settled. A counter and one waiter, not a race over the
 * pending set: the raw NATS publisher runs it per message with windows of 5,000.
 */
export async function pipelined(
  n: number,
  batch: number,
  limit: number,
  send: (from: number, to: number) => Promise<unknown>,
): Promise<void> {
  if (!(Number.isSafeInteger(batch) && batch > 0 && Number.isSafeInteger(limit) && limit > 0)) {
    throw new Error(`Expected a positive batch and limit, got ${batch} and ${limit}`);
  }
  let inFlight = 0;
  let wake: (() => void) | undefined;
  const settled = (): void => {
    inFlight--;
    const resume = wake;
    wake = undefined;
    resume?.();
  };
  const oneSettles = () => new Promise<void>((resolve) => (wake = resolve));
  for (let from = 0; from < n; from += batch) {
    if (inFlight >= limit) await oneSettles(); // no await while there is room: the loop stays synchronous
    inFlight++;
    void send(from, Math.min(n, from + batch)).then(settled, settled);
  }
  while (inFlight > 0) await oneSettles();
}

/**
 * Re-checks `check` every 50 ms: true once it holds, false when `timeoutMs`
 * passed first (the broker-side settle checks, untimed); its errors propagate.
 */
export async function holdsWithin(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (performance.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Generous completion deadline for n messages: a stall shows up as a note, not a hang. */
export const deadlineFor = (n: number): number => 60_000 + n * 2;

/**
 * Runs `body` between a resource baseline (before anything is opened) and the
 * after-close measurement; `body` must close what it opened. The checker is
 * summarised and released before "after", so the bench's own bookkeeping is
 * not counted as ours.
 */
export async function measured<T extends RunOutcome>(
  total: number,
  body: (counter: Counter) => Promise<T>,
  gcAtCheckpoints = false,
): Promise<{
  outcome: Omit<T, 'checker'>;
  report: CheckerReport;
  resources: RunResources;
  stalls: StallStats;
}> {
  const probe = new Probe(gcAtCheckpoints);
  const timer = setInterval(() => probe.sample(), 250);
  const counter = new Counter(total, probe);
  let result: T | undefined;
  try {
    result = await body(counter);
  } finally {
    clearInterval(timer);
  }
  const report = result.checker.report();
  const { checker: _released, ...outcome } = result;
  result = undefined;
  const resources = await probe.finish();
  if (resources.handleDelta > 0) {
    const types = JSON.stringify(resources.leakedHandleTypes);
    outcome.notes.push(`handles not back to baseline after close: +${resources.handleDelta} (${types})`);
  }
  return { outcome, report, resources, stalls: counter.stallStats() };
}
