/** Bench parameters: pressure levels, offered rates, workload shape. Defaults in one place. */

/**
 * The Go notes' pressure levels plus the larger runs of issue 5. The 1M level
 * is opt-in (`--1m`): on 2 shared cores it takes tens of minutes.
 */
export const LEVELS = [
  { name: 'low', messages: 500 },
  { name: 'medium', messages: 2_000 },
  { name: 'high', messages: 5_000 },
  { name: 'extreme', messages: 10_000 },
  { name: '100k', messages: 100_000 },
  { name: '1M', messages: 1_000_000 },
] as const;

/** What runs without --levels / --1m. */
export const DEFAULT_LEVELS = LEVELS.filter((l) => l.messages < 1_000_000);

/** `--quick`: small levels for a CI smoke run (seconds, not minutes). */
export const QUICK_LEVELS = [
  { name: 'quick-a', messages: 300 },
  { name: 'quick-b', messages: 1_200 },
] as const;

export interface Level {
  readonly name: string;
  readonly messages: number;
}

/** Offered rates of the latency scenario (messages per second). */
export const LATENCY_RATES = [1_000, 5_000, 20_000] as const;

export interface BenchConfig {
  readonly levels: readonly Level[];
  readonly latencyRates: readonly number[];
  /** Seconds each latency rate is offered (after the warm-up share). */
  readonly latencySeconds: number;
  readonly topics: number;
  readonly aggregates: number;
  readonly payloadBytes: number;
  /** Messages per path pushed through before anything is measured (JIT warm-up). */
  readonly warmupMessages: number;
  readonly outDir: string;
  readonly quick: boolean;
  /** Write CPU profiles of our publish and consume paths (inspector, in-process). */
  readonly profile: boolean;
  /** Which systems to run (default all; the Kafka ones only when KAFKA_BROKERS is set). */
  readonly systems: readonly SystemName[];
  /** Which scenarios to run (default all). */
  readonly scenarios: readonly ScenarioName[];
  /** Messages of the memory soak; default: 1,000,000 when the 1M level runs, else none. */
  readonly soak: number | undefined;
  /** Runs per cell for the small levels (<= 10,000 messages); the median run is reported. */
  readonly repeat: number;
}

export const SYSTEMS = [
  'ours-nats',
  'raw-nats',
  'go-nats',
  'ours-memory',
  'ours-kafka',
  'raw-kafka',
] as const;
export type SystemName = (typeof SYSTEMS)[number];

/** Systems that need a nats-server (the bench spawns one). */
export const NATS_SYSTEMS: readonly SystemName[] = ['ours-nats', 'raw-nats', 'go-nats'];
/** Systems that need a Kafka broker (KAFKA_BROKERS); skipped without one. */
export const KAFKA_SYSTEMS: readonly SystemName[] = ['ours-kafka', 'raw-kafka'];
/** Systems of the latency scenario (Kafka has publish, consume and e2e rows only). */
export const LATENCY_SYSTEMS: readonly SystemName[] = ['ours-nats', 'raw-nats', 'ours-memory'];

export const SCENARIOS = ['publish', 'consume', 'e2e', 'latency'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export const DEFAULTS = {
  topics: 4,
  aggregates: 1_000,
  payloadBytes: 256,
  latencySeconds: 5,
  warmupMessages: 5_000,
  repeat: 3,
  outDir: 'bench/results',
} as const;

/** The `--quick` variant of the defaults. */
export const QUICK = {
  latencySeconds: 0.6,
  warmupMessages: 500,
  repeat: 1,
  latencyRates: [1_000, 5_000] as const,
} as const;
