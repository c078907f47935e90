/**
 * The report: row shapes (what the JSON holds), ratios (ours ÷ raw, same
 * run), the targets of issues 5 and 14, and the terminal tables.
 */
import type { CheckerReport } from '../src/testing/checker.ts';
import type { RecordedConfig, ScenarioName, SystemName } from './config.ts';
import type { Checkpoint, RunResources, StallStats, StoredOrder } from './measure.ts';
import type { ProfileSummary } from './profile.ts';

export type ThroughputScenario = Exclude<ScenarioName, 'latency'>;

/** The order checker's verdict on a run (examples trimmed to 3); successRate = ok ÷ published. */
export type CheckerCounts = Omit<CheckerReport, 'exactlyOnce'> & { readonly successRate: number };

export function checkerCounts(r: CheckerReport): CheckerCounts {
  const { exactlyOnce: _strict, examples, ...counts } = r;
  const { lost, outOfOrder, unexpected } = examples;
  const three = (xs: readonly string[]) => xs.slice(0, 3);
  return {
    ...counts,
    successRate: r.published === 0 ? 0 : r.ok / r.published,
    examples: { lost: three(lost), outOfOrder: three(outOfOrder), unexpected: three(unexpected) },
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
  /** raw-nats: this row's window of concurrent publishes; publish rows: every window swept (best = row). */
  readonly window?: number;
  readonly windowSweep?: readonly { readonly window: number; readonly msgPerSec: number }[];
  /** With repeats: every repeat's msg/s (the row is the median run). */
  readonly samples?: readonly number[];
  /** e2e rows: gaps between publish results, and the broker's stored order read back after the run. */
  readonly publishStalls?: StallStats;
  readonly stored?: StoredOrder;
  /** Our subscriber's transport counters at the end (health().details). */
  readonly transportStats?: unknown;
  /** Consumption rows: every ack (NATS) / offset commit (Kafka) reached the broker. */
  readonly acksSettled?: boolean;
}

const PERCENTILES = ['p50', 'p90', 'p99', 'p999', 'max'] as const;
type LatencyStat = 'rate' | 'achievedRate' | 'recorded' | (typeof PERCENTILES)[number] | 'mean';

/** Offered / achieved msg/s; messages recorded (not the first 10%); percentiles, mean: ms publish → handler. */
export interface LatencyRow extends RunRow, Readonly<Record<LatencyStat, number>> {}

type Rate = number | undefined;

/**
 * ratio = ours-nats ÷ raw-nats (raw: its best publish window, in rawWindow); goRatio = ours-nats ÷
 * go-nats; kafkaRatio = ours-kafka ÷ raw-kafka. The optional fields are absent unless their systems ran.
 */
interface RatioRow {
  readonly scenario: ThroughputScenario;
  readonly level: string;
  readonly messages: number;
  readonly oursMsgPerSec: Rate;
  readonly rawMsgPerSec: Rate;
  readonly memoryMsgPerSec: Rate;
  readonly ratio: Rate;
  readonly rawWindow?: Rate;
  readonly goMsgPerSec?: Rate;
  readonly goRatio?: Rate;
  readonly oursKafkaMsgPerSec?: Rate;
  readonly rawKafkaMsgPerSec?: Rate;
  readonly kafkaRatio?: Rate;
}
type RateKey = Exclude<keyof RatioRow, 'scenario' | 'level'>;

/** Where the Kafka systems ran, or that (and why) they were skipped. */
export type KafkaMeta =
  | {
      readonly brokers: readonly string[];
      readonly cluster: string;
      readonly partitions: number;
      readonly systems: readonly SystemName[];
    }
  | { readonly skipped: readonly SystemName[]; readonly reason: string };

/** What a target's measurement came to and whether it holds (undefined: not run). */
type Verdict = readonly [measured: string, holds: boolean | undefined];
type TargetResult = Readonly<Record<'id' | 'description' | 'measured', string> & { holds: Verdict[1] }>;

/** RSS / heap at 100,000 and at the end of the memory soak (GC before each sample). */
type MemoryGrowth = { readonly source: 'soak' | 'none' } & Partial<
  Readonly<Record<'rssAt100k' | 'rssAtEnd' | 'heapAt100k' | 'heapAtEnd' | 'endMessages', Rate>>
>;

export interface BenchReport {
  readonly meta: Readonly<Record<'date' | 'node' | 'platform' | 'cpuModel' | 'natsServer', string>> &
    Readonly<Record<'cpus' | 'totalMemoryBytes' | 'durationMs', number>> & {
      /** os.loadavg() at the start and at the end. */
      readonly loadAverage: { readonly start: readonly number[]; readonly end: readonly number[] };
      readonly kafka?: KafkaMeta;
      /** The Go anchor's binary, or why go-nats was skipped. */
      readonly goAnchor?: string;
      readonly gitCommit: string | undefined;
      /** Files under src/ with uncommitted changes at the start (the run used them). */
      readonly gitDirtySrc: readonly string[];
      /** Present when HEAD or those files changed during the run. */
      readonly gitAtEnd?: { readonly commit: string | undefined; readonly dirtySrc: readonly string[] };
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
const ratioOf = (a: Rate, b: Rate): Rate =>
  a !== undefined && b !== undefined && b > 0 ? Math.round((a / b) * 100) / 100 : undefined;

type Cell = Pick<ThroughputRow, 'scenario' | 'level'>;
const rowOf = (rows: readonly ThroughputRow[], { scenario, level }: Cell, system: SystemName) =>
  rows.find((r) => r.scenario === scenario && r.level === level && r.system === system);

export function ratios(rows: readonly ThroughputRow[]): RatioRow[] {
  return (['publish', 'consume', 'e2e'] as const).flatMap((scenario) => {
    const levels = new Map(rows.filter((r) => r.scenario === scenario).map((r) => [r.level, r.messages]));
    return [...levels].map(([level, messages]): RatioRow => {
      const get = (system: SystemName) => rowOf(rows, { scenario, level }, system);
      const [ours, raw, go, memory, oursKafka, rawKafka] = (
        ['ours-nats', 'raw-nats', 'go-nats', 'ours-memory', 'ours-kafka', 'raw-kafka'] as const
      ).map((s) => get(s)?.msgPerSec);
      const rawWindow = get('raw-nats')?.window;
      return {
        scenario,
        level,
        messages,
        oursMsgPerSec: ours,
        rawMsgPerSec: raw,
        memoryMsgPerSec: memory,
        ratio: ratioOf(ours, raw),
        // Only what ran, so that NATS-only JSON keeps the shape of older results.
        ...(rawWindow === undefined ? {} : { rawWindow }),
        ...(go === undefined ? {} : { goMsgPerSec: go, goRatio: ratioOf(ours, go) }),
        ...(oursKafka === undefined && rawKafka === undefined
          ? {}
          : {
              oursKafkaMsgPerSec: oursKafka,
              rawKafkaMsgPerSec: rawKafka,
              kafkaRatio: ratioOf(oursKafka, rawKafka),
            }),
      };
    });
  });
}

/** The targets (issue 5), by id, in report order. */
const TARGETS = {
  publish: 'envelope publish ≥ 3.0× raw js.publish (best window)',
  'publish-go': 'envelope publish ≥ 0.7× the Go client (PublishAsync)',
  consume: 'consumption ≥ 2.0× raw consume() with acks, 0 order violations',
  e2e: 'end-to-end ≥ 2.5× the raw pair',
  latency: 'p99 publish→handler ≤ 5 ms at 5,000 msg/s',
  rss: 'RSS after 1,000,000 within 10% of RSS after 100,000',
  handles: 'active handles back to baseline after close',
};
type TargetId = keyof typeof TARGETS;

function memoryGrowth(soak: ThroughputRow | undefined): MemoryGrowth {
  if (soak === undefined) return { source: 'none' };
  const at = (n: number) => soak.resources.checkpoints.find((c) => c.processed === n);
  const [a, b] = [at(100_000), at(soak.messages)];
  const [rssAt100k, rssAtEnd, heapAt100k, heapAtEnd] = [a?.rss, b?.rss, a?.heapUsed, b?.heapUsed];
  return { source: 'soak', rssAt100k, rssAtEnd, heapAt100k, heapAtEnd, endMessages: soak.messages };
}

const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(0);

export function analyse(
  throughput: readonly ThroughputRow[],
  latency: readonly LatencyRow[],
  soak?: ThroughputRow,
): Pick<BenchReport, 'ratios' | 'targets' | 'memoryGrowth'> {
  const all = ratios(throughput);
  /** Judged on the largest level that ran (every level listed). */
  const ratio = (s: ThroughputScenario, key: 'ratio' | 'goRatio', min: number, none = 'not run'): Verdict => {
    const rows = all.filter((r) => r.scenario === s && r[key] !== undefined);
    const top = [...rows].sort((a, b) => b.messages - a.messages)[0];
    const perLevel = rows.map((r) => `${r.level} ${r[key]?.toFixed(2)}×`).join(', ');
    if (top === undefined) return [none, undefined];
    return [`${top[key]?.toFixed(2)}× at ${top.level} (all levels: ${perLevel})`, (top[key] ?? 0) >= min];
  };
  const [consume, consumeOk] = ratio('consume', 'ratio', 2.0);
  const violations = throughput
    .filter((r) => r.scenario === 'consume' && r.system === 'ours-nats')
    .reduce((sum, r) => sum + r.checker.outOfOrder, 0);
  const p99 = latency.find((r) => r.system === 'ours-nats' && r.rate === 5_000);
  const growth = memoryGrowth(soak);
  const { rssAt100k: a, rssAtEnd: b, heapAt100k: heapA, heapAtEnd: heapB, endMessages = 0 } = growth;
  const heap =
    heapA === undefined || heapB === undefined ? '' : `; heap used ${mib(heapB)} MiB vs ${mib(heapA)} MiB`;
  const rss = (at100k: number, atEnd: number) =>
    `${mib(atEnd)} MiB at ${endMessages.toLocaleString('en-US')} vs ${mib(at100k)} MiB at 100,000 ` +
    `(${(((atEnd - at100k) / at100k) * 100).toFixed(1)}%${heap}; memory soak, GC before each sample)`;
  // Kafka runs of our bus count too; the raw clients' handles are not ours.
  const ours = [...throughput, ...latency, ...(soak ? [soak] : [])].filter((r) =>
    r.system.startsWith('ours-'),
  );
  const leaking = ours.filter((r) => r.resources.handleDelta > 0);
  const leaked = JSON.stringify(leaking[0]?.resources.leakedHandleTypes);
  const verdicts: Record<TargetId, Verdict> = {
    publish: ratio('publish', 'ratio', 3.0),
    'publish-go': ratio('publish', 'goRatio', 0.7, 'not run (no Go)'),
    consume: [`${consume}; order violations ${violations}`, consumeOk && violations === 0],
    e2e: ratio('e2e', 'ratio', 2.5),
    latency: p99
      ? [`p99 ${p99.p99} ms (p50 ${p99.p50}, max ${p99.max})`, p99.p99 <= 5]
      : ['not run', undefined],
    rss:
      a === undefined || b === undefined
        ? ['needs --1m (or --soak N)', undefined]
        : [rss(a, b), b <= a * 1.1],
    handles:
      ours.length === 0
        ? ['not run', undefined]
        : leaking.length === 0
          ? [`all ${ours.length} runs of our bus back to baseline`, true]
          : [`${leaking.length}/${ours.length} runs above baseline, e.g. ${leaked}`, false],
  };
  const targets = Object.entries(verdicts).map(([id, [measured, holds]]) => ({
    id,
    description: TARGETS[id as TargetId],
    measured,
    holds,
  }));
  return { ratios: all, targets, memoryGrowth: growth };
}

const int = (n: Rate): string => (n === undefined ? '—' : Math.round(n).toLocaleString('en-US'));
const times = (r: Rate): string => (r === undefined ? '—' : `${r.toFixed(2)}×`);
/** order violations / lost / duplicated. */
const old = (c: CheckerCounts | undefined): string =>
  c === undefined ? '—' : `${c.outOfOrder}/${c.lost}/${c.duplicated}`;
const pct = (c: CheckerCounts | undefined): string =>
  c === undefined ? '—' : `${(c.successRate * 100).toFixed(1)}%`;

/** Stalls: count and total seconds (e2e: also between publish results), redeliveries. */
function stalls(r: Pick<ThroughputRow, 'stalls' | 'publishStalls'> | undefined): string {
  if (r === undefined) return '—';
  const text = (x: StallStats) => (x.count === 0 ? '0' : `${x.count} (${(x.totalMs / 1000).toFixed(1)} s)`);
  const pub = r.publishStalls && r.publishStalls.count > 0 ? `, publish ${text(r.publishStalls)}` : '';
  const redelivered = r.stalls.redelivered > 0 ? `, ${r.stalls.redelivered} redelivered` : '';
  return `${text(r.stalls)}${pub}${redelivered}`;
}

/** A column: its header (a leading '<': left-aligned, else right-aligned) and its cell. */
type Column<T> = readonly [string, (row: T) => string];

function table<T>(columns: readonly Column<T>[], rows: readonly T[]): string {
  const head = columns.map(([h]) => h.replace(/^</, ''));
  const body = rows.map((r) => columns.map(([, cell]) => cell(r)));
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((cells) => cells[i]?.length ?? 0)));
  const pad = (c: string, i: number) => {
    const w = widths[i] ?? 0;
    return columns[i]?.[0].startsWith('<') ? c.padEnd(w) : c.padStart(w);
  };
  const line = (cells: readonly string[]) => cells.map(pad).join('  ').trimEnd();
  return [line(head), line(widths.map((w) => '─'.repeat(w))), ...body.map(line)].join('\n');
}

export function formatReport(report: BenchReport): string {
  const { meta, throughput, latency, soak } = report;
  const dirty = meta.gitDirtySrc.length > 0 ? ` + uncommitted ${meta.gitDirtySrc.join(', ')}` : '';
  const out = [
    `jxt-eventbus bench — ${meta.date} — node ${meta.node}, nats-server ${meta.natsServer}, ` +
      `${meta.cpus} CPUs (load ${meta.loadAverage.start[0]} → ${meta.loadAverage.end[0]}), ` +
      `${meta.topics} topics, ${meta.aggregates} aggregates, ${meta.payloadBytes}-byte payloads`,
    `code: ${meta.gitCommit ?? 'unknown commit'}${dirty}` +
      (meta.gitAtEnd ? ` (the tree changed during the run; at the end: ${meta.gitAtEnd.commit})` : ''),
  ];
  /** A blank line, the title and a table; by default only when it has rows. */
  const add = <T>(title: string, cols: readonly Column<T>[], rows: readonly T[], show = rows.length > 0) => {
    if (show) out.push('', title, table(cols, rows));
  };

  // NATS and Kafka: one line per ratio row; the systems' own rows found by scenario and level.
  const find = (r: Cell, system: SystemName) => rowOf(throughput, r, system);
  const where: Column<Cell>[] = [
    ['<scenario', (r) => r.scenario],
    ['<level', (r) => r.level],
  ];
  const n = (header: string, key: RateKey): Column<RatioRow> => [header, (r) => int(r[key])];
  const x = (header: string, key: RateKey): Column<RatioRow> => [header, (r) => times(r[key])];
  const short = (s: SystemName) => (s === 'ours-memory' ? 'mem' : s.split('-')[0]);
  /** o/l/d of each system, then ours (the first): ok %, and its stalls next to raw's (the second). */
  const checks = (ours: SystemName, raw: SystemName, ...more: SystemName[]): Column<RatioRow>[] => [
    ...[ours, raw, ...more].map((s) => [`${short(s)} o/l/d`, (r: Cell) => old(find(r, s)?.checker)] as const),
    ['ours ok', (r) => pct(find(r, ours)?.checker)],
    ['stalls ours / raw', (r) => `${stalls(find(r, ours))} / ${stalls(find(r, raw))}`],
  ];
  add(
    [
      'Throughput (msg/s), one run, one server. RATIO = ours-nats ÷ raw-nats; raw-nats publishes with a window of',
      'concurrent js.publish promises (publish rows: the best of the sweep, its window in "win"; e2e: that window),',
      'go-nats = the Go client (PublishAsync, Fetch(500) + Ack), "÷go" = ours-nats ÷ go-nats. o/l/d = order violations / lost / duplicated.',
      'stalls = gaps > 500 ms between two consecutive handled messages (count, total time); e2e adds the gaps between publish results.',
    ].join('\n'),
    [
      ...where,
      n('messages', 'messages'),
      n('ours-nats', 'oursMsgPerSec'),
      n('raw-nats', 'rawMsgPerSec'),
      n('win', 'rawWindow'),
      x('RATIO', 'ratio'),
      n('go-nats', 'goMsgPerSec'),
      x('÷go', 'goRatio'),
      n('ours-memory', 'memoryMsgPerSec'),
      ...checks('ours-nats', 'raw-nats', 'go-nats', 'ours-memory'),
    ],
    report.ratios.filter((r) => (r.oursMsgPerSec ?? r.rawMsgPerSec ?? r.memoryMsgPerSec) !== undefined),
    true,
  );
  const sweeps = throughput.filter((t) => t.windowSweep !== undefined);
  const sweep = (t: ThroughputRow) =>
    `${t.level}: ${(t.windowSweep ?? []).map((s) => `w${s.window} ${int(s.msgPerSec)}`).join(', ')}`;
  if (sweeps.length > 0) out.push(`raw-nats publish window sweep (msg/s): ${sweeps.map(sweep).join('; ')}`);

  const cluster = meta.kafka && 'cluster' in meta.kafka ? `, cluster ${meta.kafka.cluster}` : '';
  add(
    `Kafka (msg/s${cluster}). ratio = ours-kafka ÷ raw-kafka (@platformatic/kafka, pipelined send() batches) in this run.`,
    [
      ...where,
      n('messages', 'messages'),
      n('ours-kafka', 'oursKafkaMsgPerSec'),
      n('raw-kafka', 'rawKafkaMsgPerSec'),
      x('RATIO', 'kafkaRatio'),
      ...checks('ours-kafka', 'raw-kafka'),
    ],
    report.ratios.filter((r) => (r.oursKafkaMsgPerSec ?? r.rawKafkaMsgPerSec) !== undefined),
  );

  const rawP99 = (r: LatencyRow) =>
    (r.system === 'ours-nats' && latency.find((x) => x.rate === r.rate && x.system === 'raw-nats')?.p99) || 0;
  add<LatencyRow>(
    'Latency publish→handler (ms, HDR histogram, first 10% of each run not recorded)',
    [
      ['offered/s', (r) => int(r.rate)],
      ['<system', (r) => r.system],
      ['achieved/s', (r) => int(r.achievedRate)],
      ...PERCENTILES.map((p) => [p === 'p999' ? 'p99.9' : p, (r: LatencyRow) => r[p].toFixed(2)] as const),
      ['p99 ours/raw', (r) => (rawP99(r) > 0 ? times(r.p99 / rawP99(r)) : '')],
      ['o/l/d', (r) => old(r.checker)],
      ['stalls', stalls],
    ],
    latency,
  );

  const mem = (h: string, get: (m: RunResources) => number) =>
    [h, (r: ThroughputRow) => mib(get(r.resources))] as const;
  add<ThroughputRow>(
    'Resources of our bus on NATS (MiB; handles = process.getActiveResourcesInfo().length)',
    [
      ...where,
      mem('rss before', (m) => m.before.rss),
      mem('rss max', (m) => m.during.rssMax),
      mem('rss after', (m) => m.after.rss),
      mem('heap before', (m) => m.before.heapUsed),
      mem('heap after', (m) => m.after.heapUsed),
      [
        'handles before/max/after',
        ({ resources: m }) => `${m.before.handles}/${m.during.handlesMax}/${m.after.handles}`,
      ],
    ],
    throughput.filter((r) => r.system === 'ours-nats'),
  );

  if (soak !== undefined)
    add<Checkpoint>(
      `Memory soak: our bus on NATS, end to end, ${int(soak.messages)} messages at ${int(soak.msgPerSec)} msg/s ` +
        `(compact checker, full GC before each sample; o/l/d ${old(soak.checker)}, stalls ${stalls(soak)})`,
      [
        ['handled', (c) => int(c.processed)],
        ['rss MiB', (c) => mib(c.rss)],
        ['heap used MiB', (c) => mib(c.heapUsed)],
        ['handles', (c) => String(c.handles)],
      ],
      soak.resources.checkpoints,
      true,
    );

  add<TargetResult>(
    'Targets (issue 5)',
    [
      ['<', (t) => (t.holds === undefined ? 'n/a ' : t.holds ? 'HOLDS' : 'MISSES')],
      ['<target', (t) => t.description],
      ['<measured', (t) => t.measured],
    ],
    report.targets,
    true,
  );

  const noted = [...throughput, ...latency, ...(soak ? [soak] : [])].filter((r) => r.notes.length > 0);
  if (noted.length > 0) out.push('', 'Notes');
  for (const r of noted) {
    const what = 'scenario' in r ? `${r.scenario} ${r.level}` : `latency ${r.rate}/s`;
    out.push(`  ${what} ${r.system}: ${r.notes.join('; ')}`);
  }
  return out.join('\n');
}
