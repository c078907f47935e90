/** Retry delays for failed outbox publishes: the shared backoff kit (src/core/backoff.ts) with the outbox's defaults. */
import { backoffDelay, type ResolvedBackoff } from '../core/backoff.ts';

export type { ResolvedBackoff } from '../core/backoff.ts';

export const outboxBackoffDefaults: ResolvedBackoff = {
  initialMs: 500,
  maxMs: 60_000,
  multiplier: 2,
  jitter: 0.2,
};

/** Delay before attempt number `attempt + 1`, given `attempt` failed attempts (≥ 1). */
export const backoffDelayMs: (attempt: number, backoff: ResolvedBackoff, random?: () => number) => number =
  backoffDelay;
