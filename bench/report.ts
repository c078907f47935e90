/**
 * The report: row shapes (what the JSON holds), ratios (ours ÷ raw, same
 * run) and the targets of issues 5 and 14, and the terminal table.
 */
import type { CheckerReport } from '../src/testing/checker.ts';
import type { ScenarioName, SystemName } from './config.ts';
import type { RunResources, StallStats, StoredOrder } from './measure.ts';
import type { ProfileSummary } from './profile.ts';

export type ThroughputScenario = Exclude<ScenarioName, 'latency'>;

/** The order checker's classification of a run (examples trimmed to 3). */
export interface CheckerCounts {
  readonly published: number;
  readonly acknowledged: number;
  readonly consumed: number;
  readonly ok: number;
  readonly lost: number;
  readonly duplicated: number;
  readonly outOfOrder: number;
  readonly unexpected: number;
  readonly unknown: number;
  readonly recovered: number;
  /** ok / published. */
  readonly successRate: number;
  readonly examples: CheckerReport['examples'];
}

export function checkerCounts(r: CheckerReport): CheckerCounts {
  return {
    published: r.published,
    acknowledged: r.acknowledged,
    consumed: r.consumed,
    ok: r.ok,
    lost: r.lost,
    duplicated: r.duplicated,
    outOfOrder: r.outOfOrder,
    unexpected: r.unexpected,
    unknown: r.unknown,
    recovered: r.recovered,
    successRate: r.published === 0 ? 0 : r.ok / r.published,
    examples: {
      lost: r.examples.lost.slice(0, 3),
      outOfOrder: r.examples.outOfOrder.slice(0, 3),
      unexpected: r.examples.unexpected.slice(0, 3),
    },
  };
}

export interface ThroughputRow {
  readonly scenario: ThroughputScenario;
  readonly level: string;
  readonly messages: number;
  readonly system: SystemName;
  /** The measured interval (see bench/README.md for where it starts and ends per scenario). */
  readonly elapsedMs: number;
  readonly msgPerSec: number;
  /** raw-nats and go-nats publishers: the window of concurrent publishes this row used. */
  readonly window?: number;
  /** raw-nats publish rows: msg/s of every window swept in this run (the row is the best). */
  readonly windowSweep?: readonly { readonly window: number; readonly msgPerSec: number }[];
  /** With repeats: every repeat's msg/s (the row shows the median run). */
  readonly samples?: readonly number[];
  readonly checker: CheckerCounts;
  readonly resources: RunResources;
  /** Gaps > 500 ms between consecutive messages (handled, or publish results for publish runs). */
  readonly stalls: StallStats;
  /** End-to-end runs: the same for publish results (a gap in both at once points at the publish side or the server). */
  readonly publishStalls?: StallStats;
  /** Our subscriber's transport counters at the end of the run (NATS: pulls, delivered, skipped duplicates). */
  readonly transportStats?: unknown;
  /** End-to-end runs: the broker's stored order, read back after the run (publish side vs consume side). */
  readonly stored?: StoredOrder;
  /**
   * Consumption runs: every ack reached the broker (NATS: ack floor = last
   * sequence; Kafka: every partition's committed offset = its end offset).
   */
  readonly acksSettled?: boolean;
  /** Anything unusual (timeouts, errors); empty when the run was clean. */
  readonly notes: readonly string[];
}

export interface LatencyRow {
  readonly system: SystemName;
  /** Offered rate (msg/s). */
  readonly rate: number;
  readonly messages: number;
  /** Messages recorded (the first `warmup` are not). */
  readonly recorded: number;
  /** Rate the paced sender actually achieved. */
  readonly achievedRate: number;
  /** publish→handler, milliseconds, from the message's scheduled send time. */
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly mean: number;
  readonly checker: CheckerCounts;
  readonly resources: RunResources;
  readonly stalls: StallStats;
  readonly notes: readonly string[];
}

export interface RatioRow {
  readonly scenario: ThroughputScenario;
  readonly level: string;
  readonly messages: number;
  readonly oursMsgPerSec: number | undefined;
  readonly rawMsgPerSec: number | undefined;
  readonly memoryMsgPerSec: number | undefined;
  /** ours-nats msg/s ÷ raw-nats msg/s (raw: its best publish window). */
  readonly ratio: number | undefined;
  /** The raw publisher's window (best of the sweep in publish rows). */
  readonly rawWindow?: number | undefined;
  /** The Go client (nats.go) anchor row, when Go was there. */
  readonly goMsgPerSec?: number | undefined;
  /** ours-nats msg/s ÷ go-nats msg/s. */
  readonly goRatio?: number | undefined;
  /** Kafka rows (absent from the JSON when Kafka did not run). */
  readonly oursKafkaMsgPerSec?: number | undefined;
  readonly rawKafkaMsgPerSec?: number | undefined;
  /** ours-kafka msg/s ÷ raw-kafka msg/s. */
  readonly kafkaRatio?: number | undefined;
}

/** The Kafka systems of a run: where they ran, or that (and why) they were skipped. */
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

export interface MemoryGrowth {
  /** Where the numbers come from: the memory soak, or the e2e rows (after close) when there was no soak. */
  readonly source: 'soak' | 'e2e rows' | 'none';
  /** RSS / heap used (after a full GC in the soak) when 100,000 messages were handled, and at the end. */
  readonly rssAt100k: number | undefined;
  readonly rssAtEnd: number | undefined;
  readonly heapAt100k: number | undefined;
  readonly heapAtEnd: number | undefined;
  /** Messages at the end (1,000,000 normally). */
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
    /** os.loadavg() at the start and at the end: other processes on the machine skew everything. */
    readonly loadAverage: { readonly start: readonly number[]; readonly end: readonly number[] };
    readonly natsServer: string;
    /** Present when Kafka systems were requested (the default): brokers used, or why they were skipped. */
    readonly kafka?: KafkaMeta;
    /** The Go anchor's binary, or why go-nats was skipped; absent when not requested. */
    readonly goAnchor?: string;
    readonly gitCommit: string | undefined;
    /** Files under src/ with uncommitted changes when the run started (the run used them). */
    readonly gitDirtySrc: readonly string[];
    /** Present when HEAD or the uncommitted src/ files changed while the bench ran (it kept running the old code). */
    readonly gitAtEnd?: { readonly commit: string | undefined; readonly dirtySrc: readonly string[] };
    readonly quick: boolean;
    readonly levels: readonly { readonly name: string; readonly messages: number }[];
    readonly latencyRates: readonly number[];
    readonly latencySeconds: number;
    readonly topics: number;
    readonly aggregates: number;
    readonly payloadBytes: number;
    readonly warmupMessages: number;
    /** Runs per cell for levels up to 10,000 messages (median reported). */
    readonly repeat: number;
    readonly durationMs: number;
    readonly argv: readonly string[];
  };
  readonly throughput: readonly ThroughputRow[];
  /** Memory soak (see suite.ts memorySoak); present with --1m or --soak. */
  readonly soak?: ThroughputRow;
  readonly ratios: readonly RatioRow[];
  readonly latency: readonly LatencyRow[];
  readonly targets: readonly TargetResult[];
  readonly memoryGrowth: MemoryGrowth;
  readonly profiles: readonly ProfileSummary[];
}

const SCENARIO_ORDER: readonly ThroughputScenario[] = ['publish', 'consume', 'e2e'];

/** ours ÷ raw, two decimals; undefined unless both ran. */
function ratioOf(ours: number | undefined, raw: number | undefined): number | undefined {
  return ours !== undefined && raw !== undefined && raw > 0
    ? Math.round((ours / raw) * 100) / 100
    : undefined;
}

export function ratios(rows: readonly ThroughputRow[]): RatioRow[] {
  const out: RatioRow[] = [];
  for (const scenario of SCENARIO_ORDER) {
    const levels = [
      ...new Map(rows.filter((r) => r.scenario === scenario).map((r) => [r.level, r.messages])),
    ];
    for (const [level, messages] of levels) {
      const find = (system: string) =>
        rows.find((r) => r.scenario === scenario && r.level === level && r.system === system)?.msgPerSec;
      const ours = find('ours-nats');
      const raw = find('raw-nats');
      const go = find('go-nats');
      const rawWindow = rows.find(
        (r) => r.scenario === scenario && r.level === level && r.system === 'raw-nats',
      )?.window;
      const oursKafka = find('ours-kafka');
      const rawKafka = find('raw-kafka');
      out.push({
        scenario,
        level,
        messages,
        oursMsgPerSec: ours,
        rawMsgPerSec: raw,
        memoryMsgPerSec: find('ours-memory'),
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

function ratioTarget(
  all: readonly RatioRow[],
  scenario: ThroughputScenario,
  id: string,
  description: string,
  threshold: number,
): TargetResult {
  const rows = all.filter((r) => r.scenario === scenario && r.ratio !== undefined);
  const headline = [...rows].sort((a, b) => b.messages - a.messages)[0];
  if (headline === undefined) return { id, description, measured: 'not run', holds: undefined };
  const perLevel = rows.map((r) => `${r.level} ${r.ratio?.toFixed(2)}×`).join(', ');
  return {
    id,
    description,
    measured: `${headline.ratio?.toFixed(2)}× at ${headline.level} (all levels: ${perLevel})`,
    holds: (headline.ratio ?? 0) >= threshold,
  };
}

/** Publish against the physical anchor: ≥ 0.7× the Go client's PublishAsync (stretch 0.9×). */
function goTarget(all: readonly RatioRow[]): TargetResult {
  const id = 'publish-go';
  const description = 'envelope publish ≥ 0.7× the Go client (PublishAsync)';
  const rows = all.filter((r) => r.scenario === 'publish' && r.goRatio !== undefined);
  const headline = [...rows].sort((a, b) => b.messages - a.messages)[0];
  if (headline === undefined) return { id, description, measured: 'not run (no Go)', holds: undefined };
  return {
    id,
    description,
    measured: `${headline.goRatio?.toFixed(2)}× at ${headline.level} (all levels: ${rows.map((r) => `${r.level} ${r.goRatio?.toFixed(2)}×`).join(', ')})`,
    holds: (headline.goRatio ?? 0) >= 0.7,
  };
}

export function memoryGrowth(rows: readonly ThroughputRow[], soak: ThroughputRow | undefined): MemoryGrowth {
  if (soak !== undefined) {
    const at = (processed: number) => soak.resources.checkpoints.find((c) => c.processed === processed);
    return {
      source: 'soak',
      rssAt100k: at(100_000)?.rss,
      rssAtEnd: at(soak.messages)?.rss,
      heapAt100k: at(100_000)?.heapUsed,
      heapAtEnd: at(soak.messages)?.heapUsed,
      endMessages: soak.messages,
    };
  }
  const e2e = (messages: number) =>
    rows.find((r) => r.scenario === 'e2e' && r.system === 'ours-nats' && r.messages === messages);
  const r100k = e2e(100_000);
  const r1M = e2e(1_000_000);
  if (r100k === undefined || r1M === undefined) {
    return {
      source: 'none',
      rssAt100k: undefined,
      rssAtEnd: undefined,
      heapAt100k: undefined,
      heapAtEnd: undefined,
      endMessages: undefined,
    };
  }
  return {
    source: 'e2e rows',
    rssAt100k: r100k.resources.after.rss,
    rssAtEnd: r1M.resources.after.rss,
    heapAt100k: r100k.resources.after.heapUsed,
    heapAtEnd: r1M.resources.after.heapUsed,
    endMessages: 1_000_000,
  };
}

const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
const mibn = (bytes: number): string => (bytes / 1024 / 1024).toFixed(0);

export function targets(
  throughput: readonly ThroughputRow[],
  latency: readonly LatencyRow[],
  ratioRows: readonly RatioRow[],
  growth: MemoryGrowth,
  soak?: ThroughputRow,
): TargetResult[] {
  const out: TargetResult[] = [
    ratioTarget(ratioRows, 'publish', 'publish', 'envelope publish ≥ 3.0× raw js.publish (best window)', 3.0),
    goTarget(ratioRows),
  ];
  const consume = ratioTarget(
    ratioRows,
    'consume',
    'consume',
    'consumption ≥ 2.0× raw consume() with acks, 0 order violations',
    2.0,
  );
  const violations = throughput
    .filter((r) => r.scenario === 'consume' && r.system === 'ours-nats')
    .reduce((sum, r) => sum + r.checker.outOfOrder, 0);
  out.push({
    ...consume,
    measured: `${consume.measured}; order violations ${violations}`,
    holds: consume.holds === undefined ? undefined : consume.holds && violations === 0,
  });
  out.push(ratioTarget(ratioRows, 'e2e', 'e2e', 'end-to-end ≥ 2.5× the raw pair', 2.5));

  const p99 = latency.find((r) => r.system === 'ours-nats' && r.rate === 5_000);
  out.push({
    id: 'latency',
    description: 'p99 publish→handler ≤ 5 ms at 5,000 msg/s',
    measured: p99 ? `p99 ${p99.p99} ms (p50 ${p99.p50}, max ${p99.max})` : 'not run',
    holds: p99 ? p99.p99 <= 5 : undefined,
  });

  const a = growth.rssAt100k;
  const b = growth.rssAtEnd;
  const heap =
    growth.heapAt100k !== undefined && growth.heapAtEnd !== undefined
      ? `; heap used ${mib(growth.heapAtEnd)} vs ${mib(growth.heapAt100k)}`
      : '';
  out.push({
    id: 'rss',
    description: 'RSS after 1,000,000 within 10% of RSS after 100,000',
    measured:
      a !== undefined && b !== undefined
        ? `${mib(b)} at ${(growth.endMessages ?? 0).toLocaleString('en-US')} vs ${mib(a)} at 100,000 (${(((b - a) / a) * 100).toFixed(1)}%${heap}; ${growth.source === 'soak' ? 'memory soak, GC before each sample' : 'after the 100k and 1M e2e runs'})`
        : 'needs --1m (or --soak N)',
    holds: a !== undefined && b !== undefined ? b <= a * 1.1 : undefined,
  });

  const ours = [...throughput, ...latency, ...(soak ? [soak] : [])].filter((r) =>
    r.system.startsWith('ours-'),
  );
  const leaking = ours.filter((r) => r.resources.handleDelta > 0);
  out.push({
    id: 'handles',
    description: 'active handles back to baseline after close',
    measured:
      ours.length === 0
        ? 'not run'
        : leaking.length === 0
          ? `all ${ours.length} runs of our bus back to baseline`
          : `${leaking.length}/${ours.length} runs above baseline, e.g. ${JSON.stringify(leaking[0]?.resources.leakedHandleTypes)}`,
    holds: ours.length === 0 ? undefined : leaking.length === 0,
  });
  return out;
}

export function analyse(
  throughput: readonly ThroughputRow[],
  latency: readonly LatencyRow[],
  soak?: ThroughputRow,
): Pick<BenchReport, 'ratios' | 'targets' | 'memoryGrowth'> {
  const ratioRows = ratios(throughput);
  const growth = memoryGrowth(throughput, soak);
  return {
    ratios: ratioRows,
    targets: targets(throughput, latency, ratioRows, growth, soak),
    memoryGrowth: growth,
  };
}

const int = (n: number | undefined): string =>
  n === undefined ? '—' : Math.round(n).toLocaleString('en-US');

/** order violations / lost / duplicated. */
function old(c: CheckerCounts | undefined): string {
  return c === undefined ? '—' : `${c.outOfOrder}/${c.lost}/${c.duplicated}`;
}

/** Intake stalls (> 500 ms without a message): count and total seconds. */
function stalls(r: { readonly stalls: StallStats; readonly publishStalls?: StallStats } | undefined): string {
  if (r === undefined) return '—';
  const text = (x: StallStats) => (x.count === 0 ? '0' : `${x.count} (${(x.totalMs / 1000).toFixed(1)} s)`);
  const pub =
    r.publishStalls !== undefined && r.publishStalls.count > 0 ? `, publish ${text(r.publishStalls)}` : '';
  const redelivered = r.stalls.redelivered > 0 ? `, ${r.stalls.redelivered} redelivered` : '';
  return `${text(r.stalls)}${pub}${redelivered}`;
}

function pct(c: CheckerCounts | undefined): string {
  return c === undefined ? '—' : `${(c.successRate * 100).toFixed(1)}%`;
}

function table(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  rightAlign: readonly boolean[],
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (rightAlign[i] ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '─'.repeat(w))), ...rows.map(line)].join('\n');
}

/** A ratio row with a NATS or memory measurement (Kafka-only rows have their own table). */
export function hasNatsOrMemory(r: RatioRow): boolean {
  return r.oursMsgPerSec !== undefined || r.rawMsgPerSec !== undefined || r.memoryMsgPerSec !== undefined;
}

export function formatReport(report: BenchReport): string {
  const out: string[] = [];
  const find = (r: { scenario: string; level: string }, system: string): ThroughputRow | undefined =>
    report.throughput.find((t) => t.scenario === r.scenario && t.level === r.level && t.system === system);

  out.push(
    `jxt-eventbus bench — ${report.meta.date} — node ${report.meta.node}, nats-server ${report.meta.natsServer}, ` +
      `${report.meta.cpus} CPUs (load ${report.meta.loadAverage.start[0]} → ${report.meta.loadAverage.end[0]}), ` +
      `${report.meta.topics} topics, ${report.meta.aggregates} aggregates, ${report.meta.payloadBytes}-byte payloads`,
    `code: ${report.meta.gitCommit ?? 'unknown commit'}${report.meta.gitDirtySrc.length > 0 ? ` + uncommitted ${report.meta.gitDirtySrc.join(', ')}` : ''}` +
      (report.meta.gitAtEnd
        ? ` (the tree changed during the run; at the end: ${report.meta.gitAtEnd.commit})`
        : ''),
    '',
    'Throughput (msg/s), one run, one server. RATIO = ours-nats ÷ raw-nats; raw-nats publishes with a window of',
    'concurrent js.publish promises (publish rows: the best of the sweep, its window in "win"; e2e: that window),',
    'go-nats = the Go client (PublishAsync, Fetch(500) + Ack), "÷go" = ours-nats ÷ go-nats. o/l/d = order violations / lost / duplicated.',
    'stalls = gaps > 500 ms between two consecutive handled messages (count, total time); e2e adds the gaps between publish results.',
  );
  out.push(
    table(
      [
        'scenario',
        'level',
        'messages',
        'ours-nats',
        'raw-nats',
        'win',
        'RATIO',
        'go-nats',
        '÷go',
        'ours-memory',
        'ours o/l/d',
        'raw o/l/d',
        'go o/l/d',
        'mem o/l/d',
        'ours ok',
        'stalls ours / raw',
      ],
      report.ratios
        .filter(hasNatsOrMemory)
        .map((r) => [
          r.scenario,
          r.level,
          int(r.messages),
          int(r.oursMsgPerSec),
          int(r.rawMsgPerSec),
          int(r.rawWindow),
          r.ratio === undefined ? '—' : `${r.ratio.toFixed(2)}×`,
          int(r.goMsgPerSec),
          r.goRatio === undefined ? '—' : `${r.goRatio.toFixed(2)}×`,
          int(r.memoryMsgPerSec),
          old(find(r, 'ours-nats')?.checker),
          old(find(r, 'raw-nats')?.checker),
          old(find(r, 'go-nats')?.checker),
          old(find(r, 'ours-memory')?.checker),
          pct(find(r, 'ours-nats')?.checker),
          `${stalls(find(r, 'ours-nats'))} / ${stalls(find(r, 'raw-nats'))}`,
        ]),
      [false, false, true, true, true, true, true, true, true, true, true, true, true, true, true, true],
    ),
  );
  const sweeps = report.throughput.filter((t) => t.windowSweep !== undefined);
  if (sweeps.length > 0) {
    out.push(
      'raw-nats publish window sweep (msg/s): ' +
        sweeps
          .map(
            (t) =>
              `${t.level}: ${(t.windowSweep ?? []).map((s) => `w${s.window} ${int(s.msgPerSec)}`).join(', ')}`,
          )
          .join('; '),
    );
  }

  const kafka = report.ratios.filter(
    (r) => r.oursKafkaMsgPerSec !== undefined || r.rawKafkaMsgPerSec !== undefined,
  );
  if (kafka.length > 0) {
    const where =
      report.meta.kafka && 'cluster' in report.meta.kafka ? `, cluster ${report.meta.kafka.cluster}` : '';
    out.push(
      '',
      `Kafka (msg/s${where}). ratio = ours-kafka ÷ raw-kafka (@platformatic/kafka, pipelined send() batches) in this run.`,
    );
    out.push(
      table(
        [
          'scenario',
          'level',
          'messages',
          'ours-kafka',
          'raw-kafka',
          'RATIO',
          'ours o/l/d',
          'raw o/l/d',
          'ours ok',
          'stalls ours / raw',
        ],
        kafka.map((r) => [
          r.scenario,
          r.level,
          int(r.messages),
          int(r.oursKafkaMsgPerSec),
          int(r.rawKafkaMsgPerSec),
          r.kafkaRatio === undefined ? '—' : `${r.kafkaRatio.toFixed(2)}×`,
          old(find(r, 'ours-kafka')?.checker),
          old(find(r, 'raw-kafka')?.checker),
          pct(find(r, 'ours-kafka')?.checker),
          `${stalls(find(r, 'ours-kafka'))} / ${stalls(find(r, 'raw-kafka'))}`,
        ]),
        [false, false, true, true, true, true, true, true, true, true],
      ),
    );
  }

  if (report.latency.length > 0) {
    out.push('', 'Latency publish→handler (ms, HDR histogram, first 10% of each run not recorded)');
    const rates = [...new Set(report.latency.map((r) => r.rate))];
    const rows: string[][] = [];
    for (const rate of rates) {
      const raw = report.latency.find((r) => r.rate === rate && r.system === 'raw-nats');
      for (const r of report.latency.filter((l) => l.rate === rate)) {
        rows.push([
          int(rate),
          r.system,
          int(r.achievedRate),
          r.p50.toFixed(2),
          r.p90.toFixed(2),
          r.p99.toFixed(2),
          r.p999.toFixed(2),
          r.max.toFixed(2),
          r.system === 'ours-nats' && raw && raw.p99 > 0 ? `${(r.p99 / raw.p99).toFixed(2)}×` : '',
          old(r.checker),
          stalls(r),
        ]);
      }
    }
    out.push(
      table(
        [
          'offered/s',
          'system',
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
        rows,
        [true, false, true, true, true, true, true, true, true, true, true],
      ),
    );
  }

  out.push('', 'Resources of our bus on NATS (MiB; handles = process.getActiveResourcesInfo().length)');
  const ours = report.throughput.filter((r) => r.system === 'ours-nats');
  out.push(
    table(
      [
        'scenario',
        'level',
        'rss before',
        'rss max',
        'rss after',
        'heap before',
        'heap after',
        'handles before/max/after',
      ],
      ours.map((r) => [
        r.scenario,
        r.level,
        mibn(r.resources.before.rss),
        mibn(r.resources.during.rssMax),
        mibn(r.resources.after.rss),
        mibn(r.resources.before.heapUsed),
        mibn(r.resources.after.heapUsed),
        `${r.resources.before.handles}/${r.resources.during.handlesMax}/${r.resources.after.handles}`,
      ]),
      [false, false, true, true, true, true, true, true],
    ),
  );

  const soak = report.soak;
  if (soak !== undefined) {
    out.push(
      '',
      `Memory soak: our bus on NATS, end to end, ${int(soak.messages)} messages at ${int(soak.msgPerSec)} msg/s ` +
        `(compact checker, full GC before each sample; o/l/d ${old(soak.checker)}, stalls ${stalls(soak)})`,
    );
    out.push(
      table(
        ['handled', 'rss MiB', 'heap used MiB', 'handles'],
        soak.resources.checkpoints.map((c) => [
          int(c.processed),
          mibn(c.rss),
          mibn(c.heapUsed),
          String(c.handles),
        ]),
        [true, true, true, true],
      ),
    );
  }

  out.push('', 'Targets (issue 5)');
  out.push(
    table(
      ['', 'target', 'measured'],
      report.targets.map((t) => [
        t.holds === undefined ? 'n/a ' : t.holds ? 'HOLDS' : 'MISSES',
        t.description,
        t.measured,
      ]),
      [false, false, false],
    ),
  );

  const notes = [...report.throughput, ...report.latency, ...(report.soak ? [report.soak] : [])].filter(
    (r) => r.notes.length > 0,
  );
  if (notes.length > 0) {
    out.push('', 'Notes');
    for (const r of notes) {
      const what = 'scenario' in r ? `${r.scenario} ${r.level}` : `latency ${r.rate}/s`;
      out.push(`  ${what} ${r.system}: ${r.notes.join('; ')}`);
    }
  }
  return out.join('\n');
}
