/** Shapes of bench results (what the JSON report holds). */
import type { CheckerReport } from '../src/testing/checker.ts';
import type { ScenarioName, SystemName } from './config.ts';
import type { StallStats, StoredOrder } from './measure.ts';
import type { RunResources, TimelineSample } from './resources.ts';

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

export interface ProfileSummary {
  readonly label: string;
  readonly file: string;
  readonly totalMs: number;
  /** Top self-time functions overall. */
  readonly top: readonly ProfileEntry[];
  /** Self time by kind: idle, GC, nats.js, our code, bench instrumentation, native calls... */
  readonly buckets: readonly { readonly name: string; readonly selfMs: number; readonly pct: number }[];
  /** Top self-time functions of our code (src/ without src/testing). */
  readonly ours: readonly ProfileEntry[];
  /** Self time per file of our code. */
  readonly oursByFile: readonly { readonly file: string; readonly selfMs: number; readonly pct: number }[];
}

export interface ProfileEntry {
  readonly functionName: string;
  readonly location: string;
  readonly selfMs: number;
  readonly pct: number;
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
  readonly timeline: readonly TimelineSample[];
}
