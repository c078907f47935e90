/**
 * Pool options: every default lives here, and everything is validated once,
 * when a subscription is created, so the pool itself can trust its options.
 */
import { resolveBackoff } from '../core/backoff.ts';
import type { Logger } from '../core/logger.ts';
import {
  failOption,
  integerInRange,
  MAX_TIMER_MS,
  nonEmptyString,
  numberInRange,
} from '../core/option-checks.ts';
import { optionKeys, rejectUnknownKeys } from '../core/option-keys.ts';
import type { MessageKind } from '../core/transport.ts';
import type { DeadLetterPolicy, SubscribeOptions } from '../core/types.ts';
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
  middleware: true, // resolved by the bus (src/bus/middleware.ts), not the pool
  startFrom: true,
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
  if (kind !== 'envelope' && kind !== 'raw') failOption('kind', `'envelope' or 'raw'`, kind);
  if (typeof userOptions !== 'object' || userOptions === null)
    failOption('options', 'an object', userOptions);
  rejectUnknownKeys('', userOptions, subscribeOptionKeys);
  if (typeof hooks !== 'object' || hooks === null) failOption('hooks', 'an object', hooks);
  if (typeof hooks.deadLetter !== 'function') failOption('deadLetter', 'a function', hooks.deadLetter);
  if (typeof hooks.metrics !== 'object' || hooks.metrics === null)
    failOption('metrics', 'an object', hooks.metrics);
  if (typeof hooks.logger !== 'object' || hooks.logger === null)
    failOption('logger', 'an object', hooks.logger);
  if (hooks.sleep !== undefined && typeof hooks.sleep !== 'function')
    failOption('sleep', 'a function', hooks.sleep);

  const backoff = resolveBackoff('backoff', userOptions.backoff, poolDefaults.backoff);

  const policy = userOptions.deadLetterPolicy ?? poolDefaults.deadLetterPolicy;
  if (policy !== 'continue' && policy !== 'park')
    failOption('deadLetterPolicy', `'continue' or 'park'`, policy);

  // Undefined leaves it to the transport's default (earliest; Kafka's autoOffsetReset).
  const startFrom = userOptions.startFrom;
  if (startFrom !== undefined && startFrom !== 'earliest' && startFrom !== 'latest') {
    failOption('startFrom', `'earliest' or 'latest'`, startFrom);
  }

  const resolved: ResolvedPoolOptions = {
    topic,
    group,
    kind,
    actors: integerInRange('actors', userOptions.actors ?? poolDefaults.actors, 1, maxActors),
    inboxSize: integerInRange('inboxSize', userOptions.inboxSize ?? poolDefaults.inboxSize, 1, 1_000_000),
    handlerTimeoutMs: numberInRange(
      'handlerTimeoutMs',
      userOptions.handlerTimeoutMs ?? poolDefaults.handlerTimeoutMs,
      1,
      MAX_TIMER_MS,
    ),
    maxAttempts: integerInRange('maxAttempts', userOptions.maxAttempts ?? poolDefaults.maxAttempts, 1, 1_000),
    backoff,
    deadLetterPolicy: policy,
    startFrom,
    workingIntervalMs: numberInRange(
      'workingIntervalMs',
      hooks.workingIntervalMs ?? poolDefaults.workingIntervalMs,
      1,
      MAX_TIMER_MS,
    ),
    deadLetter: hooks.deadLetter,
    metrics: hooks.metrics,
    logger: hooks.logger,
  };
  // exactOptionalPropertyTypes: only set the seam when it was given.
  return hooks.sleep === undefined ? resolved : { ...resolved, sleep: hooks.sleep };
}
