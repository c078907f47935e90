/**
 * Bounded count of accepted-but-unacknowledged publishes. `acquire` is
 * synchronous while there is room (the hot path allocates nothing) and only
 * returns a promise when the window is full; `release` wakes waiters FIFO.
 * `whenEmpty` backs flush() and close().
 */
import { BusClosedError } from '../core/errors.ts';

interface Waiter {
  resolve(): void;
  reject(error: unknown): void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

export class PublishWindow {
  readonly #limit: number;
  #pending = 0;
  #waiters: Waiter[] = [];
  #emptyWaiters: Array<() => void> = [];
  #extraBacklog: () => number;
  #closedError: Error | undefined;

  /** `extraBacklog` counts results not yet consumed by result streams (they hold slots too). */
  constructor(limit: number, extraBacklog: () => number = () => 0) {
    this.#limit = limit;
    this.#extraBacklog = extraBacklog;
  }

  get pending(): number {
    return this.#pending;
  }

  #hasRoom(): boolean {
    return this.#pending + this.#extraBacklog() < this.#limit;
  }

  /** Takes a slot: undefined when taken at once, else a promise that resolves when taken. */
  acquire(signal?: AbortSignal): Promise<void> | undefined {
    if (this.#closedError) throw this.#closedError;
    if (this.#waiters.length === 0 && this.#hasRoom()) {
      this.#pending++;
      return undefined;
    }
    signal?.throwIfAborted();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, signal, onAbort: undefined };
      if (signal) {
        waiter.onAbort = () => {
          const i = this.#waiters.indexOf(waiter);
          if (i >= 0) this.#waiters.splice(i, 1);
          reject(signal.reason);
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.#waiters.push(waiter);
    });
  }

  /** Takes a slot even when full (dead letters must not wait behind user publishes). */
  forceAcquire(): void {
    this.#pending++;
  }

  release(): void {
    this.#pending--;
    this.wake();
    if (this.#pending === 0 && this.#emptyWaiters.length > 0) {
      const waiters = this.#emptyWaiters;
      this.#emptyWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Re-checks room (e.g. after a result stream consumed its backlog). */
  wake(): void {
    while (this.#waiters.length > 0 && this.#hasRoom()) {
      const waiter = this.#waiters.shift() as Waiter;
      if (waiter.signal && waiter.onAbort) waiter.signal.removeEventListener('abort', waiter.onAbort);
      this.#pending++;
      waiter.resolve();
    }
  }

  /** Resolves when nothing is pending. */
  whenEmpty(): Promise<void> {
    if (this.#pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.#emptyWaiters.push(resolve));
  }

  /** Rejects current and future waiters (the bus is closing). */
  close(error: Error = new BusClosedError()): void {
    this.#closedError = error;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) {
      if (w.signal && w.onAbort) w.signal.removeEventListener('abort', w.onAbort);
      w.reject(error);
    }
  }
}
