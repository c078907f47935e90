/**
 * A timed-out handler is aborted, but nothing forces it to stop: its actor
 * starts the next execution only once the old one has settled, so one
 * aggregate never has two executions at once. This watch keeps the execution
 * the actor waits for; one that has not settled a further handler timeout
 * later is reported as stuck (metric, log, health) while its actor waits.
 */
import type { ActorHost } from './actor.ts';

export class StuckWatch {
  readonly #host: Pick<ActorHost, 'options' | 'stuckChanged'>;
  readonly #logFields: () => Record<string, unknown>;
  /** The timed-out execution the actor waits for, and since when (performance.now()). */
  #waitingFor: Promise<void> | undefined;
  #since = 0;
  #reported = false;

  constructor(host: Pick<ActorHost, 'options' | 'stuckChanged'>, logFields: () => Record<string, unknown>) {
    this.#host = host;
    this.#logFields = logFields;
  }

  /** The actor waits for `pending` (timed out at `now`) before anything else of its aggregate runs. */
  wait(pending: Promise<void>, now: number): void {
    this.#waitingFor = pending;
    this.#since = now;
  }

  /** From the sweep: reports the awaited execution stuck once it is a handler timeout overdue. */
  check(now: number): void {
    const timeoutMs = this.#host.options.handlerTimeoutMs;
    if (this.#since > 0 && !this.#reported && now - this.#since >= timeoutMs) {
      this.#reported = true;
      this.#host.stuckChanged(1);
      this.#host.options.logger.error(
        { ...this.#logFields(), handlerTimeoutMs: timeoutMs },
        'A handler timed out, ignores its abort signal and has not settled: its actor (and the aggregate) waits for it',
      );
    }
  }

  /**
   * `pending` settled: true (and the wait ends) when it is still the
   * execution awaited, false when the actor let go of it meanwhile (drain deadline).
   */
  settled(pending: Promise<void>): boolean {
    if (this.#waitingFor !== pending) return false;
    if (this.#reported) {
      this.#host.options.logger.warn(this.#logFields(), 'A stuck handler settled at last; its actor resumes');
    }
    this.stop();
    return true;
  }

  /** Stops waiting (settled, or the task let go); a stuck report is taken back. */
  stop(): void {
    if (this.#reported) this.#host.stuckChanged(-1);
    this.#waitingFor = undefined;
    this.#since = 0;
    this.#reported = false;
  }
}
