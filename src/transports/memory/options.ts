/** Options of the in-memory transport; defaults in one place. */
import { InvalidArgumentError } from '../../core/errors.ts';
import { optionKeys, rejectUnknownKeys } from '../../core/option-keys.ts';
import type { MemoryBroker } from './broker.ts';
import type { MemoryPublishChaosOptions, ResolvedPublishChaos } from './publish-chaos.ts';

export interface MemoryChaosOptions {
  /** Probability (0..1) that an acked message is delivered once more (a lost ack). */
  readonly duplicateRate?: number;
  /** Upper bound of a random delay (ms) before each delivery batch. */
  readonly maxDelayMs?: number;
  /** Seed for the chaos PRNG, so a failing run can be replayed. */
  readonly seed?: number;
  /** Publish-side faults: failed sends, lost or held acks, acks out of order (publish-chaos.ts). */
  readonly publish?: MemoryPublishChaosOptions;
}

export interface ResolvedChaos {
  readonly duplicateRate: number;
  readonly maxDelayMs: number;
  readonly seed: number;
  readonly publish: ResolvedPublishChaos | undefined;
}

export interface MemoryTransportOptions {
  /** The in-process broker; buses sharing one talk to each other. Default: one per process. */
  readonly broker?: MemoryBroker;
  /** Largest message accepted (body + headers). Default 1 MiB, like nats-server. */
  readonly maxPayloadBytes?: number;
  /** Fault injection for users' own tests. */
  readonly chaos?: MemoryChaosOptions;
  /**
   * Partitions of an envelope topic, fixed when the topic is first used on
   * the broker (later buses keep the recorded count). Subscriptions in one
   * group split the partitions; an aggregate stays in one. Default 16, like NATS.
   */
  readonly partitions?: number;
  readonly group?: MemoryGroupOptions;
}

export interface MemoryGroupOptions {
  /**
   * Partition lease time: how long a subscription that stops renewing (its
   * event loop blocked) keeps its partitions before others take them; it
   * stops itself earlier. Joins and handoffs are seen within a fifth of it.
   * Default 1,000 ms (there are no process pauses in one process, only stalls).
   */
  readonly leaseMs?: number;
}

export interface ResolvedMemoryOptions {
  readonly maxPayloadBytes: number;
  readonly chaos: ResolvedChaos | undefined;
  readonly partitions: number;
  readonly group: Required<MemoryGroupOptions>;
}

export const memoryDefaults = { maxPayloadBytes: 1024 * 1024, partitions: 16, leaseMs: 1_000 } as const;

function integer(
  name: string,
  value: number | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(
      `Expected \`memory.${name}\` to be an integer in [${min}, ${max}], got ${String(value)}`,
    );
  }
  return value;
}

function rate(name: string, value: number | undefined): number {
  if (value === undefined) return 0;
  if (typeof value !== 'number' || !(value >= 0 && value <= 1)) {
    throw new InvalidArgumentError(
      `Expected \`memory.chaos.${name}\` to be a number in [0, 1], got ${String(value)}`,
    );
  }
  return value;
}

const memoryKeys = {
  top: optionKeys<MemoryTransportOptions>({
    broker: true,
    maxPayloadBytes: true,
    chaos: true,
    partitions: true,
    group: true,
  }),
  chaos: optionKeys<MemoryChaosOptions>({ duplicateRate: true, maxDelayMs: true, seed: true, publish: true }),
  publish: optionKeys<MemoryPublishChaosOptions>({
    failRate: true,
    lostAckRate: true,
    maxAckDelayMs: true,
    fault: true,
  }),
  group: optionKeys<MemoryGroupOptions>({ leaseMs: true }),
};

export function resolveMemoryOptions(options: MemoryTransportOptions = {}): ResolvedMemoryOptions {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError(`Expected \`memory\` to be an object, got ${String(options)}`);
  }
  rejectUnknownKeys('memory', options, memoryKeys.top);
  rejectUnknownKeys('memory.chaos', options.chaos, memoryKeys.chaos);
  rejectUnknownKeys('memory.group', options.group, memoryKeys.group);
  rejectUnknownKeys('memory.chaos.publish', options.chaos?.publish, memoryKeys.publish);
  const max = options.maxPayloadBytes ?? memoryDefaults.maxPayloadBytes;
  if (!Number.isSafeInteger(max) || max <= 0) {
    throw new InvalidArgumentError(
      `Expected \`memory.maxPayloadBytes\` to be a positive integer, got ${String(max)}`,
    );
  }
  const partitions = integer('partitions', options.partitions, memoryDefaults.partitions, 1, 1024);
  const group = {
    leaseMs: integer('group.leaseMs', options.group?.leaseMs, memoryDefaults.leaseMs, 100, 600_000),
  };
  const chaos = options.chaos;
  if (chaos === undefined) return { maxPayloadBytes: max, chaos: undefined, partitions, group };
  const seed = chaos.seed ?? 1;
  return {
    maxPayloadBytes: max,
    partitions,
    group,
    chaos: {
      duplicateRate: rate('duplicateRate', chaos.duplicateRate),
      maxDelayMs: delay('maxDelayMs', chaos.maxDelayMs),
      seed,
      publish: resolvePublishChaos(chaos.publish, seed),
    },
  };
}

function delay(name: string, value: number | undefined): number {
  const ms = value ?? 0;
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) {
    throw new InvalidArgumentError(`Expected \`memory.chaos.${name}\` to be >= 0, got ${String(ms)}`);
  }
  return ms;
}

function resolvePublishChaos(
  options: MemoryPublishChaosOptions | undefined,
  seed: number,
): ResolvedPublishChaos | undefined {
  if (options === undefined) return undefined;
  if (options.fault !== undefined && typeof options.fault !== 'function') {
    throw new InvalidArgumentError(
      `Expected \`memory.chaos.publish.fault\` to be a function, got ${typeof options.fault}`,
    );
  }
  return {
    failRate: rate('publish.failRate', options.failRate),
    lostAckRate: rate('publish.lostAckRate', options.lostAckRate),
    maxAckDelayMs: delay('publish.maxAckDelayMs', options.maxAckDelayMs),
    fault: options.fault,
    seed,
  };
}
