/**
 * Delays between in-place retries of a failed envelope handler: the shared
 * kit (src/core/backoff.ts, src/core/waiting.ts) under the names the pool uses.
 * `abortableSleep` rejects with the signal's reason when the signal aborts
 * (drain deadline), so a backoff never outlives its pool.
 */
export { backoffDelay } from '../core/backoff.ts';
export { sleep as abortableSleep } from '../core/waiting.ts';
