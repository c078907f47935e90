/**
 * Retry delays: exponential, capped, with jitter taken downwards (so the cap
 * is never exceeded and the retries of many callers spread out). One
 * implementation for handler retries (src/dispatch), outbox publish retries
 * and claim retries (src/outbox) and reconnect loops in the transports.
 */

import { failOption, MAX_TIMER_MS, numberInRange } from './option-checks.ts';
import { optionKeys, rejectUnknownKeys } from './option-keys.ts';
import type { BackoffOptions } from './types.ts';

export interface ResolvedBackoff {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly multiplier: number;
  /** The fraction of each delay that is randomised downwards, 0..1. */
  readonly jitter: number;
}

const backoffOptionKeys = optionKeys<BackoffOptions>({
  initialMs: true,
  maxMs: true,
  multiplier: true,
  jitter: true,
});

/**
 * Validates a user's `BackoffOptions` (at option path `name`) and fills the
 * gaps from `defaults`: unknown keys, non-numbers, negative or timer-overflowing
 * delays, a multiplier below 1, jitter outside 0..1 and maxMs < initialMs are
 * rejected with InvalidArgumentError.
 */
export function resolveBackoff(name: string, input: unknown, defaults: ResolvedBackoff): ResolvedBackoff {
  if (input === undefined) return defaults;
  if (typeof input !== 'object' || input === null) failOption(name, 'an object', input);
  rejectUnknownKeys(name, input, backoffOptionKeys);
  const given = input as BackoffOptions;
  const backoff: ResolvedBackoff = {
    initialMs: numberInRange(`${name}.initialMs`, given.initialMs ?? defaults.initialMs, 0, MAX_TIMER_MS),
    maxMs: numberInRange(`${name}.maxMs`, given.maxMs ?? defaults.maxMs, 0, MAX_TIMER_MS),
    multiplier: numberInRange(`${name}.multiplier`, given.multiplier ?? defaults.multiplier, 1, 1_000),
    jitter: numberInRange(`${name}.jitter`, given.jitter ?? defaults.jitter, 0, 1),
  };
  if (backoff.maxMs < backoff.initialMs) {
    failOption(`${name}.maxMs`, `at least \`${name}.initialMs\` (${backoff.initialMs})`, backoff.maxMs);
  }
  return backoff;
}

/**
 * Delay before attempt `failedAttempts + 1`: initialMs × multiplier^(failedAttempts-1),
 * capped at maxMs, of which the `jitter` fraction is randomised downwards.
 */
export function backoffDelay(
  failedAttempts: number,
  backoff: ResolvedBackoff,
  random: () => number = Math.random,
): number {
  const exponent = Math.max(0, failedAttempts - 1);
  const base = Math.min(backoff.maxMs, backoff.initialMs * backoff.multiplier ** exponent);
  return Math.max(0, Math.round(base - base * backoff.jitter * random()));
}

/**
 * A retry loop's delays: `next()` returns the next delay (growing per
 * backoffDelay), `reset()` starts over after a success.
 */
export class Backoff {
  readonly #settings: ResolvedBackoff;
  readonly #random: () => number;
  #failures = 0;

  constructor(settings: ResolvedBackoff, random: () => number = Math.random) {
    this.#settings = settings;
    this.#random = random;
  }

  /** Failures since the last reset. */
  get failures(): number {
    return this.#failures;
  }

  next(): number {
    this.#failures++;
    return backoffDelay(this.#failures, this.#settings, this.#random);
  }

  reset(): void {
    this.#failures = 0;
  }
}
