/**
 * The whole run: one nats-server (and a Kafka cluster when KAFKA_BROKERS is
 * set), a warm-up of every path, then per level the publish, consumption and
 * end-to-end scenarios for each system side by side, then the latency rates,
 * then (optionally) CPU profiles of our paths. Every scenario gets fresh
 * streams / topics (created untimed, deleted afterwards).
 */
import { join } from 'node:path';
import { createOrderChecker } from '../src/testing/checker.ts';
import { createMemoryBroker } from '../src/transports/memory/index.ts';
import { createCompactChecker } from './compact-checker.ts';
import { type BenchConfig, KAFKA_SYSTEMS, LATENCY_SYSTEMS, type Level, type SystemName } from './config.ts';
import { type GoAnchor, goConsume, goEndToEnd, goPublish } from './go-anchor.ts';
import { createKafkaTopics, deleteKafkaTopics, type KafkaEnv } from './kafka-env.ts';
import { rawKafkaConsume, rawKafkaEndToEnd, rawKafkaPreload, rawKafkaPublish } from './kafka-raw.ts';
import { summarize } from './latency.ts';
import {
  Counter,
  type MeasureContext,
  measured,
  type RunOutcome,
  type StoredOrder,
  stallsOf,
} from './measure.ts';
import { createStreams, deleteStreams, type NatsEnv } from './nats-env.ts';
import {
  type OursTarget,
  oursConsume,
  oursEndToEnd,
  oursLatency,
  oursPreloadMemory,
  oursPublish,
} from './ours.ts';
import { profiled } from './profile.ts';
import {
  RAW_DEFAULT_WINDOW,
  RAW_PUBLISH_WINDOWS,
  rawConsume,
  rawEndToEnd,
  rawLatency,
  rawPreload,
  rawPublish,
} from './raw.ts';
import type { RunProbe } from './resources.ts';
import {
  type CheckerCounts,
  checkerCounts,
  type LatencyRow,
  type ProfileSummary,
  type ThroughputRow,
  type ThroughputScenario,
} from './types.ts';
import { createWorkload, type Workload } from './workload.ts';

/** Levels up to this size run `config.repeat` times (median reported); larger levels run once. */
export const REPEAT_UP_TO = 10_000;

export interface SuiteResult {
  /** The memory soak (our bus, NATS, end to end, compact checker, GC at every checkpoint). */
  readonly soak: ThroughputRow | undefined;
  readonly throughput: ThroughputRow[];
  readonly latency: LatencyRow[];
  readonly profiles: ProfileSummary[];
}

interface SuiteContext extends MeasureContext {
  readonly config: BenchConfig;
  readonly env: NatsEnv | undefined;
  /** Set when Kafka systems run (KAFKA_BROKERS). */
  readonly kafka: KafkaEnv | undefined;
  /** Digits only: goes into topic names. */
  readonly stamp: string;
  /** Prefix of files written next to the report (profiles). */
  readonly fileStamp: string;
  /** The built Go client anchor (go-nats rows); undefined when Go is not there. */
  readonly go: GoAnchor | undefined;
  /** Per level: the raw publisher's best window in this run's publish scenario (its e2e uses it). */
  readonly rawWindows: Map<string, number>;
}

function workload(ctx: SuiteContext, name: string): Workload {
  return createWorkload({
    name,
    topics: ctx.config.topics,
    aggregates: ctx.config.aggregates,
    payloadBytes: ctx.config.payloadBytes,
  });
}

function wants(ctx: SuiteContext, system: SystemName): boolean {
  if (!ctx.config.systems.includes(system)) return false;
  if (system === 'ours-memory') return true;
  if (system === 'go-nats') return ctx.go !== undefined && ctx.env !== undefined;
  if (KAFKA_SYSTEMS.includes(system)) return ctx.kafka !== undefined;
  return ctx.env !== undefined;
}

function kafkaEnv(ctx: SuiteContext): KafkaEnv {
  if (ctx.kafka === undefined) throw new Error('Expected a Kafka environment');
  return ctx.kafka;
}

const KAFKA_PAIR = ['ours-kafka', 'raw-kafka'] as const;
const kafkaTag = (system: (typeof KAFKA_PAIR)[number]): string =>
  system === 'ours-kafka' ? 'kours' : 'kraw';

/** A Kafka run on fresh topics: created untimed before, deleted (with the bench's groups) after. */
async function onFreshTopics<T>(
  ctx: SuiteContext,
  scenario: string,
  level: Level,
  system: (typeof KAFKA_PAIR)[number],
  run: (env: KafkaEnv, w: Workload) => Promise<T>,
): Promise<T> {
  const env = kafkaEnv(ctx);
  const w = workload(ctx, name(ctx, scenario, level.name, kafkaTag(system)));
  await createKafkaTopics(env, w.topics);
  const result = await run(env, w);
  await deleteKafkaTopics(env, w);
  return result;
}

function goAnchor(ctx: SuiteContext): GoAnchor {
  if (ctx.go === undefined) throw new Error('Expected the Go anchor to be built');
  return ctx.go;
}

function natsEnv(ctx: SuiteContext): NatsEnv {
  if (ctx.env === undefined) throw new Error('Expected a NATS environment');
  return ctx.env;
}

async function row(
  ctx: SuiteContext,
  scenario: ThroughputScenario,
  level: Level,
  system: SystemName,
  body: (probe: RunProbe, counter: Counter) => Promise<RunOutcome>,
): Promise<ThroughputRow> {
  const slowBefore = slowConsumerEvents(ctx);
  const { outcome, report, resources, stalls } = await measured(
    ctx,
    { label: `${scenario} ${level.name} ${system}`, total: level.messages },
    body,
  );
  const slow = slowConsumerEvents(ctx) - slowBefore;
  if (slow > 0) outcome.notes.push(`nats-server logged ${slow} slow-consumer event(s) during the run`);
  outcome.notes.push(...storedNotes(outcome.stored, report.outOfOrder));
  return {
    scenario,
    level: level.name,
    messages: level.messages,
    system,
    elapsedMs: Math.round(outcome.elapsedMs * 10) / 10,
    msgPerSec: Math.round((level.messages / outcome.elapsedMs) * 1000),
    checker: checkerCounts(report),
    resources,
    stalls,
    ...(outcome.acksSettled === undefined ? {} : { acksSettled: outcome.acksSettled }),
    ...(outcome.stored === undefined ? {} : { stored: outcome.stored }),
    ...(outcome.transportStats === undefined ? {} : { transportStats: outcome.transportStats }),
    notes: outcome.notes,
  };
}

/** Untimed bulk load with its own progress bar. */
async function preload(
  ctx: SuiteContext,
  label: string,
  n: number,
  load: (counter: Counter) => Promise<void>,
): Promise<void> {
  ctx.sampler.phase = label;
  await load(new Counter(n, label));
}

/**
 * Holds a pre-loaded run's checker until the run takes it: afterwards only the
 * run references it, so it is released before the run's "after" memory is measured.
 */
class Handover<T> {
  #value: T | undefined;
  constructor(value: T) {
    this.#value = value;
  }
  peek(): T {
    if (this.#value === undefined) throw new Error('Expected the value not to be taken yet');
    return this.#value;
  }
  take(): T {
    const value = this.peek();
    this.#value = undefined;
    return value;
  }
}

let runSeq = 0;
/** Unique per run: every run gets fresh topics (hence fresh streams). */
function name(ctx: SuiteContext, scenario: string, level: string, system: string): string {
  return `${ctx.stamp}-${++runSeq}-${scenario}-${level}-${system}`;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] as number;
}

/**
 * Repeated runs of one cell → one row: the run with the median throughput
 * (lower median for even counts), with the checker counts summed over all
 * repeats (a loss in any repeat shows), every repeat's msg/s in `samples`,
 * and the notes of all repeats.
 */
export function mergeRepeats(runs: readonly ThroughputRow[]): ThroughputRow[] {
  const groups = new Map<string, ThroughputRow[]>();
  for (const r of runs) {
    const key = `${r.scenario}|${r.level}|${r.system}`;
    const list = groups.get(key);
    if (list) list.push(r);
    else groups.set(key, [r]);
  }
  return [...groups.values()].map((list) => {
    if (list.length === 1) return list[0] as ThroughputRow;
    const mid = median(list.map((r) => r.msgPerSec));
    const chosen = list.find((r) => r.msgPerSec === mid) as ThroughputRow;
    const sum = (k: keyof Omit<CheckerCounts, 'successRate' | 'examples'>) =>
      list.reduce((total, r) => total + r.checker[k], 0);
    const published = sum('published');
    const ok = sum('ok');
    const checker: CheckerCounts = {
      published,
      acknowledged: sum('acknowledged'),
      consumed: sum('consumed'),
      ok,
      lost: sum('lost'),
      duplicated: sum('duplicated'),
      outOfOrder: sum('outOfOrder'),
      unexpected: sum('unexpected'),
      unknown: sum('unknown'),
      recovered: sum('recovered'),
      successRate: published === 0 ? 0 : ok / published,
      examples: chosen.checker.examples,
    };
    const notes = list.flatMap((r, i) => r.notes.map((n) => `repeat ${i + 1}: ${n}`));
    return {
      ...chosen,
      checker,
      samples: list.map((r) => r.msgPerSec),
      stalls: {
        redelivered: list.reduce((t, r) => t + r.stalls.redelivered, 0),
        count: list.reduce((t, r) => t + r.stalls.count, 0),
        totalMs: list.reduce((t, r) => t + r.stalls.totalMs, 0),
        longestGapMs: Math.max(...list.map((r) => r.stalls.longestGapMs)),
      },
      notes,
    };
  });
}

async function publishScenario(ctx: SuiteContext, level: Level, rows: ThroughputRow[]): Promise<void> {
  const n = level.messages;
  if (wants(ctx, 'ours-nats')) {
    const env = natsEnv(ctx);
    const w = workload(ctx, name(ctx, 'pub', level.name, 'ours'));
    await createStreams(env, w.topics);
    rows.push(
      await row(ctx, 'publish', level, 'ours-nats', (_, c) => oursPublish({ kind: 'nats', env }, w, n, c)),
    );
    await deleteStreams(env, w.topics);
  }
  if (wants(ctx, 'raw-nats')) {
    const env = natsEnv(ctx);
    // The raw client as its docs recommend for throughput: a window of
    // concurrent js.publish promises. Each window on fresh streams; the best counts.
    const sweep: ThroughputRow[] = [];
    for (const window of RAW_PUBLISH_WINDOWS) {
      const w = workload(ctx, name(ctx, 'pub', level.name, `raw${window}`));
      await createStreams(env, w.topics);
      const r = await row(ctx, 'publish', level, 'raw-nats', (_, c) => rawPublish(env, w, n, c, window));
      sweep.push({ ...r, window });
      await deleteStreams(env, w.topics);
    }
    const best = sweep.reduce((a, b) => (b.msgPerSec > a.msgPerSec ? b : a));
    ctx.rawWindows.set(level.name, best.window ?? RAW_DEFAULT_WINDOW);
    rows.push({
      ...best,
      windowSweep: sweep.map((r) => ({ window: r.window ?? 0, msgPerSec: r.msgPerSec })),
    });
  }
  if (wants(ctx, 'go-nats')) {
    const env = natsEnv(ctx);
    const w = workload(ctx, name(ctx, 'pub', level.name, 'go'));
    await createStreams(env, w.topics);
    rows.push(await row(ctx, 'publish', level, 'go-nats', (_, c) => goPublish(goAnchor(ctx), env, w, n, c)));
    await deleteStreams(env, w.topics);
  }
  if (wants(ctx, 'ours-memory')) {
    const w = workload(ctx, name(ctx, 'pub', level.name, 'mem'));
    const target: OursTarget = { kind: 'memory', broker: createMemoryBroker() };
    rows.push(await row(ctx, 'publish', level, 'ours-memory', (_, c) => oursPublish(target, w, n, c)));
  }
  for (const system of KAFKA_PAIR) {
    if (!wants(ctx, system)) continue;
    rows.push(
      await onFreshTopics(ctx, 'pub', level, system, (env, w) =>
        row(ctx, 'publish', level, system, (_, c) =>
          system === 'ours-kafka'
            ? oursPublish({ kind: 'kafka', env }, w, n, c)
            : rawKafkaPublish(env, w, n, c),
        ),
      ),
    );
  }
}

async function consumeScenario(ctx: SuiteContext, level: Level, rows: ThroughputRow[]): Promise<void> {
  const n = level.messages;
  const nats = (['ours-nats', 'raw-nats', 'go-nats'] as const).filter((s) => wants(ctx, s));
  if (nats.length > 0) {
    const env = natsEnv(ctx);
    // Identical topic sets, both loaded before either is consumed.
    const sets = nats.map((system) => {
      const w = workload(ctx, name(ctx, 'con', level.name, system.slice(0, system.indexOf('-'))));
      return { system, w, checker: new Handover(createOrderChecker()) };
    });
    for (const set of sets) {
      await createStreams(env, set.w.topics);
      await preload(ctx, `preload ${level.name} for ${set.system}`, n, (c) =>
        rawPreload(env, set.w, n, set.checker.peek(), c),
      );
    }
    for (const { system, w, checker } of sets) {
      rows.push(
        await row(ctx, 'consume', level, system, (_, c) =>
          system === 'ours-nats'
            ? oursConsume({ kind: 'nats', env }, w, n, checker.take(), c)
            : system === 'raw-nats'
              ? rawConsume(env, w, n, checker.take(), c)
              : goConsume(goAnchor(ctx), env, w, n, checker.take(), c),
        ),
      );
      await deleteStreams(env, w.topics);
    }
  }
  if (wants(ctx, 'ours-memory')) {
    const w = workload(ctx, name(ctx, 'con', level.name, 'mem'));
    const broker = createMemoryBroker();
    const checker = new Handover(createOrderChecker());
    await preload(ctx, `preload ${level.name} for ours-memory`, n, (c) =>
      oursPreloadMemory(broker, w, n, checker.peek(), c),
    );
    rows.push(
      await row(ctx, 'consume', level, 'ours-memory', (_, c) =>
        oursConsume({ kind: 'memory', broker }, w, n, checker.take(), c),
      ),
    );
  }
  const kafka = KAFKA_PAIR.filter((s) => wants(ctx, s));
  if (kafka.length > 0) {
    const env = kafkaEnv(ctx);
    // Identical topic sets (same partitions), both loaded by the raw producer before either is consumed.
    const sets = kafka.map((system) => {
      const w = workload(ctx, name(ctx, 'con', level.name, kafkaTag(system)));
      return { system, w, checker: new Handover(createOrderChecker()) };
    });
    for (const set of sets) {
      await createKafkaTopics(env, set.w.topics);
      await preload(ctx, `preload ${level.name} for ${set.system}`, n, (c) =>
        rawKafkaPreload(env, set.w, n, set.checker.peek(), c),
      );
    }
    for (const { system, w, checker } of sets) {
      rows.push(
        await row(ctx, 'consume', level, system, (_, c) =>
          system === 'ours-kafka'
            ? oursConsume({ kind: 'kafka', env }, w, n, checker.take(), c)
            : rawKafkaConsume(env, w, n, checker.take(), c),
        ),
      );
      await deleteKafkaTopics(env, w);
    }
  }
}

async function endToEndScenario(ctx: SuiteContext, level: Level, rows: ThroughputRow[]): Promise<void> {
  const n = level.messages;
  // Publish results have their own counter: its stalls tell publish-side gaps from consume-side ones.
  const withPublishStalls = async (
    results: Counter,
    run: Promise<ThroughputRow>,
  ): Promise<ThroughputRow> => ({
    ...(await run),
    publishStalls: stallsOf(results),
  });
  if (wants(ctx, 'ours-nats')) {
    const env = natsEnv(ctx);
    const w = workload(ctx, name(ctx, 'e2e', level.name, 'ours'));
    await createStreams(env, w.topics);
    const results = new Counter(n, 'results');
    rows.push(
      await withPublishStalls(
        results,
        row(ctx, 'e2e', level, 'ours-nats', (_, c) => oursEndToEnd({ kind: 'nats', env }, w, n, c, results)),
      ),
    );
    await deleteStreams(env, w.topics);
  }
  if (wants(ctx, 'raw-nats')) {
    const env = natsEnv(ctx);
    const w = workload(ctx, name(ctx, 'e2e', level.name, 'raw'));
    await createStreams(env, w.topics);
    const results = new Counter(n, 'results');
    const window = ctx.rawWindows.get(level.name) ?? RAW_DEFAULT_WINDOW;
    rows.push({
      ...(await withPublishStalls(
        results,
        row(ctx, 'e2e', level, 'raw-nats', (_, c) => rawEndToEnd(env, w, n, c, results, window)),
      )),
      window,
    });
    await deleteStreams(env, w.topics);
  }
  if (wants(ctx, 'go-nats')) {
    const env = natsEnv(ctx);
    const w = workload(ctx, name(ctx, 'e2e', level.name, 'go'));
    await createStreams(env, w.topics);
    const results = new Counter(n, 'results');
    rows.push(
      await withPublishStalls(
        results,
        row(ctx, 'e2e', level, 'go-nats', (_, c) => goEndToEnd(goAnchor(ctx), env, w, n, c, results)),
      ),
    );
    await deleteStreams(env, w.topics);
  }
  if (wants(ctx, 'ours-memory')) {
    const w = workload(ctx, name(ctx, 'e2e', level.name, 'mem'));
    const target: OursTarget = { kind: 'memory', broker: createMemoryBroker() };
    const results = new Counter(n, 'results');
    rows.push(
      await withPublishStalls(
        results,
        row(ctx, 'e2e', level, 'ours-memory', (_, c) => oursEndToEnd(target, w, n, c, results)),
      ),
    );
  }
  for (const system of KAFKA_PAIR) {
    if (!wants(ctx, system)) continue;
    const results = new Counter(n, 'results');
    rows.push(
      await onFreshTopics(ctx, 'e2e', level, system, (env, w) =>
        withPublishStalls(
          results,
          row(ctx, 'e2e', level, system, (_, c) =>
            system === 'ours-kafka'
              ? oursEndToEnd({ kind: 'kafka', env }, w, n, c, results)
              : rawKafkaEndToEnd(env, w, n, c, results),
          ),
        ),
      ),
    );
  }
}

async function latencyScenario(ctx: SuiteContext, rate: number, rows: LatencyRow[]): Promise<void> {
  const n = Math.max(100, Math.round(rate * ctx.config.latencySeconds));
  for (const system of LATENCY_SYSTEMS) {
    if (!wants(ctx, system)) continue;
    const w = workload(ctx, name(ctx, `lat${rate}`, 'r', system));
    if (system !== 'ours-memory') await createStreams(natsEnv(ctx), w.topics);
    const { outcome, report, resources, stalls } = await measured(
      ctx,
      { label: `latency ${rate}/s ${system}`, total: n },
      (_, c) => {
        if (system === 'ours-nats') return oursLatency({ kind: 'nats', env: natsEnv(ctx) }, w, n, rate, c);
        if (system === 'raw-nats') return rawLatency(natsEnv(ctx), w, n, rate, c);
        return oursLatency({ kind: 'memory', broker: createMemoryBroker() }, w, n, rate, c);
      },
    );
    if (system !== 'ours-memory') await deleteStreams(natsEnv(ctx), w.topics);
    const s = summarize(outcome.recorder.histogram);
    rows.push({
      system,
      rate,
      messages: n,
      recorded: s.recorded,
      achievedRate: Math.round((n / outcome.offerMs) * 1000),
      p50: s.p50,
      p90: s.p90,
      p99: s.p99,
      p999: s.p999,
      max: s.max,
      mean: s.mean,
      checker: checkerCounts(report),
      resources,
      stalls,
      notes: outcome.notes,
    });
  }
}

/**
 * Memory soak: our bus end to end on NATS for `n` messages with the compact
 * checker (~3 bytes per message of bench bookkeeping instead of a Map entry),
 * a full GC before every checkpoint (each tenth, and at 100,000); the stored
 * order is read back afterwards (untimed, after the last checkpoint).
 * RSS/heap at 100,000 vs at n is the "RSS after 1M vs after 100k" target.
 */
async function memorySoak(ctx: SuiteContext, n: number): Promise<ThroughputRow> {
  const env = natsEnv(ctx);
  const level: Level = { name: `soak-${n >= 1_000_000 ? `${n / 1_000_000}M` : n}`, messages: n };
  const w = workload(ctx, name(ctx, 'soak', level.name, 'ours'));
  await createStreams(env, w.topics);
  const results = new Counter(n, 'results');
  const slowBefore = slowConsumerEvents(ctx);
  const { outcome, report, resources, stalls } = await measured(
    ctx,
    { label: `memory soak ${n} ours-nats`, total: n },
    (_, c) =>
      oursEndToEnd({ kind: 'nats', env }, w, n, c, results, {
        checker: createCompactChecker(w, n),
      }),
    { gcAtCheckpoints: true },
  );
  await deleteStreams(env, w.topics);
  return {
    scenario: 'e2e',
    level: level.name,
    messages: n,
    system: 'ours-nats',
    elapsedMs: Math.round(outcome.elapsedMs * 10) / 10,
    msgPerSec: Math.round((n / outcome.elapsedMs) * 1000),
    checker: checkerCounts(report),
    resources,
    stalls,
    publishStalls: stallsOf(results),
    ...(outcome.stored === undefined ? {} : { stored: outcome.stored }),
    ...(outcome.transportStats === undefined ? {} : { transportStats: outcome.transportStats }),
    notes: [
      ...outcome.notes,
      ...storedNotes(outcome.stored, report.outOfOrder),
      ...(slowConsumerEvents(ctx) > slowBefore
        ? [`nats-server logged ${slowConsumerEvents(ctx) - slowBefore} slow-consumer event(s) during the run`]
        : []),
    ],
  };
}

/** "Slow Consumer Detected" lines nats-server logged so far (it then drops that client's messages). */
function slowConsumerEvents(ctx: SuiteContext): number {
  return ctx.env?.server.logs().match(/slow consumer/gi)?.length ?? 0;
}

/** Row notes saying whether a reordering happened before (stored) or after the broker. */
function storedNotes(stored: StoredOrder | undefined, outOfOrder: number): string[] {
  if (stored && (stored.outOfOrder > 0 || stored.lost > 0 || stored.duplicated > 0)) {
    return [
      `the broker stored ${stored.outOfOrder} out of per-aggregate order, ${stored.lost} missing, ${stored.duplicated} twice (e.g. ${stored.examples.join(', ')})`,
    ];
  }
  if (stored && outOfOrder > 0) {
    return ['the broker stored every aggregate in order: the reordering happened on the consuming side'];
  }
  return [];
}

/** Every path once at a small size, discarded: the measured runs start with warm JIT and pools. */
async function warmup(ctx: SuiteContext): Promise<void> {
  const n = ctx.config.warmupMessages;
  const level: Level = { name: 'warmup', messages: n };
  const scratch: ThroughputRow[] = [];
  await endToEndScenario(ctx, level, scratch);
  await publishScenario(ctx, level, scratch);
  await consumeScenario(ctx, level, scratch);
  const bad = scratch.filter((r) => r.checker.lost > 0 || r.checker.outOfOrder > 0 || r.notes.length > 0);
  for (const r of bad) {
    process.stderr.write(`warm-up ${r.scenario} ${r.system}: ${r.notes.join('; ')} lost=${r.checker.lost}\n`);
  }
}

/** Profiles our NATS publish and consume paths at `level` (extra runs, not in the table). */
async function profileOurs(ctx: SuiteContext, level: Level): Promise<ProfileSummary[]> {
  const env = natsEnv(ctx);
  const n = level.messages;
  const out: ProfileSummary[] = [];
  const base = join(ctx.config.outDir, `${ctx.fileStamp}-${level.name}`);

  const pub = workload(ctx, name(ctx, 'prof-pub', level.name, 'ours'));
  await createStreams(env, pub.topics);
  const publish = await profiled(`ours-nats publish ${level.name}`, `${base}-publish.cpuprofile`, () =>
    measured(ctx, { label: `profile publish ${level.name}`, total: n }, (_, c) =>
      oursPublish({ kind: 'nats', env }, pub, n, c, false),
    ),
  );
  out.push(publish.summary);
  await deleteStreams(env, pub.topics);

  const con = workload(ctx, name(ctx, 'prof-con', level.name, 'ours'));
  await createStreams(env, con.topics);
  const checker = createOrderChecker();
  await preload(ctx, `preload ${level.name} for the profile`, n, (c) => rawPreload(env, con, n, checker, c));
  const consume = await profiled(`ours-nats consume ${level.name}`, `${base}-consume.cpuprofile`, () =>
    measured(ctx, { label: `profile consume ${level.name}`, total: n }, (_, c) =>
      oursConsume({ kind: 'nats', env }, con, n, checker, c),
    ),
  );
  out.push(consume.summary);
  await deleteStreams(env, con.topics);

  const raw = workload(ctx, name(ctx, 'prof-raw', level.name, 'raw'));
  await createStreams(env, raw.topics);
  const rawChecker = createOrderChecker();
  await preload(ctx, `preload ${level.name} for the raw profile`, n, (c) =>
    rawPreload(env, raw, n, rawChecker, c),
  );
  const rawRun = await profiled(`raw-nats consume ${level.name}`, `${base}-raw-consume.cpuprofile`, () =>
    measured(ctx, { label: `profile raw consume ${level.name}`, total: n }, (_, c) =>
      rawConsume(env, raw, n, rawChecker, c),
    ),
  );
  out.push(rawRun.summary);
  await deleteStreams(env, raw.topics);
  return out;
}

export async function runSuite(
  config: BenchConfig,
  env: NatsEnv | undefined,
  base: MeasureContext & {
    readonly stamp: string;
    readonly fileStamp: string;
    readonly go?: GoAnchor | undefined;
  },
  kafka?: KafkaEnv,
): Promise<SuiteResult> {
  const ctx: SuiteContext = { ...base, go: base.go, config, env, kafka, rawWindows: new Map() };
  const throughput: ThroughputRow[] = [];
  const latency: LatencyRow[] = [];
  let profiles: ProfileSummary[] = [];
  const scenarios = new Set(config.scenarios);
  await warmup(ctx);
  const kinds = [
    ['publish', publishScenario],
    ['consume', consumeScenario],
    ['e2e', endToEndScenario],
  ] as const;
  for (const level of config.levels) {
    const repeats = level.messages <= REPEAT_UP_TO ? config.repeat : 1;
    for (const [scenario, run] of kinds) {
      if (!scenarios.has(scenario)) continue;
      const runs: ThroughputRow[] = [];
      for (let i = 0; i < repeats; i++) await run(ctx, level, runs);
      throughput.push(...mergeRepeats(runs));
    }
  }
  if (scenarios.has('latency')) {
    for (const rate of config.latencyRates) await latencyScenario(ctx, rate, latency);
  }
  let soak: ThroughputRow | undefined;
  const soakSize = config.soak ?? (config.levels.some((l) => l.messages >= 1_000_000) ? 1_000_000 : 0);
  if (soakSize > 0 && wants(ctx, 'ours-nats')) soak = await memorySoak(ctx, soakSize);
  if (config.profile && env !== undefined) {
    const candidates = config.levels.filter((l) => l.messages <= 100_000);
    const level = candidates.at(-1) ?? config.levels[0];
    if (level !== undefined) profiles = await profileOurs(ctx, level);
  }
  ctx.sampler.phase = 'done';
  return { soak, throughput, latency, profiles };
}
