/**
 * `npm run bench` / `eventbus bench`: options, the one nats-server (and the
 * Kafka cluster of KAFKA_BROKERS), the suite, the terminal table and the JSON.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  type BenchConfig,
  DEFAULTS,
  KAFKA_SYSTEMS,
  LEVELS,
  type Level,
  NATS_SYSTEMS,
  QUICK,
  recordedConfig,
  SCENARIOS,
  SYSTEMS,
} from './config.ts';
import { buildGoAnchor } from './go-anchor.ts';
import { type KafkaEnv, type KafkaPlan, kafkaPlan, skipLine, startKafkaEnv } from './kafka.ts';
import { startNatsEnv } from './nats.ts';
import { formatProfile } from './profile.ts';
import { analyse, type BenchReport, formatReport, type KafkaMeta } from './report.ts';
import { runSuite } from './suite.ts';
import { createSystems } from './systems.ts';

export const usage = `Usage: eventbus bench [options]   (or: npm run bench -- [options])

Runs side by side our bus on NATS, the raw official client (js.publish with a
window of concurrent promises, best of 100/1,000/5,000; consume() + acks) and
the Go client (PublishAsync, Fetch + Ack) on one nats-server, and our bus on
the in-memory transport; prints the ratio table and writes <out>/<date>.json.
With KAFKA_BROKERS set (host:port,...) also our bus on Kafka and the raw
@platformatic/kafka client (publish, consume, e2e); without it those two are
skipped (one line on stderr).

Options:
  --levels LIST     levels to run, by name or message count, comma-separated
                    (default: low,medium,high,extreme,100k = 500,2000,5000,10000,100000)
  --1m              add the 1M level (1,000,000 messages; tens of minutes on 2 cores)
  --soak N          memory soak of N messages (our bus, e2e; RSS at 100k vs at N); default 1,000,000 with --1m
  --repeat N        runs per cell for levels up to 10,000 messages, median reported (default 3)
  --quick           small levels and short latency runs (CI smoke; ratios not meaningful)
  --rates LIST      latency offered rates in msg/s (default 1000,5000,20000)
  --latency-seconds N   seconds per latency rate (default 5)
  --scenarios LIST  publish,consume,e2e,latency (default all)
  --systems LIST    ours-nats,raw-nats,go-nats,ours-memory,ours-kafka,raw-kafka (default all;
                    go-nats needs Go + Debian's nats.go, the Kafka ones KAFKA_BROKERS)
  --profile         also CPU-profile our publish and consume paths (inspector; .cpuprofile files in --out)
  --out DIR         output directory (default bench/results)
  -h, --help        this text
`;

const list = (value: string | undefined): string[] | undefined =>
  value
    ?.split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);

function level(name: string): Level {
  const count = Number(name.replace(/_/g, ''));
  const known = LEVELS.find((l) => l.name.toLowerCase() === name.toLowerCase() || l.messages === count);
  if (known) return known;
  if (Number.isSafeInteger(count) && count > 0) return { name: String(count), messages: count };
  const names = LEVELS.map((l) => l.name).join(', ');
  throw new Error(`Expected --levels to name levels (${names}) or message counts, got "${name}"`);
}

function pick<T extends string>(what: string, values: string[] | undefined, allowed: readonly T[]): T[] {
  const bad = values?.find((v) => !allowed.includes(v as T));
  if (bad !== undefined) throw new Error(`Expected --${what} from ${allowed.join(', ')}, got "${bad}"`);
  return (values ?? [...allowed]) as T[];
}

function number(option: string, value: string, ok: (n: number) => boolean, what: string): number {
  const n = Number(value.replace(/_/g, ''));
  if (!ok(n)) throw new Error(`Expected --${option} to be ${what}, got "${value}"`);
  return n;
}

export function parseBenchArgs(argv: readonly string[]): BenchConfig | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      levels: { type: 'string' },
      quick: { type: 'boolean', default: false },
      '1m': { type: 'boolean', default: false },
      repeat: { type: 'string' },
      soak: { type: 'string' },
      rates: { type: 'string' },
      'latency-seconds': { type: 'string' },
      scenarios: { type: 'string' },
      systems: { type: 'string' },
      profile: { type: 'boolean', default: false },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return 'help';
  const { quick, repeat, soak, 'latency-seconds': seconds } = values;
  const base = quick ? QUICK : DEFAULTS;
  const levels: Level[] = list(values.levels)?.map(level) ?? [...base.levels];
  if (values['1m'] && !levels.some((l) => l.messages === 1_000_000)) levels.push(LEVELS[5]);
  const positive = (n: number) => Number.isFinite(n) && n > 0;
  const atLeast = (min: number) => (n: number) => Number.isSafeInteger(n) && n >= min;
  return {
    levels,
    latencyRates:
      list(values.rates)?.map((r) => number('rates', r, positive, 'positive numbers')) ?? base.latencyRates,
    latencySeconds:
      seconds === undefined ? base.latencySeconds : number('latency-seconds', seconds, positive, '> 0'),
    topics: DEFAULTS.topics,
    aggregates: DEFAULTS.aggregates,
    payloadBytes: DEFAULTS.payloadBytes,
    warmupMessages: base.warmupMessages,
    outDir: resolve(values.out ?? DEFAULTS.outDir),
    quick,
    profile: values.profile,
    systems: pick('systems', list(values.systems), SYSTEMS),
    scenarios: pick('scenarios', list(values.scenarios), SCENARIOS),
    repeat: repeat === undefined ? base.repeat : number('repeat', repeat, atLeast(1), 'a positive integer'),
    soak:
      soak === undefined ? undefined : number('soak', soak, atLeast(100_000), 'a message count >= 100000'),
  };
}

/** The commit (BENCH_SOURCE_COMMIT for an exported tree without .git) and uncommitted files under src/. */
function gitState(): { readonly commit: string | undefined; readonly dirtySrc: readonly string[] } {
  const git = (...args: string[]): string | undefined => {
    const run = spawnSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return run.status === 0 ? run.stdout : undefined;
  };
  return {
    commit: git('rev-parse', '--short', 'HEAD')?.trim() ?? process.env.BENCH_SOURCE_COMMIT,
    dirtySrc: (git('status', '--porcelain', '--', 'src') ?? '')
      .split('\n')
      .filter((l) => l.length > 3)
      .map((l) => l.slice(3)),
  };
}

const load = (): number[] => loadavg().map((l) => Math.round(l * 100) / 100);

/** Runs the bench with `config`; writes the JSON; returns its path and the report. */
export async function runBench(config: BenchConfig, argv: readonly string[] = []) {
  const started = new Date();
  // The process runs the src/ it loaded at start (and the transports it loads in the warm-up).
  const gitAtStart = gitState();
  const loadAtStart = load();
  /** `2026-11-23T01-50-12Z`: sortable and safe in file names. */
  const stamp = `${started.toISOString().slice(0, 19).replaceAll(':', '-')}Z`;
  await mkdir(config.outDir, { recursive: true });
  const plan = kafkaPlan(config.systems, process.env);
  const skipped = skipLine(plan);
  if (skipped !== undefined) process.stderr.write(`${skipped}\n`);
  let systems = plan.systems;
  // The Go anchor, or why it cannot run (a string).
  const built = systems.includes('go-nats') ? await buildGoAnchor() : undefined;
  const go = typeof built === 'string' ? undefined : built;
  if (typeof built === 'string') {
    process.stderr.write(`bench: skipping go-nats (the Go client anchor): ${built}\n`);
    systems = systems.filter((s) => s !== 'go-nats');
  }
  // Closed in reverse: the nats-server first, then the Kafka clients.
  await using cleanup = new AsyncDisposableStack();
  const needsKafka = systems.some((s) => KAFKA_SYSTEMS.includes(s));
  const kafka = needsKafka && plan.brokers !== undefined ? await startKafkaEnv(plan.brokers) : undefined;
  cleanup.defer(() => kafka?.close());
  const env = systems.some((s) => NATS_SYSTEMS.includes(s)) ? await startNatsEnv() : undefined;
  cleanup.defer(() => env?.close());
  const result = await runSuite({ ...config, systems }, createSystems({ nats: env, kafka, go }), {
    nats: env,
    stamp: stamp.replace(/[^0-9]/g, '').slice(2, 14),
    fileStamp: stamp,
  });
  const gitAtEnd = gitState();
  const report: BenchReport = {
    meta: {
      date: started.toISOString(),
      node: process.version,
      platform: `${process.platform} ${process.arch}`,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      totalMemoryBytes: totalmem(),
      loadAverage: { start: loadAtStart, end: load() },
      natsServer: env?.version ?? 'not used',
      ...kafkaMeta(plan, kafka),
      ...(built === undefined ? {} : { goAnchor: go?.binary ?? `skipped: ${built}` }),
      gitCommit: gitAtStart.commit,
      gitDirtySrc: gitAtStart.dirtySrc,
      ...(JSON.stringify(gitAtStart) === JSON.stringify(gitAtEnd) ? {} : { gitAtEnd }),
      ...recordedConfig(config),
      durationMs: Date.now() - started.getTime(),
      argv,
    },
    throughput: result.throughput,
    ...(result.soak ? { soak: result.soak } : {}),
    latency: result.latency,
    profiles: result.profiles,
    ...analyse(result.throughput, result.latency, result.soak),
  };
  const json = join(config.outDir, `${stamp}.json`);
  await writeFile(json, `${JSON.stringify(report, null, 1)}\n`);
  return { json, report };
}

/** meta.kafka: where the Kafka systems ran, or that (and why) they were skipped; absent when not requested. */
function kafkaMeta(plan: KafkaPlan, kafka: KafkaEnv | undefined): { kafka?: KafkaMeta } {
  if (kafka !== undefined) {
    const systems = plan.systems.filter((s) => KAFKA_SYSTEMS.includes(s));
    return {
      kafka: { brokers: kafka.brokers, cluster: kafka.cluster, partitions: kafka.partitions, systems },
    };
  }
  const { skipped, reason } = plan;
  return skipped.length > 0 && reason !== undefined ? { kafka: { skipped, reason } } : {};
}

/** The command: returns the process exit code (1 when a run lost or reordered messages). */
export async function benchMain(argv: readonly string[]): Promise<number> {
  const config = parseBenchArgs(argv);
  if (config === 'help') {
    process.stdout.write(usage);
    return 0;
  }
  const { json, report } = await runBench(config, argv);
  process.stdout.write(`${formatReport(report)}\n`);
  for (const p of report.profiles) process.stdout.write(`\n${formatProfile(p)}\n`);
  process.stdout.write(`\nJSON: ${json}\n`);
  const broken = [...report.throughput, ...report.latency].some(
    (r) => r.checker.lost > 0 || r.checker.outOfOrder > 0 || r.checker.unexpected > 0,
  );
  return broken ? 1 : 0;
}

/** For the bench scripts: runs benchMain, sets process.exitCode, prints a failure's stack. */
export async function benchScript(argv: readonly string[]): Promise<void> {
  try {
    process.exitCode = await benchMain(argv);
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  }
}
