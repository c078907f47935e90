/** Event-driven waiting for tests: resolve when a condition becomes true, with a deadline. */

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
