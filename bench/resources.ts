/**
 * Resource sampling: RSS/heap and active handles (process.getActiveResourcesInfo)
 * before, during and after each run, and a timeline for the HTML report.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as (() => void) | undefined;

/** Full GC when available (it is: --expose-gc is switched on above), so "after" numbers are retained memory. */
export function gcNow(): void {
  collect?.();
}

export interface MemorySnapshot {
  readonly rss: number;
  readonly heapUsed: number;
  readonly heapTotal: number;
  readonly external: number;
  readonly arrayBuffers: number;
}

export interface HandleSnapshot {
  readonly total: number;
  readonly byType: Readonly<Record<string, number>>;
}

export function memoryNow(): MemorySnapshot {
  const m = process.memoryUsage();
  return {
    rss: m.rss,
    heapUsed: m.heapUsed,
    heapTotal: m.heapTotal,
    external: m.external,
    arrayBuffers: m.arrayBuffers,
  };
}

export function handlesNow(): HandleSnapshot {
  const byType: Record<string, number> = {};
  const list = process.getActiveResourcesInfo();
  for (const type of list) byType[type] = (byType[type] ?? 0) + 1;
  return { total: list.length, byType };
}

export interface TimelineSample {
  /** ms since the bench started. */
  readonly t: number;
  readonly rss: number;
  readonly heapUsed: number;
  readonly external: number;
  readonly handles: number;
  readonly phase: string;
}

export interface Checkpoint {
  readonly label: string;
  readonly processed: number;
  readonly rss: number;
  readonly heapUsed: number;
  readonly handles: number;
}

export interface RunResources {
  readonly before: MemorySnapshot & { readonly handles: HandleSnapshot };
  /** Highest values seen while the run was going (sampler ticks and checkpoints). */
  readonly during: { readonly rssMax: number; readonly heapUsedMax: number; readonly handlesMax: number };
  /** After close, settle and a full GC. */
  readonly after: MemorySnapshot & { readonly handles: HandleSnapshot };
  /** after.handles.total - before.handles.total (0 = back to baseline). */
  readonly handleDelta: number;
  /** Handle types whose count grew over the run (empty = back to baseline). */
  readonly leakedHandleTypes: Readonly<Record<string, number>>;
  readonly checkpoints: readonly Checkpoint[];
}

/** One run's view on resources; the sampler feeds `during` while it is active. */
export class RunProbe {
  readonly before: MemorySnapshot & { readonly handles: HandleSnapshot };
  readonly checkpoints: Checkpoint[] = [];
  rssMax = 0;
  heapUsedMax = 0;
  handlesMax = 0;
  /** Full GC before each checkpoint (memory soak: retained memory, not garbage). */
  gcAtCheckpoints = false;

  constructor() {
    gcNow();
    this.before = { ...memoryNow(), handles: handlesNow() };
  }

  observe(rss: number, heapUsed: number, handles: number): void {
    if (rss > this.rssMax) this.rssMax = rss;
    if (heapUsed > this.heapUsedMax) this.heapUsedMax = heapUsed;
    if (handles > this.handlesMax) this.handlesMax = handles;
  }

  /** A sample at a known point of the run (e.g. "100k processed"). */
  checkpoint(label: string, processed: number): void {
    if (this.gcAtCheckpoints) gcNow();
    const m = memoryNow();
    const h = handlesNow().total;
    this.observe(m.rss, m.heapUsed, h);
    this.checkpoints.push({ label, processed, rss: m.rss, heapUsed: m.heapUsed, handles: h });
  }

  /** Waits (up to `settleMs`) for handles to return to the baseline, then GCs and measures. */
  async finish(settleMs = 1_000): Promise<RunResources> {
    const deadline = performance.now() + settleMs;
    let handles = handlesNow();
    while (handles.total > this.before.handles.total && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      handles = handlesNow();
    }
    gcNow();
    const after = { ...memoryNow(), handles };
    const leaked: Record<string, number> = {};
    for (const [type, count] of Object.entries(handles.byType)) {
      const grown = count - (this.before.handles.byType[type] ?? 0);
      if (grown > 0) leaked[type] = grown;
    }
    return {
      before: this.before,
      during: {
        rssMax: Math.max(this.rssMax, this.before.rss),
        heapUsedMax: Math.max(this.heapUsedMax, this.before.heapUsed),
        handlesMax: Math.max(this.handlesMax, this.before.handles.total),
      },
      after,
      handleDelta: handles.total - this.before.handles.total,
      leakedHandleTypes: leaked,
      checkpoints: this.checkpoints,
    };
  }
}

/** Periodic samples for the memory-over-time chart; feeds the active probe. */
export class Sampler {
  readonly samples: TimelineSample[] = [];
  readonly #started = performance.now();
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;
  #phase = 'setup';
  #probe: RunProbe | undefined;

  constructor(intervalMs: number) {
    this.#intervalMs = intervalMs;
  }

  start(): void {
    this.sample();
    this.#timer = setInterval(() => this.sample(), this.#intervalMs);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.sample();
  }

  set phase(label: string) {
    this.#phase = label;
    this.sample();
  }

  get phase(): string {
    return this.#phase;
  }

  /** Starts a run probe (baseline after a GC) that the sampler feeds until `finish`. */
  probe(): RunProbe {
    const probe = new RunProbe();
    this.#probe = probe;
    return probe;
  }

  release(probe: RunProbe): void {
    if (this.#probe === probe) this.#probe = undefined;
  }

  sample(): void {
    const m = process.memoryUsage();
    const handles = process.getActiveResourcesInfo().length;
    this.#probe?.observe(m.rss, m.heapUsed, handles);
    this.samples.push({
      t: Math.round(performance.now() - this.#started),
      rss: m.rss,
      heapUsed: m.heapUsed,
      external: m.external,
      handles,
      phase: this.#phase,
    });
  }
}
