/**
 * `npm run bench` / `eventbus bench`: options, the one nats-server (and the
 * Kafka cluster of KAFKA_BROKERS), the suite, the terminal table and the JSON.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  type BenchConfig,
  DEFAULT_LEVELS,
  DEFAULTS,
  KAFKA_SYSTEMS,
  LATENCY_RATES,
  LEVELS,
  type Level,
  NATS_SYSTEMS,
  QUICK,
  QUICK_LEVELS,
  recordedConfig,
  SCENARIOS,
  type ScenarioName,
  SYSTEMS,
  type SystemName,
} from './config.ts';
import { buildGoAnchor, type GoAnchor } from './go-anchor.ts';
import { type KafkaEnv, type KafkaPlan, kafkaPlan, skipLine, startKafkaEnv } from './kafka.ts';
import { type NatsEnv, startNatsEnv } from './nats.ts';
import { formatProfile } from './profile.ts';
import { analyse, type BenchReport, formatReport, type KafkaMeta } from './report.ts';
import { runSuite } from './suite.ts';
import { createSystems } from './systems.ts';

export const usage = `Usage: eventbus bench [options]   (or: npm run bench -- [options])

Runs our bus on NATS, the raw official client (js.publish with a window of
concurrent promises, best of 100/1,000/5,000; consume() + acks), the Go client
(PublishAsync, Fetch + Ack) on the same nats-server, and our
bus on the in-memory transport side by side in this process; prints the ratio
table and writes <out>/<date>.json. With KAFKA_BROKERS
set (host:port,...) also our bus on Kafka and the raw @platformatic/kafka
client (publish, consume, e2e); without it those two are skipped (one line on
stderr).

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
  const quick = values.quick === true;
  const levels = list(values.levels)?.map(level) ?? [...(quick ? QUICK_LEVELS : DEFAULT_LEVELS)];
  if (values['1m'] && !levels.some((l) => l.messages === 1_000_000)) levels.push(LEVELS[5]);
  const positive = (n: number) => Number.isFinite(n) && n > 0;
  return {
    levels,
    latencyRates: (
      list(values.rates) ?? (quick ? QUICK : { latencyRates: LATENCY_RATES }).latencyRates.map(String)
    ).map((r) => number('rates', r, positive, 'positive numbers')),
    latencySeconds: number(
      'latency-seconds',
      values['latency-seconds'] ?? String((quick ? QUICK : DEFAULTS).latencySeconds),
      positive,
      '> 0',
    ),
    topics: DEFAULTS.topics,
    aggregates: DEFAULTS.aggregates,
    payloadBytes: DEFAULTS.payloadBytes,
    warmupMessages: (quick ? QUICK : DEFAULTS).warmupMessages,
    outDir: resolve(values.out ?? DEFAULTS.outDir),
    quick,
    profile: values.profile === true,
    systems: pick<SystemName>('systems', list(values.systems), SYSTEMS),
    scenarios: pick<ScenarioName>('scenarios', list(values.scenarios), SCENARIOS),
    repeat: number(
      'repeat',
      values.repeat ?? String((quick ? QUICK : DEFAULTS).repeat),
      (n) => Number.isSafeInteger(n) && n >= 1,
      'a positive integer',
    ),
    soak:
      values.soak === undefined
        ? undefined
        : number(
            'soak',
            values.soak,
            (n) => Number.isSafeInteger(n) && n >= 100_000,
            'a message count >= 100000',
          ),
  };
}

function git(args: string[]): string | undefined {
  try {
    return execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return undefined;
  }
}

/** The commit (BENCH_SOURCE_COMMIT for an exported tree without .git) and uncommitted files under src/. */
function gitState(): { readonly commit: string | undefined; readonly dirtySrc: readonly string[] } {
  return {
    commit: git(['rev-parse', '--short', 'HEAD'])?.trim() ?? process.env.BENCH_SOURCE_COMMIT,
    dirtySrc: (git(['status', '--porcelain', '--', 'src']) ?? '')
      .split('\n')
      .filter((l) => l.length > 3)
      .map((l) => l.slice(3)),
  };
}

const load = (): number[] => loadavg().map((l) => Math.round(l * 100) / 100);

/** Runs the bench with `config`; writes the JSON; returns its path and the report. */
export async function runBench(
  config: BenchConfig,
  argv: readonly string[] = [],
): Promise<{ readonly json: string; readonly report: BenchReport }> {
  const started = new Date();
  // The process runs the src/ it loaded at start (and the transports it loads in the warm-up).
  const gitAtStart = gitState();
  const loadAtStart = load();
  /** `2026-11-23T01-50-12Z`: sortable and safe in file names. */
  const stamp = started
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replace(/:/g, '-');
  await mkdir(config.outDir, { recursive: true });
  const plan = kafkaPlan(config.systems, process.env);
  const skipped = skipLine(plan);
  if (skipped !== undefined) process.stderr.write(`${skipped}\n`);
  let systems = plan.systems;
  let go: GoAnchor | undefined;
  let goMeta: string | undefined;
  if (systems.includes('go-nats')) {
    const built = await buildGoAnchor();
    if (typeof built === 'string') {
      goMeta = `skipped: ${built}`;
      process.stderr.write(`bench: skipping go-nats (the Go client anchor): ${built}\n`);
      systems = systems.filter((s) => s !== 'go-nats');
    } else {
      go = built;
      goMeta = built.binary;
    }
  }
  const needsNats = systems.some((s) => NATS_SYSTEMS.includes(s));
  const needsKafka = systems.some((s) => KAFKA_SYSTEMS.includes(s));
  let env: NatsEnv | undefined;
  let kafka: KafkaEnv | undefined;
  try {
    kafka = needsKafka && plan.brokers !== undefined ? await startKafkaEnv(plan.brokers) : undefined;
    env = needsNats ? await startNatsEnv() : undefined;
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
        ...(goMeta === undefined ? {} : { goAnchor: goMeta }),
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
  } finally {
    try {
      await env?.close();
    } finally {
      await kafka?.close();
    }
  }
}

/** meta.kafka: where the Kafka systems ran, or that (and why) they were skipped; absent when not requested. */
function kafkaMeta(plan: KafkaPlan, kafka: KafkaEnv | undefined): { kafka?: KafkaMeta } {
  if (kafka !== undefined) {
    return {
      kafka: {
        brokers: kafka.brokers,
        cluster: kafka.cluster,
        partitions: kafka.partitions,
        systems: plan.systems.filter((s) => KAFKA_SYSTEMS.includes(s)),
      },
    };
  }
  if (plan.skipped.length > 0 && plan.reason !== undefined) {
    return { kafka: { skipped: plan.skipped, reason: plan.reason } };
  }
  return {};
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
