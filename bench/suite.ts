/**
 * The whole run: a warm-up of every path (discarded), then per level the publish, consume and e2e
 * scenarios for every system side by side, then the latency rates, then (optionally) the memory soak
 * and CPU profiles. Every run gets fresh topics / streams (created untimed, deleted afterwards).
 */
import { join } from 'node:path';
import { createOrderChecker, type OrderChecker } from '../src/testing/checker.ts';
import { createCompactChecker } from './compact-checker.ts';
import type { BenchConfig, Level, SystemName } from './config.ts';
import { Counter, measured, type RunOutcome, type StoredOrder } from './measure.ts';
import type { NatsEnv } from './nats.ts';
import { type ProfileSummary, profiled } from './profile.ts';
import { checkerCounts, type LatencyRow, type ThroughputRow, type ThroughputScenario } from './report.ts';
import type { System } from './systems.ts';
import { createWorkload, summarize, type Workload } from './workload.ts';

/** Levels up to this size run `config.repeat` times (median reported); larger levels run once. */
const REPEAT_UP_TO = 10_000;

interface Ctx {
  readonly config: BenchConfig;
  readonly systems: readonly System[];
  readonly nats: NatsEnv | undefined;
  /** Digits only: goes into topic names. */
  readonly stamp: string;
  /** Prefix of profile files. */
  readonly fileStamp: string;
  /** Per level: the raw publisher's best window in this run (its e2e uses it). */
  readonly windows: Map<string, number>;
}

let runSeq = 0;
function workload(ctx: Ctx, scenario: string, level: string, system: string): Workload {
  const { topics, aggregates, payloadBytes } = ctx.config;
  const name = `${ctx.stamp}-${++runSeq}-${scenario}-${level}-${system.replace('-', '')}`;
  return createWorkload({ name, topics, aggregates, payloadBytes });
}

/** "Slow Consumer Detected" lines nats-server logged so far (it drops that client's messages). */
const slowConsumers = (ctx: Ctx): number => ctx.nats?.server.logs().match(/slow consumer/gi)?.length ?? 0;

/** Says whether a reordering happened before (stored) or after the broker. */
function storedNotes(stored: StoredOrder | undefined, outOfOrder: number): string[] {
  if (stored && (stored.outOfOrder > 0 || stored.lost > 0 || stored.duplicated > 0)) {
    return [
      `the broker stored ${stored.outOfOrder} out of per-aggregate order, ${stored.lost} missing, ${stored.duplicated} twice (e.g. ${stored.examples.join(', ')})`,
    ];
  }
  return stored && outOfOrder > 0
    ? ['the broker stored every aggregate in order: the reordering happened on the consuming side']
    : [];
}

/** One measured run on fresh topics (`w` given: already fresh and loaded) → a row. */
async function row(
  ctx: Ctx,
  scenario: ThroughputScenario,
  level: Level,
  sys: System,
  body: (w: Workload, counter: Counter) => Promise<RunOutcome>,
  options: { readonly w?: Workload; readonly results?: Counter; readonly gc?: boolean } = {},
): Promise<ThroughputRow> {
  const w = options.w ?? workload(ctx, scenario, level.name, sys.name);
  if (options.w === undefined) await sys.fresh(w);
  const slowBefore = slowConsumers(ctx);
  const run = await measured(level.messages, (c) => body(w, c), options.gc);
  await sys.drop(w);
  const { elapsedMs, notes, acksSettled, stored, transportStats } = run.outcome;
  const slow = slowConsumers(ctx) - slowBefore;
  if (slow > 0) notes.push(`nats-server logged ${slow} slow-consumer event(s) during the run`);
  notes.push(...storedNotes(stored, run.report.outOfOrder));
  return {
    scenario,
    level: level.name,
    messages: level.messages,
    system: sys.name,
    elapsedMs: Math.round(elapsedMs * 10) / 10,
    msgPerSec: Math.round((level.messages / elapsedMs) * 1000),
    checker: checkerCounts(run.report),
    resources: run.resources,
    stalls: run.stalls,
    ...(options.results === undefined ? {} : { publishStalls: options.results.stallStats() }),
    ...(acksSettled === undefined ? {} : { acksSettled }),
    ...(stored === undefined ? {} : { stored }),
    ...(transportStats === undefined ? {} : { transportStats }),
    notes,
  };
}

async function publishScenario(ctx: Ctx, level: Level): Promise<ThroughputRow[]> {
  const publish = (sys: System, window?: number) =>
    row(ctx, 'publish', level, sys, (w, c) => sys.publish(w, level.messages, c, window));
  const rows: ThroughputRow[] = [];
  for (const sys of ctx.systems) {
    if (sys.windows === undefined) {
      rows.push(await publish(sys));
      continue;
    }
    // The raw client as its docs recommend: a window of concurrent publishes, swept; the best counts.
    const sweep: (ThroughputRow & { window: number })[] = [];
    for (const window of sys.windows) sweep.push({ ...(await publish(sys, window)), window });
    const best = sweep.reduce((a, b) => (b.msgPerSec > a.msgPerSec ? b : a));
    ctx.windows.set(level.name, best.window);
    rows.push({ ...best, windowSweep: sweep.map(({ window, msgPerSec }) => ({ window, msgPerSec })) });
  }
  return rows;
}

/** Per backend, every system's set is loaded (untimed) before any is consumed. */
async function consumeScenario(ctx: Ctx, level: Level): Promise<ThroughputRow[]> {
  const rows: ThroughputRow[] = [];
  const n = level.messages;
  for (const backend of ['nats', 'memory', 'kafka'] as const) {
    const sets: { sys: System; w: Workload; checker: OrderChecker }[] = [];
    for (const sys of ctx.systems.filter((s) => s.backend === backend)) {
      const w = workload(ctx, 'consume', level.name, sys.name);
      const checker = createOrderChecker();
      await sys.fresh(w);
      await sys.preload(w, n, checker, new Counter(n));
      sets.push({ sys, w, checker });
    }
    // Taken out of `sets` for its run: only the run holds the checker, so it is released before "after".
    while (sets.length > 0) {
      const { sys, w, checker } = sets.shift()!;
      rows.push(await row(ctx, 'consume', level, sys, (_, c) => sys.consume(w, n, checker, c), { w }));
    }
  }
  return rows;
}

async function e2eScenario(ctx: Ctx, level: Level): Promise<ThroughputRow[]> {
  const rows: ThroughputRow[] = [];
  for (const sys of ctx.systems) {
    const window = sys.windows === undefined ? undefined : (ctx.windows.get(level.name) ?? 1_000);
    const results = new Counter(level.messages);
    const body = (w: Workload, c: Counter) => sys.e2e(w, level.messages, c, results, window);
    const r = await row(ctx, 'e2e', level, sys, body, { results });
    rows.push(window === undefined ? r : { ...r, window });
  }
  return rows;
}

async function latencyScenario(ctx: Ctx, rate: number): Promise<LatencyRow[]> {
  const rows: LatencyRow[] = [];
  const n = Math.max(100, Math.round(rate * ctx.config.latencySeconds));
  for (const sys of ctx.systems) {
    const run = sys.latency;
    if (run === undefined) continue;
    const w = workload(ctx, `lat${rate}`, 'r', sys.name);
    await sys.fresh(w);
    const { outcome, report, resources, stalls } = await measured(n, (c) => run(w, n, rate, c));
    await sys.drop(w);
    rows.push({
      system: sys.name,
      rate,
      messages: n,
      achievedRate: Math.round((n / outcome.offerMs) * 1000),
      ...summarize(outcome.recorder.histogram),
      checker: checkerCounts(report),
      resources,
      stalls,
      notes: outcome.notes,
    });
  }
  return rows;
}

/**
 * Repeats of one cell → one row: the median run (lower median for even counts), checker counts and stalls
 * summed over all repeats (a loss in any repeat shows), every repeat's msg/s in `samples` and its notes.
 */
export function mergeRepeats(runs: readonly ThroughputRow[]): ThroughputRow[] {
  /** Every numeric field summed over the repeats (the others taken from the first). */
  const summed = <T extends object>(list: readonly T[]): T => {
    const sum = (k: string) => list.reduce((t, x) => t + ((x as Record<string, number>)[k] ?? 0), 0);
    const entries = Object.entries(list[0] ?? {}).map(([k, v]) => [k, typeof v === 'number' ? sum(k) : v]);
    return Object.fromEntries(entries) as T;
  };
  const groups = Map.groupBy(runs, (r) => `${r.scenario}|${r.level}|${r.system}`);
  return [...groups.values()].map((list) => {
    if (list.length === 1) return list[0] as ThroughputRow;
    const sorted = list.map((r) => r.msgPerSec).sort((a, b) => a - b);
    const median = sorted[Math.floor((sorted.length - 1) / 2)];
    const chosen = list.find((r) => r.msgPerSec === median) as ThroughputRow;
    const checker = { ...summed(list.map((r) => r.checker)), examples: chosen.checker.examples };
    return {
      ...chosen,
      checker: { ...checker, successRate: checker.published === 0 ? 0 : checker.ok / checker.published },
      samples: list.map((r) => r.msgPerSec),
      stalls: {
        ...summed(list.map((r) => r.stalls)),
        longestGapMs: Math.max(...list.map((r) => r.stalls.longestGapMs)),
      },
      notes: list.flatMap((r, i) => r.notes.map((note) => `repeat ${i + 1}: ${note}`)),
    };
  });
}

/**
 * Memory soak: our bus end to end on NATS for n messages, compact checker (~3 bytes per message of bench
 * bookkeeping), a full GC before every checkpoint; RSS at 100,000 vs at n is the "RSS after 1M" target.
 */
async function memorySoak(ctx: Ctx, ours: System, n: number): Promise<ThroughputRow> {
  const level = { name: `soak-${n >= 1_000_000 ? `${n / 1_000_000}M` : n}`, messages: n };
  const results = new Counter(n);
  const body = (w: Workload, c: Counter) => ours.e2e(w, n, c, results, undefined, createCompactChecker(w, n));
  return row(ctx, 'e2e', level, ours, body, { results, gc: true });
}

/** Profiles our NATS publish and consume paths and the raw consume path at `level` (extra runs). */
async function profileRuns(ctx: Ctx, level: Level): Promise<ProfileSummary[]> {
  const n = level.messages;
  const base = join(ctx.config.outDir, `${ctx.fileStamp}-${level.name}`);
  const find = (name: SystemName) => ctx.systems.find((s) => s.name === name);
  const runs = [
    [find('ours-nats'), 'publish', 'publish'],
    [find('ours-nats'), 'consume', 'consume'],
    [find('raw-nats'), 'consume', 'raw-consume'],
  ] as const;
  const out: ProfileSummary[] = [];
  for (const [sys, kind, file] of runs) {
    if (sys === undefined) continue;
    const w = workload(ctx, kind === 'publish' ? 'prof-pub' : 'prof-con', level.name, sys.name);
    await sys.fresh(w);
    let body = (c: Counter) => sys.publish(w, n, c, undefined, false);
    if (kind === 'consume') {
      const checker = createOrderChecker();
      await sys.preload(w, n, checker, new Counter(n));
      body = (c) => sys.consume(w, n, checker, c);
    }
    const label = `${sys.name} ${kind} ${level.name}`;
    out.push(await profiled(label, `${base}-${file}.cpuprofile`, () => measured(n, body)));
    await sys.drop(w);
  }
  return out;
}

export async function runSuite(
  config: BenchConfig,
  systems: readonly System[],
  env: Pick<Ctx, 'nats' | 'stamp' | 'fileStamp'>,
) {
  const wanted = new Set<SystemName>(config.systems);
  const ctx: Ctx = { config, systems: systems.filter((s) => wanted.has(s.name)), ...env, windows: new Map() };
  const scenarios = new Set(config.scenarios);
  const kinds = [
    ['publish', publishScenario],
    ['consume', consumeScenario],
    ['e2e', e2eScenario],
  ] as const;
  // Every path once at a small size, discarded: measured runs start with warm JIT and pools.
  const warm = { name: 'warmup', messages: config.warmupMessages };
  for (const [, run] of kinds) {
    for (const r of await run(ctx, warm)) {
      if (r.checker.lost > 0 || r.checker.outOfOrder > 0 || r.notes.length > 0) {
        process.stderr.write(
          `bench: warm-up ${r.scenario} ${r.system}: lost=${r.checker.lost} ${r.notes.join('; ')}\n`,
        );
      }
    }
  }
  const throughput: ThroughputRow[] = [];
  for (const level of config.levels) {
    const repeats = level.messages <= REPEAT_UP_TO ? config.repeat : 1;
    for (const [scenario, run] of kinds) {
      if (!scenarios.has(scenario)) continue;
      const runs: ThroughputRow[] = [];
      for (let i = 0; i < repeats; i++) runs.push(...(await run(ctx, level)));
      throughput.push(...mergeRepeats(runs));
    }
  }
  const latency: LatencyRow[] = [];
  const rates = scenarios.has('latency') ? config.latencyRates : [];
  for (const rate of rates) latency.push(...(await latencyScenario(ctx, rate)));
  const ours = ctx.systems.find((s) => s.name === 'ours-nats');
  const soakSize = config.soak ?? (config.levels.some((l) => l.messages >= 1_000_000) ? 1_000_000 : 0);
  const soak = soakSize > 0 && ours !== undefined ? await memorySoak(ctx, ours, soakSize) : undefined;
  const level = config.levels.filter((l) => l.messages <= 100_000).at(-1) ?? config.levels[0];
  const profiles = config.profile && level !== undefined ? await profileRuns(ctx, level) : [];
  return { throughput, latency, soak, profiles };
}
