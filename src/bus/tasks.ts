/**
 * Turns delivered messages into actor-pool tasks. Envelopes are decoded at
 * intake (in stream order, on the single intake path) so the routing key is
 * the envelope's aggregateId; a body that does not decode still becomes a
 * task, one whose run fails with a non-retryable DecodeError, so it is
 * dead-lettered with its reason and the stream keeps flowing.
 */
import { decodeEnvelope, type Envelope, extractAggregateId } from '../core/envelope.ts';
import type { EventBusError } from '../core/errors.ts';
import type { InboundMessage } from '../core/transport.ts';
import type { EnvelopeHandler, MessageContext, RawHandler } from '../core/types.ts';
import type { PoolTask } from '../dispatch/types.ts';

const resolved = Promise.resolve();

/**
 * Runs a user handler: a synchronous throw from a plain (non-async) handler is
 * an ordinary handler failure, like a rejection. The pool's supervisor is for
 * crashes of the actor machinery itself, not for user errors.
 */
function settle(call: () => Promise<void> | void): Promise<void> {
  try {
    const result = call();
    return result instanceof Promise ? result : resolved;
  } catch (error) {
    return Promise.reject(error);
  }
}

class Context implements MessageContext {
  readonly topic: string;
  readonly group: string;
  readonly key: string;
  readonly attempt: number;
  readonly signal: AbortSignal;
  readonly #message: InboundMessage;

  constructor(
    topic: string,
    group: string,
    message: InboundMessage,
    key: string,
    attempt: number,
    signal: AbortSignal,
  ) {
    this.topic = topic;
    this.group = group;
    this.#message = message;
    this.key = key;
    this.attempt = attempt;
    this.signal = signal;
  }
  get headers(): Readonly<Record<string, string>> {
    return this.#message.headers;
  }
  get deliveryCount(): number {
    return this.#message.deliveryCount;
  }
  get sequence(): number | undefined {
    return this.#message.sequence;
  }
  working(): void {
    this.#message.working();
  }
  stillOwner(): boolean {
    const lane = this.#message.lane;
    return lane === undefined || lane.stillOwned();
  }
}

class EnvelopeTask implements PoolTask {
  readonly key: string | undefined;
  readonly message: InboundMessage;
  readonly #envelope: Envelope | undefined;
  readonly #decodeError: EventBusError | undefined;
  readonly #handler: EnvelopeHandler<unknown>;
  readonly #topic: string;
  readonly #group: string;

  constructor(topic: string, group: string, message: InboundMessage, handler: EnvelopeHandler<unknown>) {
    this.message = message;
    this.#handler = handler;
    this.#topic = topic;
    this.#group = group;
    let envelope: Envelope | undefined;
    try {
      envelope = decodeEnvelope(message.data);
    } catch (error) {
      this.#decodeError = error as EventBusError;
    }
    this.#envelope = envelope;
    // The envelope names its aggregate: only fall back to (lazily decoded) headers without one.
    this.key = envelope?.aggregateId || extractAggregateId(envelope, message.headers, message.key);
  }

  run(attempt: number, key: string, signal: AbortSignal): Promise<void> {
    if (this.#decodeError) return Promise.reject(this.#decodeError);
    const ctx = new Context(this.#topic, this.#group, this.message, key, attempt, signal);
    return settle(() => this.#handler(this.#envelope as Envelope, ctx));
  }
}

class RawTask implements PoolTask {
  readonly key: string | undefined;
  readonly message: InboundMessage;
  readonly #handler: RawHandler;
  readonly #topic: string;
  readonly #group: string;

  constructor(topic: string, group: string, message: InboundMessage, handler: RawHandler) {
    this.message = message;
    this.#handler = handler;
    this.#topic = topic;
    this.#group = group;
    this.key = extractAggregateId(undefined, message.headers, message.key);
  }

  run(attempt: number, key: string, signal: AbortSignal): Promise<void> {
    const ctx = new Context(this.#topic, this.#group, this.message, key, attempt, signal);
    return settle(() => this.#handler(this.message.data, ctx));
  }
}

export function envelopeTaskFactory(
  topic: string,
  group: string,
  handler: EnvelopeHandler<unknown>,
): (m: InboundMessage) => PoolTask {
  return (message) => new EnvelopeTask(topic, group, message, handler);
}

export function rawTaskFactory(
  topic: string,
  group: string,
  handler: RawHandler,
): (m: InboundMessage) => PoolTask {
  return (message) => new RawTask(topic, group, message, handler);
}
