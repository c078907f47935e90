/**
 * The report: row shapes (what the JSON holds), ratios (ours ÷ raw, same
 * run), the targets of issues 5 and 14, and the terminal table.
 */
import type { CheckerReport } from '../src/testing/checker.ts';
import type { RecordedConfig, ScenarioName, SystemName } from './config.ts';
import type { RunResources, StallStats, StoredOrder } from './measure.ts';
import type { ProfileSummary } from './profile.ts';

export type ThroughputScenario = Exclude<ScenarioName, 'latency'>;

/** The order checker's verdict on a run (examples trimmed to 3); successRate = ok ÷ published. */
export type CheckerCounts = Omit<CheckerReport, 'exactlyOnce'> & { readonly successRate: number };

export function checkerCounts(r: CheckerReport): CheckerCounts {
  const { exactlyOnce: _strict, examples, ...counts } = r;
  return {
    ...counts,
    successRate: r.published === 0 ? 0 : r.ok / r.published,
    examples: {
      lost: examples.lost.slice(0, 3),
      outOfOrder: examples.outOfOrder.slice(0, 3),
      unexpected: examples.unexpected.slice(0, 3),
    },
  };
}

interface RunRow {
  readonly system: SystemName;
  readonly messages: number;
  readonly checker: CheckerCounts;
  readonly resources: RunResources;
  /** Gaps > 500 ms between consecutive handled messages (publish rows: results). */
  readonly stalls: StallStats;
  /** Timeouts, errors, leaks, where a reordering happened; empty when the run was clean. */
  readonly notes: readonly string[];
}

export interface ThroughputRow extends RunRow {
  readonly scenario: ThroughputScenario;
  readonly level: string;
  /** The measured interval (bench/README.md says where it starts and ends). */
  readonly elapsedMs: number;
  readonly msgPerSec: number;
  /** raw-nats: the window of concurrent publishes of this row. */
  readonly window?: number;
  /** raw-nats publish rows: every window swept in this run (the row is the best). */
  readonly windowSweep?: readonly { readonly window: number; readonly msgPerSec: number }[];
  /** With repeats: every repeat's msg/s (the row is the median run). */
  readonly samples?: readonly number[];
  /** e2e rows: gaps between publish results. */
  readonly publishStalls?: StallStats;
  /** Our subscriber's transport counters at the end (health().details). */
  readonly transportStats?: unknown;
  /** e2e rows: the broker's stored order, read back after the run. */
  readonly stored?: StoredOrder;
  /** Consumption rows: every ack (NATS) / offset commit (Kafka) reached the broker. */
  readonly acksSettled?: boolean;
}

export interface LatencyRow extends RunRow {
  /** Offered and achieved rate (msg/s). */
  readonly rate: number;
  readonly achievedRate: number;
  /** Messages recorded (the first 10% are not); percentiles in ms, publish call → handler. */
  readonly recorded: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly mean: number;
}

export interface RatioRow {
  readonly scenario: ThroughputScenario;
  readonly level: string;
  readonly messages: number;
  readonly oursMsgPerSec: number | undefined;
  readonly rawMsgPerSec: number | undefined;
  readonly memoryMsgPerSec: number | undefined;
  /** ours-nats ÷ raw-nats (raw: its best publish window, in rawWindow). */
  readonly ratio: number | undefined;
  readonly rawWindow?: number | undefined;
  /** ours-nats ÷ go-nats, when Go ran. */
  readonly goMsgPerSec?: number | undefined;
  readonly goRatio?: number | undefined;
  /** ours-kafka ÷ raw-kafka, when Kafka ran. */
  readonly oursKafkaMsgPerSec?: number | undefined;
  readonly rawKafkaMsgPerSec?: number | undefined;
  readonly kafkaRatio?: number | undefined;
}

/** Where the Kafka systems ran, or that (and why) they were skipped. */
export type KafkaMeta =
  | {
      readonly brokers: readonly string[];
      readonly cluster: string;
      readonly partitions: number;
      readonly systems: readonly SystemName[];
    }
  | { readonly skipped: readonly SystemName[]; readonly reason: string };

export interface TargetResult {
  readonly id: string;
  readonly description: string;
  readonly measured: string;
  readonly holds: boolean | undefined;
}

/** RSS / heap at 100,000 and at the end: from the memory soak (GC before each sample) or the e2e rows. */
export interface MemoryGrowth {
  readonly source: 'soak' | 'e2e rows' | 'none';
  readonly rssAt100k: number | undefined;
  readonly rssAtEnd: number | undefined;
  readonly heapAt100k: number | undefined;
  readonly heapAtEnd: number | undefined;
  readonly endMessages: number | undefined;
}

export interface BenchReport {
  readonly meta: {
    readonly date: string;
    readonly node: string;
    readonly platform: string;
    readonly cpus: number;
    readonly cpuModel: string;
    readonly totalMemoryBytes: number;
    /** os.loadavg() at the start and at the end. */
    readonly loadAverage: { readonly start: readonly number[]; readonly end: readonly number[] };
    readonly natsServer: string;
    readonly kafka?: KafkaMeta;
    /** The Go anchor's binary, or why go-nats was skipped. */
    readonly goAnchor?: string;
    readonly gitCommit: string | undefined;
    /** Files under src/ with uncommitted changes at the start (the run used them). */
    readonly gitDirtySrc: readonly string[];
    /** Present when HEAD or those files changed during the run. */
    readonly gitAtEnd?: { readonly commit: string | undefined; readonly dirtySrc: readonly string[] };
    readonly durationMs: number;
    readonly argv: readonly string[];
  } & RecordedConfig;
  readonly throughput: readonly ThroughputRow[];
  /** The memory soak (--1m or --soak N). */
  readonly soak?: ThroughputRow;
  readonly ratios: readonly RatioRow[];
  readonly latency: readonly LatencyRow[];
  readonly targets: readonly TargetResult[];
  readonly memoryGrowth: MemoryGrowth;
  readonly profiles: readonly ProfileSummary[];
}

/** a ÷ b, two decimals; undefined unless both ran. */
const ratioOf = (a: number | undefined, b: number | undefined): number | undefined =>
  a !== undefined && b !== undefined && b > 0 ? Math.round((a / b) * 100) / 100 : undefined;

export function ratios(rows: readonly ThroughputRow[]): RatioRow[] {
  const out: RatioRow[] = [];
  for (const scenario of ['publish', 'consume', 'e2e'] as const) {
    const levels = new Map(rows.filter((r) => r.scenario === scenario).map((r) => [r.level, r.messages]));
    for (const [level, messages] of levels) {
      const get = (system: SystemName) =>
        rows.find((r) => r.scenario === scenario && r.level === level && r.system === system);
      const [ours, raw, go, oursKafka, rawKafka] = (
        ['ours-nats', 'raw-nats', 'go-nats', 'ours-kafka', 'raw-kafka'] as const
      ).map((s) => get(s)?.msgPerSec);
      const rawWindow = get('raw-nats')?.window;
      out.push({
        scenario,
        level,
        messages,
        oursMsgPerSec: ours,
        rawMsgPerSec: raw,
        memoryMsgPerSec: get('ours-memory')?.msgPerSec,
        ratio: ratioOf(ours, raw),
        ...(rawWindow === undefined ? {} : { rawWindow }),
        ...(go === undefined ? {} : { goMsgPerSec: go, goRatio: ratioOf(ours, go) }),
        ...(oursKafka === undefined && rawKafka === undefined
          ? {}
          : {
              oursKafkaMsgPerSec: oursKafka,
              rawKafkaMsgPerSec: rawKafka,
              kafkaRatio: ratioOf(oursKafka, rawKafka),
            }),
      });
    }
  }
  return out;
}

/** A ratio target, judged on the largest level that ran (every level listed). */
function ratioTarget(
  all: readonly RatioRow[],
  scenario: ThroughputScenario,
  key: 'ratio' | 'goRatio',
  threshold: number,
  target: Omit<TargetResult, 'measured' | 'holds'>,
  notRun = 'not run',
): TargetResult {
  const rows = all.filter((r) => r.scenario === scenario && r[key] !== undefined);
  const top = [...rows].sort((a, b) => b.messages - a.messages)[0];
  if (top === undefined) return { ...target, measured: notRun, holds: undefined };
  const perLevel = rows.map((r) => `${r.level} ${r[key]?.toFixed(2)}×`).join(', ');
  return {
    ...target,
    measured: `${top[key]?.toFixed(2)}× at ${top.level} (all levels: ${perLevel})`,
    holds: (top[key] ?? 0) >= threshold,
  };
}

export function memoryGrowth(rows: readonly ThroughputRow[], soak: ThroughputRow | undefined): MemoryGrowth {
  if (soak !== undefined) {
    const at = (n: number) => soak.resources.checkpoints.find((c) => c.processed === n);
    const [a, b] = [at(100_000), at(soak.messages)];
    const [rssAt100k, rssAtEnd, heapAt100k, heapAtEnd] = [a?.rss, b?.rss, a?.heapUsed, b?.heapUsed];
    return { source: 'soak', rssAt100k, rssAtEnd, heapAt100k, heapAtEnd, endMessages: soak.messages };
  }
  const e2e = (n: number) =>
    rows.find((r) => r.scenario === 'e2e' && r.system === 'ours-nats' && r.messages === n);
  const [a, b] = [e2e(100_000)?.resources.after, e2e(1_000_000)?.resources.after];
  if (a === undefined || b === undefined) {
    const none = undefined;
    return {
      source: 'none',
      rssAt100k: none,
      rssAtEnd: none,
      heapAt100k: none,
      heapAtEnd: none,
      endMessages: none,
    };
  }
  const [rssAt100k, rssAtEnd, heapAt100k, heapAtEnd] = [a.rss, b.rss, a.heapUsed, b.heapUsed];
  return { source: 'e2e rows', rssAt100k, rssAtEnd, heapAt100k, heapAtEnd, endMessages: 1_000_000 };
}

const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(0);

export function analyse(
  throughput: readonly ThroughputRow[],
  latency: readonly LatencyRow[],
  soak?: ThroughputRow,
): Pick<BenchReport, 'ratios' | 'targets' | 'memoryGrowth'> {
  const all = ratios(throughput);
  const growth = memoryGrowth(throughput, soak);
  const consume = ratioTarget(all, 'consume', 'ratio', 2.0, {
    id: 'consume',
    description: 'consumption ≥ 2.0× raw consume() with acks, 0 order violations',
  });
  const violations = throughput
    .filter((r) => r.scenario === 'consume' && r.system === 'ours-nats')
    .reduce((sum, r) => sum + r.checker.outOfOrder, 0);
  const p99 = latency.find((r) => r.system === 'ours-nats' && r.rate === 5_000);
  const { rssAt100k: a, rssAtEnd: b, heapAt100k, heapAtEnd } = growth;
  const heap =
    heapAt100k !== undefined && heapAtEnd !== undefined
      ? `; heap used ${mib(heapAtEnd)} MiB vs ${mib(heapAt100k)} MiB`
      : '';
  const how =
    growth.source === 'soak' ? 'memory soak, GC before each sample' : 'after the 100k and 1M e2e runs';
  const ours = [...throughput, ...latency, ...(soak ? [soak] : [])].filter((r) =>
    r.system.startsWith('ours-'),
  );
  const leaking = ours.filter((r) => r.resources.handleDelta > 0);
  const targets: TargetResult[] = [
    ratioTarget(all, 'publish', 'ratio', 3.0, {
      id: 'publish',
      description: 'envelope publish ≥ 3.0× raw js.publish (best window)',
    }),
    ratioTarget(
      all,
      'publish',
      'goRatio',
      0.7,
      { id: 'publish-go', description: 'envelope publish ≥ 0.7× the Go client (PublishAsync)' },
      'not run (no Go)',
    ),
    {
      ...consume,
      measured: `${consume.measured}; order violations ${violations}`,
      holds: consume.holds === undefined ? undefined : consume.holds && violations === 0,
    },
    ratioTarget(all, 'e2e', 'ratio', 2.5, { id: 'e2e', description: 'end-to-end ≥ 2.5× the raw pair' }),
    {
      id: 'latency',
      description: 'p99 publish→handler ≤ 5 ms at 5,000 msg/s',
      measured: p99 ? `p99 ${p99.p99} ms (p50 ${p99.p50}, max ${p99.max})` : 'not run',
      holds: p99 ? p99.p99 <= 5 : undefined,
    },
    {
      id: 'rss',
      description: 'RSS after 1,000,000 within 10% of RSS after 100,000',
      measured:
        a !== undefined && b !== undefined
          ? `${mib(b)} MiB at ${(growth.endMessages ?? 0).toLocaleString('en-US')} vs ${mib(a)} MiB at 100,000 (${(((b - a) / a) * 100).toFixed(1)}%${heap}; ${how})`
          : 'needs --1m (or --soak N)',
      holds: a !== undefined && b !== undefined ? b <= a * 1.1 : undefined,
    },
    {
      id: 'handles',
      description: 'active handles back to baseline after close',
      measured:
        ours.length === 0
          ? 'not run'
          : leaking.length === 0
            ? `all ${ours.length} runs of our bus back to baseline`
            : `${leaking.length}/${ours.length} runs above baseline, e.g. ${JSON.stringify(leaking[0]?.resources.leakedHandleTypes)}`,
      holds: ours.length === 0 ? undefined : leaking.length === 0,
    },
  ];
  return { ratios: all, targets, memoryGrowth: growth };
}

const int = (n: number | undefined): string =>
  n === undefined ? '—' : Math.round(n).toLocaleString('en-US');
const times = (r: number | undefined): string => (r === undefined ? '—' : `${r.toFixed(2)}×`);
/** order violations / lost / duplicated. */
const old = (c: CheckerCounts | undefined): string =>
  c === undefined ? '—' : `${c.outOfOrder}/${c.lost}/${c.duplicated}`;
const pct = (c: CheckerCounts | undefined): string =>
  c === undefined ? '—' : `${(c.successRate * 100).toFixed(1)}%`;

/** Stalls: count and total seconds (e2e: also between publish results), redeliveries. */
function stalls(r: { readonly stalls: StallStats; readonly publishStalls?: StallStats } | undefined): string {
  if (r === undefined) return '—';
  const text = (x: StallStats) => (x.count === 0 ? '0' : `${x.count} (${(x.totalMs / 1000).toFixed(1)} s)`);
  const pub = r.publishStalls && r.publishStalls.count > 0 ? `, publish ${text(r.publishStalls)}` : '';
  const redelivered = r.stalls.redelivered > 0 ? `, ${r.stalls.redelivered} redelivered` : '';
  return `${text(r.stalls)}${pub}${redelivered}`;
}

/** Columns whose header starts with '<' are left-aligned, the others right-aligned. */
function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const left = header.map((h) => h.startsWith('<'));
  const head = header.map((h) => h.replace(/^</, ''));
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (left[i] ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(head), line(widths.map((w) => '─'.repeat(w))), ...rows.map(line)].join('\n');
}

export function formatReport(report: BenchReport): string {
  const { meta } = report;
  const find = (r: { scenario: string; level: string }, system: SystemName) =>
    report.throughput.find((t) => t.scenario === r.scenario && t.level === r.level && t.system === system);
  const dirty = meta.gitDirtySrc.length > 0 ? ` + uncommitted ${meta.gitDirtySrc.join(', ')}` : '';
  const out = [
    `jxt-eventbus bench — ${meta.date} — node ${meta.node}, nats-server ${meta.natsServer}, ` +
      `${meta.cpus} CPUs (load ${meta.loadAverage.start[0]} → ${meta.loadAverage.end[0]}), ` +
      `${meta.topics} topics, ${meta.aggregates} aggregates, ${meta.payloadBytes}-byte payloads`,
    `code: ${meta.gitCommit ?? 'unknown commit'}${dirty}` +
      (meta.gitAtEnd ? ` (the tree changed during the run; at the end: ${meta.gitAtEnd.commit})` : ''),
    '',
    'Throughput (msg/s), one run, one server. RATIO = ours-nats ÷ raw-nats; raw-nats publishes with a window of',
    'concurrent js.publish promises (publish rows: the best of the sweep, its window in "win"; e2e: that window),',
    'go-nats = the Go client (PublishAsync, Fetch(500) + Ack), "÷go" = ours-nats ÷ go-nats. o/l/d = order violations / lost / duplicated.',
    'stalls = gaps > 500 ms between two consecutive handled messages (count, total time); e2e adds the gaps between publish results.',
  ];
  const nats = report.ratios.filter(
    (r) => r.oursMsgPerSec !== undefined || r.rawMsgPerSec !== undefined || r.memoryMsgPerSec !== undefined,
  );
  out.push(
    table(
      [
        '<scenario',
        '<level',
        'messages',
        'ours-nats',
        'raw-nats',
        'win',
        'RATIO',
        'go-nats',
        '÷go',
        'ours-memory',
      ].concat(['ours o/l/d', 'raw o/l/d', 'go o/l/d', 'mem o/l/d', 'ours ok', 'stalls ours / raw']),
      nats.map((r) => [
        r.scenario,
        r.level,
        int(r.messages),
        int(r.oursMsgPerSec),
        int(r.rawMsgPerSec),
        int(r.rawWindow),
        times(r.ratio),
        int(r.goMsgPerSec),
        times(r.goRatio),
        int(r.memoryMsgPerSec),
        ...(['ours-nats', 'raw-nats', 'go-nats', 'ours-memory'] as const).map((s) =>
          old(find(r, s)?.checker),
        ),
        pct(find(r, 'ours-nats')?.checker),
        `${stalls(find(r, 'ours-nats'))} / ${stalls(find(r, 'raw-nats'))}`,
      ]),
    ),
  );
  const sweeps = report.throughput.filter((t) => t.windowSweep !== undefined);
  if (sweeps.length > 0) {
    const sweep = (t: ThroughputRow) =>
      `${t.level}: ${(t.windowSweep ?? []).map((s) => `w${s.window} ${int(s.msgPerSec)}`).join(', ')}`;
    out.push(`raw-nats publish window sweep (msg/s): ${sweeps.map(sweep).join('; ')}`);
  }

  const kafka = report.ratios.filter(
    (r) => r.oursKafkaMsgPerSec !== undefined || r.rawKafkaMsgPerSec !== undefined,
  );
  if (kafka.length > 0) {
    const where = meta.kafka && 'cluster' in meta.kafka ? `, cluster ${meta.kafka.cluster}` : '';
    out.push(
      '',
      `Kafka (msg/s${where}). ratio = ours-kafka ÷ raw-kafka (@platformatic/kafka, pipelined send() batches) in this run.`,
      table(
        [
          '<scenario',
          '<level',
          'messages',
          'ours-kafka',
          'raw-kafka',
          'RATIO',
          'ours o/l/d',
          'raw o/l/d',
        ].concat(['ours ok', 'stalls ours / raw']),
        kafka.map((r) => [
          r.scenario,
          r.level,
          int(r.messages),
          int(r.oursKafkaMsgPerSec),
          int(r.rawKafkaMsgPerSec),
          times(r.kafkaRatio),
          old(find(r, 'ours-kafka')?.checker),
          old(find(r, 'raw-kafka')?.checker),
          pct(find(r, 'ours-kafka')?.checker),
          `${stalls(find(r, 'ours-kafka'))} / ${stalls(find(r, 'raw-kafka'))}`,
        ]),
      ),
    );
  }

  if (report.latency.length > 0) {
    const raw = (rate: number) => report.latency.find((r) => r.rate === rate && r.system === 'raw-nats');
    out.push(
      '',
      'Latency publish→handler (ms, HDR histogram, first 10% of each run not recorded)',
      table(
        [
          'offered/s',
          '<system',
          'achieved/s',
          'p50',
          'p90',
          'p99',
          'p99.9',
          'max',
          'p99 ours/raw',
          'o/l/d',
          'stalls',
        ],
        report.latency.map((r) => [
          int(r.rate),
          r.system,
          int(r.achievedRate),
          ...[r.p50, r.p90, r.p99, r.p999, r.max].map((v) => v.toFixed(2)),
          r.system === 'ours-nats' && (raw(r.rate)?.p99 ?? 0) > 0
            ? times(r.p99 / (raw(r.rate)?.p99 ?? 1))
            : '',
          old(r.checker),
          stalls(r),
        ]),
      ),
    );
  }

  const ours = report.throughput.filter((r) => r.system === 'ours-nats');
  if (ours.length > 0) {
    out.push(
      '',
      'Resources of our bus on NATS (MiB; handles = process.getActiveResourcesInfo().length)',
      table(
        ['<scenario', '<level', 'rss before', 'rss max', 'rss after', 'heap before', 'heap after'].concat([
          'handles before/max/after',
        ]),
        ours.map(({ scenario, level, resources: { before, during, after } }) => [
          scenario,
          level,
          ...[before.rss, during.rssMax, after.rss, before.heapUsed, after.heapUsed].map(mib),
          `${before.handles}/${during.handlesMax}/${after.handles}`,
        ]),
      ),
    );
  }

  const soak = report.soak;
  if (soak !== undefined) {
    out.push(
      '',
      `Memory soak: our bus on NATS, end to end, ${int(soak.messages)} messages at ${int(soak.msgPerSec)} msg/s ` +
        `(compact checker, full GC before each sample; o/l/d ${old(soak.checker)}, stalls ${stalls(soak)})`,
      table(
        ['handled', 'rss MiB', 'heap used MiB', 'handles'],
        soak.resources.checkpoints.map((c) => [
          int(c.processed),
          mib(c.rss),
          mib(c.heapUsed),
          String(c.handles),
        ]),
      ),
    );
  }

  out.push(
    '',
    'Targets (issue 5)',
    table(
      ['<', '<target', '<measured'],
      report.targets.map((t) => [
        t.holds === undefined ? 'n/a ' : t.holds ? 'HOLDS' : 'MISSES',
        t.description,
        t.measured,
      ]),
    ),
  );

  const noted = [...report.throughput, ...report.latency, ...(soak ? [soak] : [])].filter(
    (r) => r.notes.length > 0,
  );
  if (noted.length > 0) out.push('', 'Notes');
  for (const r of noted) {
    const what = 'scenario' in r ? `${r.scenario} ${r.level}` : `latency ${r.rate}/s`;
    out.push(`  ${what} ${r.system}: ${r.notes.join('; ')}`);
  }
  return out.join('\n');
}
