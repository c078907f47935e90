/**
 * Turns delivered messages into actor-pool tasks. Envelopes are decoded at
 * intake (in stream order, on the single intake path) so the routing key is
 * the envelope's aggregateId; a body that does not decode still becomes a
 * task, one whose run fails with a non-retryable DecodeError, so it is
 * dead-lettered with its reason and the stream keeps flowing.
 */
import { decodeEnvelope, type Envelope, extractAggregateId } from '../core/envelope.ts';
import { DecodeError, type EventBusError, toError } from '../core/errors.ts';
import type { InboundMessage } from '../core/transport.ts';
import type { EnvelopeHandler, MessageContext, RawHandler } from '../core/types.ts';
import type { PoolTask } from '../dispatch/types.ts';

const resolved = Promise.resolve();

/**
 * Runs a user handler: a synchronous throw from a plain (non-async) handler is
 * an ordinary handler failure, like a rejection. The pool's supervisor is for
 * crashes of the actor machinery itself, not for user errors.
 *
 * Any thenable is awaited, not only a native Promise: a handler returning
 * another library's promise (or a hand-written `{ then }`) is done when that
 * settles, and its rejection is a failure like any other. Promise.resolve
 * adopts it safely: a `then` getter or call that throws becomes a rejection.
 */
export function settle(call: () => unknown): Promise<void> {
  try {
    const result = call();
    if (result === undefined || result === null) return resolved;
    if (result instanceof Promise) return result as Promise<void>;
    if (typeof result !== 'object' && typeof result !== 'function') return resolved;
    return Promise.resolve(result as PromiseLike<void>).then(ignoreValue);
  } catch (error) {
    return Promise.reject(error);
  }
}

function ignoreValue(): void {}

/**
 * A message's headers, or the DecodeError saying why they cannot be read (a
 * header another client wrote that this client cannot parse, e.g. a space in
 * its name). Headers are decoded lazily by the transport, so this is where
 * such a message is first noticed.
 */
export function readHeaders(message: InboundMessage): Readonly<Record<string, string>> | DecodeError {
  try {
    return message.headers;
  } catch (cause) {
    return new DecodeError(`Expected message headers this client can parse, got: ${toError(cause).message}`, {
      cause,
    });
  }
}

/** Routing key from headers that may not parse: such a message gets no key (round robin). */
function keyFrom(
  envelope: Envelope | undefined,
  message: InboundMessage,
): { key: string | undefined; error: DecodeError | undefined } {
  if (envelope?.aggregateId) return { key: envelope.aggregateId, error: undefined };
  const headers = readHeaders(message);
  if (headers instanceof DecodeError) return { key: message.key, error: headers };
  return { key: extractAggregateId(undefined, headers, message.key), error: undefined };
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
    const headers = readHeaders(this.#message);
    // Thrown to the handler, which fails non-retryably: dead-lettered with this reason.
    if (headers instanceof DecodeError) throw headers;
    return headers;
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
    const { key, error } = keyFrom(envelope, message);
    this.key = key;
    // Headers that cannot be parsed are the first thing wrong (and why nothing else could be read).
    if (error !== undefined) this.#decodeError = error;
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
  readonly #headerError: DecodeError | undefined;

  constructor(topic: string, group: string, message: InboundMessage, handler: RawHandler) {
    this.message = message;
    this.#handler = handler;
    this.#topic = topic;
    this.#group = group;
    const { key, error } = keyFrom(undefined, message);
    this.key = key;
    this.#headerError = error;
  }

  run(attempt: number, key: string, signal: AbortSignal): Promise<void> {
    if (this.#headerError) return Promise.reject(this.#headerError);
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
