/**
 * The Go SDK's `Envelope.Validate()` (jxt-core `sdk/pkg/eventbus/envelope.go`),
 * applied at publish in the `interop: 'jxt-go'` mode: a Go consumer runs it on
 * every message and naks what fails, for ever, so we must never publish that.
 *
 * Go's rules, and how we apply them:
 * - `event_id`, `aggregate_id`, `event_type` must not be blank after trimming
 *   whitespace;
 * - `event_version` must be > 0;
 * - `payload` must not be empty (ours always is a JSON value, see encode);
 * - `aggregate_id` must be 1–256 characters of `[A-Za-z0-9:_\-./]`. Go trims
 *   it before checking; we refuse surrounding whitespace outright, because Go
 *   routes by the untrimmed value it decoded and the two would disagree.
 * - `timestamp` must parse as a Go `time.Time`: createEnvelope already limits
 *   every envelope to that RFC 3339 subset, in both modes.
 */
import type { Envelope } from './envelope.ts';
import { ValidationError } from './errors.ts';

const GO_AGGREGATE_ID = /^[A-Za-z0-9:_\-./]{1,256}$/;

function requireNotBlank(value: string, field: string, goName: string): void {
  if (value.trim().length === 0) {
    throw new ValidationError(
      field,
      `Expected envelope.${field} not to be blank: the Go SDK rejects it (${goName} is required)`,
    );
  }
}

/** Throws ValidationError naming the first field a Go consumer's Validate() would reject. */
export function assertGoCompatible(envelope: Envelope): void {
  requireNotBlank(envelope.eventId, 'eventId', 'event_id');
  if (!GO_AGGREGATE_ID.test(envelope.aggregateId)) {
    throw new ValidationError(
      'aggregateId',
      `Expected envelope.aggregateId to be 1-256 characters of [A-Za-z0-9:_\\-./] (the Go SDK's rule), got ${JSON.stringify(envelope.aggregateId.slice(0, 60))}`,
    );
  }
  requireNotBlank(envelope.eventType, 'eventType', 'event_type');
  if (envelope.eventVersion < 1) {
    throw new ValidationError(
      'eventVersion',
      `Expected envelope.eventVersion to be >= 1 (the Go SDK rejects event_version ${envelope.eventVersion}: it must be positive)`,
    );
  }
}
