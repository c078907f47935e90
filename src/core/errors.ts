/**
 * One error model for the whole library: every error we throw or report is an
 * {@link EventBusError} with a stable string `code`, a `retryable` flag and an
 * optional `cause`. Subclasses exist per failure kind so callers can branch on
 * `code` (stable across duplicate installs) or `instanceof`.
 */

export type ErrorCode =
  | 'EVENTBUS_INVALID_ARGUMENT'
  | 'EVENTBUS_VALIDATION'
  | 'EVENTBUS_SCHEMA_VALIDATION'
  | 'EVENTBUS_PAYLOAD_TOO_LARGE'
  | 'EVENTBUS_CLOSED'
  | 'EVENTBUS_TIMEOUT'
  | 'EVENTBUS_DECODE'
  | 'EVENTBUS_HANDLER'
  | 'EVENTBUS_HANDLER_TIMEOUT'
  | 'EVENTBUS_TRANSPORT'
  | 'EVENTBUS_PUBLISH_REJECTED'
  | 'EVENTBUS_PUBLISH_HELD'
  | 'EVENTBUS_DEAD_LETTER'
  | 'EVENTBUS_MISSING_DEPENDENCY'
  | 'EVENTBUS_UNSUPPORTED_RUNTIME';

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

/** One problem a schema found, as Standard Schema reports it (see standard-schema.ts). */
export interface SchemaIssue {
  readonly message: string;
  readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined;
}

/**
 * An event's payload does not match the schema registered for its topic and
 * event type (bus option `topics`). At publish nothing is sent; at consume the
 * event is dead-lettered with this message as its reason. Never retryable: the
 * same bytes fail the same schema again.
 */
export class SchemaValidationError extends EventBusError {
  readonly topic: string;
  readonly eventType: string;
  /** The schema's issues, as it reported them. */
  readonly issues: readonly SchemaIssue[];
  constructor(
    topic: string,
    eventType: string,
    message: string,
    issues: readonly SchemaIssue[],
    options: EventBusErrorOptions = {},
  ) {
    super('EVENTBUS_SCHEMA_VALIDATION', message, { ...options, retryable: false });
    this.name = 'SchemaValidationError';
    this.topic = topic;
    this.eventType = eventType;
    this.issues = issues;
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

/**
 * Normalises anything thrown into an Error for logs, results and retry
 * decisions. Never throws: a handler may throw or reject with anything (an
 * object without a prototype, a Proxy, an Error whose `message` getter throws),
 * and this runs on the failure path, where a second throw would crash the actor.
 * An Error is returned as it is only when its name and message can be read as
 * strings; anything else is wrapped, with the original kept as `cause`.
 */
export function toError(value: unknown): Error {
  try {
    if (value instanceof Error && typeof value.message === 'string' && typeof value.name === 'string') {
      return value;
    }
  } catch {
    // instanceof or a getter threw (a Proxy, a hostile getter): wrapped below.
  }
  if (typeof value === 'string') return new Error(value);
  return new Error(`Non-error thrown: ${describeThrown(value)}`, { cause: value });
}

/** A short description of any value that never throws (String(), then the tag, then the type). */
export function describeThrown(value: unknown): string {
  try {
    const text = String(value);
    return text.length > 200 ? `${text.slice(0, 199)}…` : text;
  } catch {
    // No usable toString (Object.create(null), a throwing Symbol.toPrimitive).
  }
  try {
    return Object.prototype.toString.call(value);
  } catch {
    return `a value of type ${typeof value} that cannot be printed`;
  }
}

/**
 * An optional peer dependency (a broker client or database driver not every
 * user needs) is not installed; the message names the package to install.
 */
export class MissingDependencyError extends EventBusError {
  readonly packageName: string;
  constructor(packageName: string, feature: string, options: EventBusErrorOptions = {}) {
    super(
      'EVENTBUS_MISSING_DEPENDENCY',
      `Expected the package \`${packageName}\` to be installed for ${feature}, it is not: npm install ${packageName}`,
      { ...options, retryable: false },
    );
    this.name = 'MissingDependencyError';
    this.packageName = packageName;
  }
}

/** The Node.js version is older than the one this library needs (see `engines`). */
export class UnsupportedRuntimeError extends EventBusError {
  constructor(message: string, options: EventBusErrorOptions = {}) {
    super('EVENTBUS_UNSUPPORTED_RUNTIME', message, { ...options, retryable: false });
    this.name = 'UnsupportedRuntimeError';
  }
}
