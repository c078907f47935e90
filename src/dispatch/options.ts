/**
 * Pool options: every default lives here, and everything is validated once,
 * when a subscription is created, so the pool itself can trust its options.
 */
import { InvalidArgumentError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { optionKeys, rejectUnknownKeys } from '../core/option-keys.ts';
import type { MessageKind } from '../core/transport.ts';
import type { BackoffOptions, DeadLetterPolicy, SubscribeOptions } from '../core/types.ts';
import type { PoolMetrics } from '../metrics/metrics.ts';
import type { DeadLetterRequest, ResolvedPoolOptions } from './types.ts';

export const poolDefaults = {
  actors: 64,
  inboxSize: 64,
  handlerTimeoutMs: 20_000,
  maxAttempts: 5,
  backoff: { initialMs: 100, maxMs: 5_000, multiplier: 2, jitter: 0.2 },
  deadLetterPolicy: 'continue' as DeadLetterPolicy,
  // A third of JetStream's default AckWait (30 s): a long handler signals
  // progress well before the broker would redeliver its message.
  workingIntervalMs: 10_000,
} as const;

/** Largest delay setInterval/setTimeout accept (2^31 - 1 ms); larger values fire at once. */
const maxTimerMs = 2_147_483_647;
/** More actors than this is a configuration mistake, not concurrency. */
const maxActors = 65_536;

const subscribeOptionKeys = optionKeys<SubscribeOptions>({
  group: true,
  actors: true,
  inboxSize: true,
  handlerTimeoutMs: true,
  maxAttempts: true,
  backoff: true,
  deadLetterPolicy: true,
  deadLetterTopic: true,
  signal: true,
  startFrom: true,
});
const backoffOptionKeys = optionKeys<BackoffOptions>({
  initialMs: true,
  maxMs: true,
  multiplier: true,
  jitter: true,
});

/** What the bus supplies besides the user's SubscribeOptions. */
export interface PoolHooks {
  readonly deadLetter: (request: DeadLetterRequest) => Promise<void>;
  readonly metrics: PoolMetrics;
  readonly logger: Logger;
  readonly workingIntervalMs?: number;
  /** Test seam for backoff sleeps. */
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

export function resolvePoolOptions(
  topic: string,
  group: string,
  kind: MessageKind,
  userOptions: SubscribeOptions,
  hooks: PoolHooks,
): ResolvedPoolOptions {
  nonEmptyString('topic', topic);
  nonEmptyString('group', group);
  if (kind !== 'envelope' && kind !== 'raw') fail('kind', `'envelope' or 'raw'`, kind);
  if (typeof userOptions !== 'object' || userOptions === null) fail('options', 'an object', userOptions);
  rejectUnknownKeys('', userOptions, subscribeOptionKeys);
  rejectUnknownKeys('backoff', userOptions.backoff, backoffOptionKeys);
  if (typeof hooks !== 'object' || hooks === null) fail('hooks', 'an object', hooks);
  if (typeof hooks.deadLetter !== 'function') fail('deadLetter', 'a function', hooks.deadLetter);
  if (typeof hooks.metrics !== 'object' || hooks.metrics === null)
    fail('metrics', 'an object', hooks.metrics);
  if (typeof hooks.logger !== 'object' || hooks.logger === null) fail('logger', 'an object', hooks.logger);
  if (hooks.sleep !== undefined && typeof hooks.sleep !== 'function')
    fail('sleep', 'a function', hooks.sleep);

  const backoffInput = userOptions.backoff === undefined ? {} : userOptions.backoff;
  if (typeof backoffInput !== 'object' || backoffInput === null) fail('backoff', 'an object', backoffInput);
  const backoff = {
    initialMs: number(
      'backoff.initialMs',
      backoffInput.initialMs ?? poolDefaults.backoff.initialMs,
      0,
      maxTimerMs,
    ),
    maxMs: number('backoff.maxMs', backoffInput.maxMs ?? poolDefaults.backoff.maxMs, 0, maxTimerMs),
    multiplier: number(
      'backoff.multiplier',
      backoffInput.multiplier ?? poolDefaults.backoff.multiplier,
      1,
      1_000,
    ),
    jitter: number('backoff.jitter', backoffInput.jitter ?? poolDefaults.backoff.jitter, 0, 1),
  };
  if (backoff.maxMs < backoff.initialMs) {
    fail('backoff.maxMs', `at least \`backoff.initialMs\` (${backoff.initialMs})`, backoff.maxMs);
  }

  const policy = userOptions.deadLetterPolicy ?? poolDefaults.deadLetterPolicy;
  if (policy !== 'continue' && policy !== 'park') fail('deadLetterPolicy', `'continue' or 'park'`, policy);

  // Undefined leaves it to the transport's default (earliest; Kafka's autoOffsetReset).
  const startFrom = userOptions.startFrom;
  if (startFrom !== undefined && startFrom !== 'earliest' && startFrom !== 'latest') {
    fail('startFrom', `'earliest' or 'latest'`, startFrom);
  }

  const resolved: ResolvedPoolOptions = {
    topic,
    group,
    kind,
    actors: integer('actors', userOptions.actors ?? poolDefaults.actors, 1, maxActors),
    inboxSize: integer('inboxSize', userOptions.inboxSize ?? poolDefaults.inboxSize, 1, 1_000_000),
    handlerTimeoutMs: number(
      'handlerTimeoutMs',
      userOptions.handlerTimeoutMs ?? poolDefaults.handlerTimeoutMs,
      1,
      maxTimerMs,
    ),
    maxAttempts: integer('maxAttempts', userOptions.maxAttempts ?? poolDefaults.maxAttempts, 1, 1_000),
    backoff,
    deadLetterPolicy: policy,
    startFrom,
    workingIntervalMs: number(
      'workingIntervalMs',
      hooks.workingIntervalMs ?? poolDefaults.workingIntervalMs,
      1,
      maxTimerMs,
    ),
    deadLetter: hooks.deadLetter,
    metrics: hooks.metrics,
    logger: hooks.logger,
  };
  // exactOptionalPropertyTypes: only set the seam when it was given.
  return hooks.sleep === undefined ? resolved : { ...resolved, sleep: hooks.sleep };
}

function nonEmptyString(name: string, value: unknown): void {
  if (typeof value !== 'string' || value.length === 0) fail(name, 'a non-empty string', value);
}

function number(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    fail(name, `a number from ${min} to ${max}`, value);
  }
  return value;
}

function integer(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(name, `an integer from ${min} to ${max}`, value);
  }
  return value;
}

function fail(name: string, expected: string, value: unknown): never {
  throw new InvalidArgumentError(`Expected \`${name}\` to be ${expected}, got ${describe(value)}`);
}

function describe(value: unknown): string {
  if (typeof value === 'string') return `${JSON.stringify(value)} (string)`;
  if (value === null) return '`null`';
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'object') return 'an object';
  return `\`${String(value)}\` (${typeof value})`;
}
