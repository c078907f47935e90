/**
 * One deadline for a close: `close({ signal, timeoutMs })` ends at whichever
 * comes first. The bus makes it once and passes the same signal down to its
 * subscriptions and its transport, so no later stage gets time of its own.
 */
import { InvalidArgumentError } from './errors.ts';
import type { CloseOptions } from './types.ts';
import { raceSignal } from './waiting.ts';

export function closeDeadline(options: CloseOptions | undefined, defaultTimeoutMs: number): AbortSignal {
  const timeoutMs = options?.timeoutMs ?? defaultTimeoutMs;
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs < 0) {
    throw new InvalidArgumentError(
      `Expected close option \`timeoutMs\` to be a non-negative number, got ${String(timeoutMs)}`,
    );
  }
  const signal = options?.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new InvalidArgumentError('Expected close option `signal` to be an AbortSignal');
  }
  const timeout = AbortSignal.timeout(timeoutMs);
  return signal === undefined ? timeout : AbortSignal.any([timeout, signal]);
}

/** Resolves when `promise` settles or `deadline` aborts, whichever is first; never rejects. */
export function settledOrAborted(promise: Promise<unknown>, deadline: AbortSignal): Promise<void> {
  return raceSignal(promise, deadline).then(
    () => {},
    () => {},
  );
}
