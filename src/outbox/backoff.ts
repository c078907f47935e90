/** Retry delays for failed outbox publishes: exponential, capped, with jitter. */
import type { BackoffOptions } from '../core/types.ts';

export interface ResolvedBackoff {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly multiplier: number;
  readonly jitter: number;
}

export const outboxBackoffDefaults: ResolvedBackoff = {
  initialMs: 500,
  maxMs: 60_000,
  multiplier: 2,
  jitter: 0.2,
};

export function resolveBackoff(options: BackoffOptions | undefined): ResolvedBackoff {
  return {
    initialMs: options?.initialMs ?? outboxBackoffDefaults.initialMs,
    maxMs: options?.maxMs ?? outboxBackoffDefaults.maxMs,
    multiplier: options?.multiplier ?? outboxBackoffDefaults.multiplier,
    jitter: options?.jitter ?? outboxBackoffDefaults.jitter,
  };
}

/** Delay before attempt number `attempt + 1`, given `attempt` failed attempts (≥ 1). */
export function backoffDelayMs(
  attempt: number,
  b: ResolvedBackoff,
  random: () => number = Math.random,
): number {
  const exponent = Math.max(0, attempt - 1);
  const raw = Math.min(b.maxMs, b.initialMs * b.multiplier ** exponent);
  const jittered = raw * (1 - b.jitter * random());
  return Math.max(0, Math.round(jittered));
}
