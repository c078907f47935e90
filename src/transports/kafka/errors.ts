/**
 * Client errors → the library's typed errors. The client reports broker error
 * codes as `apiId` (e.g. 'MESSAGE_TOO_LARGE') on errors nested in
 * AggregateErrors and `cause` chains; we walk them without relying on the
 * client's classes.
 */
import {
  type EventBusError,
  isEventBusError,
  PublishRejectedError,
  TimeoutError,
  TransportError,
} from '../../core/errors.ts';

interface ErrorFields {
  readonly apiId?: unknown;
  readonly code?: unknown;
  readonly message?: unknown;
  readonly serverErrorMessage?: unknown;
  readonly errors?: unknown;
  readonly cause?: unknown;
}

/** Every error in the tree (AggregateError members and causes), depth first, each once. */
export function* walkErrors(error: unknown): Generator<ErrorFields> {
  const seen = new Set<unknown>();
  const stack: unknown[] = [error];
  while (stack.length > 0) {
    const current = stack.pop();
    if (typeof current !== 'object' || current === null || seen.has(current)) continue;
    seen.add(current);
    const fields = current as ErrorFields;
    yield fields;
    if (Array.isArray(fields.errors)) stack.push(...fields.errors);
    if (fields.cause !== undefined) stack.push(fields.cause);
  }
}

/** Broker error ids (apiId) anywhere in the error tree. */
export function brokerErrorIds(error: unknown): string[] {
  const ids: string[] = [];
  for (const e of walkErrors(error))
    if (typeof e.apiId === 'string' && !ids.includes(e.apiId)) ids.push(e.apiId);
  return ids;
}

function hasCode(error: unknown, code: string): boolean {
  for (const e of walkErrors(error)) if (e.code === code) return true;
  return false;
}

/** A short description for messages: broker ids, or the client's message. */
export function describeKafkaError(error: unknown): string {
  const ids = brokerErrorIds(error);
  const server: string[] = [];
  for (const e of walkErrors(error)) {
    if (typeof e.serverErrorMessage === 'string' && e.serverErrorMessage.length > 0)
      server.push(e.serverErrorMessage);
  }
  if (ids.length > 0) return `${ids.join(', ')}${server.length > 0 ? ` (${server.join('; ')})` : ''}`;
  if (!(error instanceof Error)) return String(error);
  // The client nests the real reason (e.g. ECONNREFUSED) a few levels down: name the distinct root causes.
  const roots: string[] = [];
  for (const e of walkErrors(error)) {
    const leaf = !(Array.isArray(e.errors) && e.errors.length > 0) && e.cause === undefined;
    if (leaf && e !== error && typeof e.message === 'string' && !roots.includes(e.message))
      roots.push(e.message);
  }
  return roots.length > 0 ? `${error.message} (${roots.slice(0, 3).join('; ')})` : error.message;
}

/** Broker answers that mean "this record will never be accepted as is". */
const REJECTED = new Set([
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_RECORD',
  'CORRUPT_MESSAGE',
  'INVALID_TOPIC_EXCEPTION',
  'TOPIC_AUTHORIZATION_FAILED',
  'CLUSTER_AUTHORIZATION_FAILED',
  'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
  'UNSUPPORTED_FOR_MESSAGE_FORMAT',
  'INVALID_REQUIRED_ACKS',
  'POLICY_VIOLATION',
]);

/** Broker answers where the record may or may not have been written. */
const UNKNOWN_OUTCOME = new Set([
  'REQUEST_TIMED_OUT',
  'NOT_ENOUGH_REPLICAS_AFTER_APPEND',
  'NETWORK_EXCEPTION',
]);

/**
 * The outcome of a failed produce request:
 * - refused by the broker for good → PublishRejectedError (not retryable);
 * - timeout or connection lost after the request may have been written →
 *   TimeoutError (unknown outcome: retry with the same eventId);
 * - anything else (no leader, broker unavailable, …) → TransportError (retryable).
 */
export function toPublishError(error: unknown, topic: string): EventBusError {
  if (isEventBusError(error)) return error;
  const ids = brokerErrorIds(error);
  const what = describeKafkaError(error);
  const rejected = ids.find((id) => REJECTED.has(id));
  if (rejected !== undefined) {
    return new PublishRejectedError(
      `Expected the broker to accept the record for topic "${topic}", it refused: ${what}`,
      {
        cause: error,
      },
    );
  }
  if (hasCode(error, 'PLT_KFK_USER')) {
    return new PublishRejectedError(
      `Expected the Kafka client to accept the record for topic "${topic}": ${what}`,
      {
        cause: error,
      },
    );
  }
  if (
    ids.some((id) => UNKNOWN_OUTCOME.has(id)) ||
    hasCode(error, 'PLT_KFK_TIMEOUT') ||
    hasCode(error, 'PLT_KFK_NETWORK')
  ) {
    return new TimeoutError(
      `Expected an acknowledgement from Kafka for topic "${topic}", got ${what}; the outcome is unknown`,
      { cause: error },
    );
  }
  return new TransportError(`Expected Kafka to store the record for topic "${topic}", got ${what}`, {
    cause: error,
  });
}
