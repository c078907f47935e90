/**
 * One interval timer per pool instead of one timer per message: handler
 * timeouts and working() signals are found by scanning the actors every
 * `periodMs`. The timer runs only while the pool holds work: `ensureRunning`
 * starts it, and it stops itself on the first tick that finds nothing to do
 * (so going idle and busy per message never creates a timer per message).
 */
export class Sweep {
  readonly #periodMs: number;
  /** Returns false when there is nothing left to watch. */
  readonly #tick: () => boolean;
  #timer: NodeJS.Timeout | undefined;

  constructor(periodMs: number, tick: () => boolean) {
    this.#periodMs = periodMs;
    this.#tick = tick;
  }

  get running(): boolean {
    return this.#timer !== undefined;
  }

  ensureRunning(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(this.#onTick, this.#periodMs);
    // The sweep watches work that something else (a connection, a handler's
    // I/O) keeps alive; it must never be what keeps the process running.
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  readonly #onTick = (): void => {
    if (!this.#tick()) this.stop();
  };
}

/**
 * Sweep period: a tenth of the shorter deadline it enforces (so a timeout
 * fires at most 10% late), between 1 ms and 1 s.
 */
export function sweepPeriodMs(handlerTimeoutMs: number, workingIntervalMs: number): number {
  return Math.min(1_000, Math.max(1, Math.floor(Math.min(handlerTimeoutMs, workingIntervalMs) / 10)));
}
