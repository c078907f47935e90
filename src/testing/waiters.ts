/**
 * Waiting for tests: resolve when a condition becomes true, with a deadline.
 * `until` is event-driven (the test calls `check()` when the state changes);
 * `pollUntil` is for state that raises no event (a database row, a broker's
 * stream, another process) and re-reads it on an interval. Neither is a
 * sleep standing in for synchronisation: both wait for an observable state.
 */

export interface Signal {
  /** Re-checks the condition; call it whenever the observed state changes. */
  check(): void;
  /** Resolves once the condition holds; rejects with `describe()` after the deadline. */
  wait(timeoutMs: number): Promise<void>;
}

export function until(condition: () => boolean, describe: () => string): Signal {
  let resolve: (() => void) | undefined;
  return {
    check() {
      if (resolve && condition()) {
        const r = resolve;
        resolve = undefined;
        r();
      }
    },
    wait(timeoutMs) {
      if (condition()) return Promise.resolve();
      return new Promise<void>((res, rej) => {
        const timer = setTimeout(() => {
          resolve = undefined;
          rej(new Error(`Timed out after ${timeoutMs} ms waiting: ${describe()}`));
        }, timeoutMs);
        resolve = () => {
          clearTimeout(timer);
          res();
        };
      });
    },
  };
}

/** A promise with its resolve function, for gating handlers. */
export function deferred<T = void>(): {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(e: unknown): void;
} {
  let resolve!: (value: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export interface PollOptions {
  /** What is awaited, for the timeout error. */
  readonly what: string;
  /** Deadline. Default 30 s. */
  readonly timeoutMs?: number;
  /** Re-read the state this often. Default 20 ms. */
  readonly intervalMs?: number;
  /** Extra detail for the timeout error, read when it is thrown. */
  readonly describe?: () => string;
}

/** Re-checks `condition` every `intervalMs` until it holds; rejects after `timeoutMs`. */
export async function pollUntil(
  condition: () => boolean | Promise<boolean>,
  { what, timeoutMs = 30_000, intervalMs = 20, describe }: PollOptions,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) {
      const detail = describe === undefined ? '' : `: ${describe()}`;
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
