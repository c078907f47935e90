/**
 * Per-aggregate publish ordering. A broker connection that dies loses a
 * suffix of what was written to it, while later messages (buffered by the
 * client during the reconnect) are stored first; resending the lost ones
 * afterwards would store an aggregate's events out of order (measured: 2,354
 * of 20,000 pipelined events over 20 aggregates after one kill -9). So at most
 * one publish per aggregate is on the wire; the aggregate's next one follows
 * its ack. If one fails for good, the ones queued behind it fail too (nothing
 * of that aggregate overtakes it) and the caller retries them in order.
 * Different aggregates stay fully pipelined.
 */
import { EventBusError, PublishRejectedError } from '../core/errors.ts';
import type { OutboundMessage, PublishCallback, PublishOutcome } from '../core/transport.ts';

interface Waiting {
  readonly message: OutboundMessage;
  readonly done: PublishCallback;
}

export class KeySequencer {
  /** key → publishes waiting behind the one in flight (an empty array: one in flight, none waiting). */
  readonly #lanes = new Map<string, Waiting[]>();
  readonly #send: (message: OutboundMessage, done: PublishCallback) => void;

  constructor(send: (message: OutboundMessage, done: PublishCallback) => void) {
    this.#send = send;
  }

  /** Aggregates with a publish in flight. */
  get activeKeys(): number {
    return this.#lanes.size;
  }

  send(message: OutboundMessage, done: PublishCallback): void {
    const key = message.key;
    if (key === undefined) {
      this.#send(message, done);
      return;
    }
    const lane = this.#lanes.get(key);
    if (lane) {
      lane.push({ message, done });
      return;
    }
    this.#lanes.set(key, []);
    this.#dispatch(key, message, done);
  }

  #dispatch(key: string, message: OutboundMessage, done: PublishCallback): void {
    this.#send(message, (outcome) => {
      done(outcome);
      this.#next(key, outcome);
    });
  }

  #next(key: string, outcome: PublishOutcome): void {
    const lane = this.#lanes.get(key);
    if (!lane) return;
    if (outcome.ok) {
      const next = lane.shift();
      if (next) this.#dispatch(key, next.message, next.done);
      else this.#lanes.delete(key);
      return;
    }
    this.#lanes.delete(key);
    const cause = outcome.error;
    for (const waiting of lane) {
      waiting.done({
        ok: false,
        error: new PublishRejectedError(
          `Not sent: an earlier event of aggregate "${key}" on ${waiting.message.topic} failed (${cause.code}); retry them in order`,
          { cause, retryable: cause instanceof EventBusError ? cause.retryable : true },
        ),
      });
    }
  }
}
