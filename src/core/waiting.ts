/**
 * Abort-aware waiting. Every wait in the library ends when its signal aborts
 * (a close deadline, a stop) and cleans up its listener and timer either way,
 * so no wait outlives what it waits for and no listener piles up on a
 * long-lived signal.
 */

/** setTimeout as a promise; rejects with the signal's reason when `signal` aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Like sleep, but resolves (instead of rejecting) when `signal` aborts: for loops that re-check their state. */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return sleep(ms, signal).catch(() => {});
}

/**
 * The promise's value, or undefined as soon as `signal` aborts (the promise
 * runs on; its later rejection is not reported). A rejection before the
 * abort is passed on.
 */
export function raceSignal<T>(promise: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.resolve(undefined);
  }
  return new Promise<T | undefined>((resolve, reject) => {
    const onAbort = (): void => resolve(undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/** The promise's outcome, or a rejection with `onTimeout()` after `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Waits for a wake-up: `register` hands `wake` to whoever signals the event
 * (a waiter list, a set) and may return a function that takes it back. Ends
 * when `wake` is called, when `signal` aborts, or after `timeoutMs` when
 * given, whichever comes first; `register`'s undo runs in every case.
 */
export function wakeOrAbort(
  signal: AbortSignal | undefined,
  register: (wake: () => void) => (() => void) | undefined,
  timeoutMs?: number,
): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    let undo: (() => void) | undefined;
    let done = false;
    const wake = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', wake);
      undo?.();
      resolve();
    };
    if (timeoutMs !== undefined) timer = setTimeout(wake, timeoutMs);
    signal?.addEventListener('abort', wake, { once: true });
    undo = register(wake) ?? undefined;
    if (done) undo?.(); // woken synchronously inside register
  });
}
