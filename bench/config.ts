/** Bench parameters: pressure levels, offered rates, systems, scenarios, workload shape. */

export interface Level {
  readonly name: string;
  readonly messages: number;
}

/** The Go notes' pressure levels plus the larger runs of issue 5; 1M is opt-in (`--1m`). */
export const LEVELS = [
  { name: 'low', messages: 500 },
  { name: 'medium', messages: 2_000 },
  { name: 'high', messages: 5_000 },
  { name: 'extreme', messages: 10_000 },
  { name: '100k', messages: 100_000 },
  { name: '1M', messages: 1_000_000 },
] as const;
/** latencyRates: the offered rates of the latency scenario (msg/s). */
export const DEFAULTS = {
  levels: LEVELS.filter((l) => l.messages < 1_000_000),
  latencyRates: [1_000, 5_000, 20_000],
  latencySeconds: 5,
  warmupMessages: 5_000,
  repeat: 3,
  topics: 4,
  aggregates: 1_000,
  payloadBytes: 256,
  outDir: 'bench/results',
} as const;
/** `--quick`: a smoke run (seconds, not minutes; ratios meaningless). */
export const QUICK_LEVELS = [
  { name: 'quick-a', messages: 300 },
  { name: 'quick-b', messages: 1_200 },
] as const;
export const QUICK = {
  levels: QUICK_LEVELS,
  latencyRates: [1_000, 5_000],
  latencySeconds: 0.6,
  warmupMessages: 500,
  repeat: 1,
} as const;

export const SYSTEMS = [
  'ours-nats',
  'raw-nats',
  'go-nats',
  'ours-memory',
  'ours-kafka',
  'raw-kafka',
] as const;
export type SystemName = (typeof SYSTEMS)[number];
/** Need the bench's nats-server. */
export const NATS_SYSTEMS: readonly SystemName[] = ['ours-nats', 'raw-nats', 'go-nats'];
/** Need KAFKA_BROKERS; skipped without. */
export const KAFKA_SYSTEMS: readonly SystemName[] = ['ours-kafka', 'raw-kafka'];
/** Have latency rows (not Go, not Kafka). */
export const LATENCY_SYSTEMS: readonly SystemName[] = ['ours-nats', 'raw-nats', 'ours-memory'];
export const SCENARIOS = ['publish', 'consume', 'e2e', 'latency'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export interface BenchConfig {
  readonly levels: readonly Level[];
  readonly latencyRates: readonly number[];
  readonly latencySeconds: number;
  readonly topics: number;
  readonly aggregates: number;
  readonly payloadBytes: number;
  /** Messages per path pushed through before anything is measured (JIT warm-up). */
  readonly warmupMessages: number;
  readonly outDir: string;
  readonly quick: boolean;
  readonly profile: boolean;
  readonly systems: readonly SystemName[];
  readonly scenarios: readonly ScenarioName[];
  /** Messages of the memory soak; default 1,000,000 when the 1M level runs, else none. */
  readonly soak: number | undefined;
  /** Runs per cell for levels up to 10,000 messages (median reported). */
  readonly repeat: number;
}

/** The settings a report records with its rows (its `meta`). */
const RECORDED_KEYS = [
  'quick',
  'levels',
  'latencyRates',
  'latencySeconds',
  'topics',
  'aggregates',
  'payloadBytes',
  'warmupMessages',
  'repeat',
] as const;
export type RecordedConfig = Pick<BenchConfig, (typeof RECORDED_KEYS)[number]>;

export function recordedConfig(c: BenchConfig): RecordedConfig {
  return Object.fromEntries(RECORDED_KEYS.map((key) => [key, c[key]])) as RecordedConfig;
}
