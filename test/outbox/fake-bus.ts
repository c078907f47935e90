/**
 * A scripted bus for relay tests: the parts of EventBus the relay uses
 * (publishEnvelope, publishResults), with a broker log that de-duplicates by
 * eventId, per-publish failure injection, acks that can be delayed (so
 * aggregates interleave) or held until the test releases them, and a
 * detector for a second publish of an aggregate while one is unacked.
 */
import { createEnvelope, type Envelope, type EnvelopeInput } from '../../src/core/envelope.ts';
import type { EventBusError } from '../../src/core/errors.ts';
import type { EventBus, PublishAccepted, PublishResult, PublishResultStream } from '../../src/core/types.ts';

class ResultStream implements PublishResultStream {
  readonly #buffer: PublishResult[] = [];
  #waiting: ((r: IteratorResult<PublishResult>) => void) | undefined;
  #done = false;
  readonly #onClose: () => void;

  constructor(onClose: () => void) {
    this.#onClose = onClose;
  }

  push(r: PublishResult): void {
    if (this.#done) return;
    const w = this.#waiting;
    this.#waiting = undefined;
    if (w) w({ value: r, done: false });
    else this.#buffer.push(r);
  }

  close(): void {
    this.#done = true;
    this.#buffer.length = 0;
    const w = this.#waiting;
    this.#waiting = undefined;
    w?.({ value: undefined, done: true });
    this.#onClose();
  }

  [Symbol.asyncIterator](): AsyncIterator<PublishResult> {
    return {
      next: () => {
        const r = this.#buffer.shift();
        if (r) return Promise.resolve({ value: r, done: false });
        if (this.#done) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => {
          this.#waiting = resolve;
        });
      },
      return: () => {
        this.close();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

export interface StoredEvent {
  readonly topic: string;
  readonly envelope: Envelope;
}

export class FakeBus implements Pick<EventBus, 'publishEnvelope' | 'publishResults'> {
  /** What the broker stored, in order (one entry per eventId). */
  readonly log: StoredEvent[] = [];
  readonly results: PublishResult[] = [];
  /** Publish calls per eventId. */
  readonly calls = new Map<string, number>();
  /** Publishes of an aggregate made while an earlier one of it was unacked. */
  readonly concurrentPerAggregate: string[] = [];
  /** Return an error to fail this attempt (1-based) of this event. */
  failWith: (envelope: Envelope, attempt: number) => EventBusError | undefined = () => undefined;
  /** Throw from publishEnvelope (not accepted, so no result). */
  rejectWith: (envelope: Envelope, attempt: number) => Error | undefined = () => undefined;
  /** Ack delay in ms (0 = next macrotask). */
  ackDelayMs: () => number = () => 0;
  /** When true, results wait in `held` until `releaseHeld()`. */
  hold = false;
  readonly #held: (() => void)[] = [];
  readonly #streams = new Set<ResultStream>();
  readonly #stored = new Set<string>();
  readonly #unacked = new Map<string, string>();

  publishResults(): PublishResultStream {
    const s: ResultStream = new ResultStream(() => this.#streams.delete(s));
    this.#streams.add(s);
    return s;
  }

  get heldCount(): number {
    return this.#held.length;
  }

  releaseHeld(): void {
    for (const f of this.#held.splice(0)) f();
  }

  async publishEnvelope<P>(topic: string, input: EnvelopeInput<P>): Promise<PublishAccepted> {
    const envelope = createEnvelope(input) as Envelope;
    const attempt = (this.calls.get(envelope.eventId) ?? 0) + 1;
    this.calls.set(envelope.eventId, attempt);
    const rejection = this.rejectWith(envelope, attempt);
    if (rejection) throw rejection;
    const inFlight = this.#unacked.get(envelope.aggregateId);
    if (inFlight !== undefined)
      this.concurrentPerAggregate.push(`${envelope.aggregateId}: ${envelope.eventId} while ${inFlight}`);
    this.#unacked.set(envelope.aggregateId, envelope.eventId);
    const settle = () => {
      if (this.#unacked.get(envelope.aggregateId) === envelope.eventId)
        this.#unacked.delete(envelope.aggregateId);
      const error = this.failWith(envelope, attempt);
      let result: PublishResult;
      if (error) {
        result = {
          eventId: envelope.eventId,
          topic,
          success: false,
          error,
          timestamp: Date.now(),
          attempts: 1,
        };
      } else {
        const duplicate = this.#stored.has(envelope.eventId);
        if (!duplicate) {
          this.#stored.add(envelope.eventId);
          this.log.push({ topic, envelope });
        }
        result = {
          eventId: envelope.eventId,
          topic,
          success: true,
          timestamp: Date.now(),
          attempts: 1,
          aggregateId: envelope.aggregateId,
          ...(duplicate ? { duplicate: true } : {}),
        };
      }
      this.results.push(result);
      for (const s of this.#streams) s.push(result);
    };
    setTimeout(() => {
      if (this.hold) this.#held.push(settle);
      else settle();
    }, this.ackDelayMs());
    return { eventId: envelope.eventId, topic };
  }
}
