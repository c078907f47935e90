/**
 * One error model for the whole library: every error we throw or report is an
 * {@link EventBusError} with a stable string `code`, a `retryable` flag and an
 * optional `cause`. Subclasses exist per failure kind so callers can branch on
 * `code` (stable across duplicate installs) or `instanceof`.
 */

export type ErrorCode =
  | 'EVENTBUS_INVALID_ARGUMENT'
  | 'EVENTBUS_VALIDATION'
  | 'EVENTBUS_PAYLOAD_TOO_LARGE'
  | 'EVENTBUS_CLOSED'
  | 'EVENTBUS_TIMEOUT'
  | 'EVENTBUS_DECODE'
  | 'EVENTBUS_HANDLER'
  | 'EVENTBUS_HANDLER_TIMEOUT'
  | 'EVENTBUS_TRANSPORT'
  | 'EVENTBUS_PUBLISH_REJECTED'
  | 'EVENTBUS_PUBLISH_HELD'
  | 'EVENTBUS_DEAD_LETTER';

const brand = Symbol.for('jxt-eventbus.error');

export interface EventBusErrorOptions {
  readonly cause?: unknown;
  readonly retryable?: boolean;
}

export class EventBusError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly [brand] = true;

  constructor(code: ErrorCode, message: string, options: EventBusErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'EventBusError';
    this.code = code;
    this.retryable = options.retryable ?? false;
  }
}

/** True for any error of this library, also across duplicate installs. */
export function isEventBusError(error: unknown): error is EventBusError {
  return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[brand] === true;
}

/** Walks `cause` chains (and AggregateError members) for an error with `code`. */
export function findErrorByCode(error: unknown, code: ErrorCode): EventBusError | undefined {
  const seen = new Set<unknown>();
  const stack: unknown[] = [error];
  while (stack.length > 0) {
    const current = stack.pop();
    if (current === undefined || current === null || seen.has(current)) continue;
    seen.add(current);
    if (isEventBusError(current) && current.code === code) return current;
    if (current instanceof AggregateError) stack.push(...current.errors);
    if (current instanceof Error) stack.push(current.cause);
  }
  return undefined;
}

/** Bad options or arguments: a programming error, never retryable. */
export class InvalidArgumentError extends EventBusError {
  constructor(message: string, options: EventBusErrorOptions = {}) {
    super('EVENTBUS_INVALID_ARGUMENT', message, { ...options, retryable: false });
    this.name = 'InvalidArgumentError';
  }
}

/** An envelope failed validation; `field` names the offending field. */
export class ValidationError extends EventBusError {
  readonly field: string;
  constructor(field: string, message: string, options: EventBusErrorOptions = {}) {
    super('EVENTBUS_VALIDATION', message, { ...options, retryable: false });
    this.name = 'ValidationError';
    this.field = field;
  }
}

export class PayloadTooLargeError extends EventBusError {
  readonly size: number;
  readonly limit: number;
  constructor(size: number, limit: number, what = 'message') {
    super('EVENTBUS_PAYLOAD_TOO_LARGE', `Expected ${what} of at most ${limit} bytes, got ${size} bytes`, {
      retryable: false,
    });
    this.name = 'PayloadTooLargeError';
    this.size = size;
    this.limit = limit;
  }
}

export class BusClosedError extends EventBusError {
  constructor(message = 'The event bus is closed or closing', options: EventBusErrorOptions = {}) {
    super('EVENTBUS_CLOSED', message, { ...options, retryable: false });
    this.name = 'BusClosedError';
  }
}

/**
 * A timeout: the outcome is *unknown* (the broker may or may not have stored
 * the message). Retry with the same eventId; broker de-duplication makes that safe.
 */
export class TimeoutError extends EventBusError {
  constructor(message: string, options: EventBusErrorOptions = {}) {
    super('EVENTBUS_TIMEOUT', message, { retryable: true, ...options });
    this.name = 'TimeoutError';
  }
}

/** Bytes on the wire that are not a valid envelope. */
export class DecodeError extends EventBusError {
  constructor(message: string, options: EventBusErrorOptions = {}) {
    super('EVENTBUS_DECODE', message, { ...options, retryable: false });
    this.name = 'DecodeError';
  }
}

export class HandlerTimeoutError extends EventBusError {
  constructor(timeoutMs: number) {
    super('EVENTBUS_HANDLER_TIMEOUT', `Expected the handler to finish within ${timeoutMs} ms, it did not`, {
      retryable: true,
    });
    this.name = 'HandlerTimeoutError';
  }
}

/** Connection, broker or protocol failure. */
export class TransportError extends EventBusError {
  constructor(message: string, options: EventBusErrorOptions = {}) {
    super('EVENTBUS_TRANSPORT', message, { retryable: true, ...options });
    this.name = 'TransportError';
  }
}

/** The broker refused a publish (e.g. stream limits); retrying will not help by itself. */
export class PublishRejectedError extends EventBusError {
  constructor(message: string, options: EventBusErrorOptions = {}) {
    super('EVENTBUS_PUBLISH_REJECTED', message, { retryable: false, ...options });
    this.name = 'PublishRejectedError';
  }
}

/**
 * A publish not sent because an event of the same aggregate queued ahead of it
 * failed for good (rejected by the broker, or not acknowledged within the
 * publish deadline): sending it alone would leave a gap in the aggregate's
 * history. `heldBy` is the failed event's eventId, `cause` its error. Retryable:
 * republish the failed event and then this one (same eventIds) once the cause
 * is fixed. Only with `publishFailureScope: 'aggregate'` (the default).
 */
export class PublishHeldError extends EventBusError {
  readonly aggregateId: string;
  /** eventId of the failed event that holds the aggregate. */
  readonly heldBy: string;

  constructor(aggregateId: string, heldBy: string, message: string, options: EventBusErrorOptions = {}) {
    super('EVENTBUS_PUBLISH_HELD', message, { retryable: true, ...options });
    this.name = 'PublishHeldError';
    this.aggregateId = aggregateId;
    this.heldBy = heldBy;
  }
}

/** Normalises anything thrown into an Error for logs and results. */
export function toError(value: unknown): Error {
  if (value instanceof Error) return value;
  return new Error(typeof value === 'string' ? value : `Non-error thrown: ${String(value)}`);
}
