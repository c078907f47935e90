/** Mapping nats.js / JetStream failures onto the library's error classes. */
import { JetStreamApiError } from '@nats-io/jetstream';
import { isEventBusError, TimeoutError, TransportError } from '../../core/errors.ts';

export const ApiCodes = {
  consumerNotFound: 10014,
  streamNotFound: 10059,
  streamNameInUse: 10058,
  subjectsOverlap: 10065,
} as const;

/** The JetStream API error code (`err_code`), when `error` is one. */
export function apiErrorCode(error: unknown): number | undefined {
  return error instanceof JetStreamApiError ? error.code : undefined;
}

function isTimeout(error: unknown): boolean {
  return error instanceof Error && (error.name === 'TimeoutError' || /timeout/i.test(error.message));
}

/** Wraps a failed management call (stream/consumer API) with what we were doing. */
export function wrapApiError(what: string, error: unknown) {
  if (isEventBusError(error)) return error;
  const message = `${what}: ${error instanceof Error ? error.message : String(error)}`;
  return isTimeout(error)
    ? new TimeoutError(message, { cause: error })
    : new TransportError(message, { cause: error });
}
