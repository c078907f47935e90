/**
 * Whether the record stream may fetch: paused while any reason holds (the
 * pool has no capacity, a rebalance is under way, the subscription stopped),
 * resumed when the last one clears. One stream pause()/resume() per change.
 */
import type { RecordStream } from './consumer-port.ts';

export type PauseReason = 'capacity' | 'rebalance' | 'stop';

export class IntakeGate {
  readonly #reasons = new Set<PauseReason>();
  readonly #stream: () => RecordStream | undefined;
  #streamPaused = false;

  /** `stream()`: the stream reading now, if any. */
  constructor(stream: () => RecordStream | undefined) {
    this.#stream = stream;
  }

  get reasons(): PauseReason[] {
    return [...this.#reasons];
  }

  pause(reason: PauseReason): void {
    this.#reasons.add(reason);
    this.apply();
  }

  unpause(reason: PauseReason): void {
    this.#reasons.delete(reason);
    this.apply();
  }

  /** A new stream reads unpaused: forget the old stream's state (call apply() once it is wired). */
  newStream(): void {
    this.#streamPaused = false;
  }

  apply(): void {
    const stream = this.#stream();
    if (stream === undefined) return;
    const want = this.#reasons.size > 0;
    if (want && !this.#streamPaused) {
      this.#streamPaused = true;
      stream.pause();
    } else if (!want && this.#streamPaused) {
      this.#streamPaused = false;
      stream.resume();
    }
  }
}
