/** Options of the in-memory transport; defaults in one place. */
import { InvalidArgumentError } from '../../core/errors.ts';
import type { MemoryBroker } from './broker.ts';

export interface MemoryChaosOptions {
  /** Probability (0..1) that an acked message is delivered once more (a lost ack). */
  readonly duplicateRate?: number;
  /** Upper bound of a random delay (ms) before each delivery batch. */
  readonly maxDelayMs?: number;
  /** Seed for the chaos PRNG, so a failing run can be replayed. */
  readonly seed?: number;
}

export interface MemoryTransportOptions {
  /** The in-process broker; buses sharing one talk to each other. Default: one per process. */
  readonly broker?: MemoryBroker;
  /** Largest message accepted (body + headers). Default 1 MiB, like nats-server. */
  readonly maxPayloadBytes?: number;
  /** Fault injection for users' own tests. */
  readonly chaos?: MemoryChaosOptions;
}

export interface ResolvedMemoryOptions {
  readonly maxPayloadBytes: number;
  readonly chaos: Required<MemoryChaosOptions> | undefined;
}

export const memoryDefaults = { maxPayloadBytes: 1024 * 1024 } as const;

function rate(name: string, value: number | undefined): number {
  if (value === undefined) return 0;
  if (typeof value !== 'number' || !(value >= 0 && value <= 1)) {
    throw new InvalidArgumentError(
      `Expected \`memory.chaos.${name}\` to be a number in [0, 1], got ${String(value)}`,
    );
  }
  return value;
}

export function resolveMemoryOptions(options: MemoryTransportOptions = {}): ResolvedMemoryOptions {
  const max = options.maxPayloadBytes ?? memoryDefaults.maxPayloadBytes;
  if (!Number.isSafeInteger(max) || max <= 0) {
    throw new InvalidArgumentError(
      `Expected \`memory.maxPayloadBytes\` to be a positive integer, got ${String(max)}`,
    );
  }
  const chaos = options.chaos;
  if (chaos === undefined) return { maxPayloadBytes: max, chaos: undefined };
  const maxDelayMs = chaos.maxDelayMs ?? 0;
  if (!Number.isFinite(maxDelayMs) || maxDelayMs < 0) {
    throw new InvalidArgumentError(
      `Expected \`memory.chaos.maxDelayMs\` to be >= 0, got ${String(maxDelayMs)}`,
    );
  }
  return {
    maxPayloadBytes: max,
    chaos: {
      duplicateRate: rate('duplicateRate', chaos.duplicateRate),
      maxDelayMs,
      seed: chaos.seed ?? 1,
    },
  };
}
