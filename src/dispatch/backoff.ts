/** Delays between in-place retries of a failed envelope handler. */
import type { ResolvedPoolOptions } from './types.ts';

/**
 * Delay before attempt `failedAttempts + 1`: initialMs × multiplier^(failedAttempts-1),
 * capped at maxMs, of which the `jitter` fraction is randomised downwards
 * (so the cap is never exceeded and retries of many aggregates spread out).
 */
export function backoffDelay(
  failedAttempts: number,
  backoff: ResolvedPoolOptions['backoff'],
  random: () => number = Math.random,
): number {
  const exponent = Math.max(0, failedAttempts - 1);
  const base = Math.min(backoff.maxMs, backoff.initialMs * backoff.multiplier ** exponent);
  return Math.round(base - base * backoff.jitter * random());
}

/**
 * setTimeout as a promise that rejects with the signal's reason when the
 * signal aborts (drain deadline), so a backoff never outlives its pool.
 */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
