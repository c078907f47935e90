/**
 * Field checks shared by createEnvelope/validateEnvelope (API objects,
 * camelCase) and decodeEnvelope (wire bodies, snake_case or the old
 * camelCase): one rule set, so decode accepts whatever create accepted.
 * `label` is how an error names the field (`envelope.eventId`, `event_id`).
 */
import { ValidationError } from './errors.ts';
import { isLegacyTimestamp, isRfc3339 } from './timestamps.ts';

const MAX_ID_LENGTH = 256;

export function describe(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  if (typeof value === 'string')
    return value.length === 0 ? 'an empty string' : `string "${value.slice(0, 40)}"`;
  return `${typeof value} ${String(value).slice(0, 40)}`;
}

export function requireString(value: unknown, field: string, label = `envelope.${field}`): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new ValidationError(field, `Expected ${label} to be a non-empty string, got ${describe(value)}`);
  }
  if (value.length > MAX_ID_LENGTH) {
    throw new ValidationError(
      field,
      `Expected ${label} to be at most ${MAX_ID_LENGTH} characters, got ${value.length}`,
    );
  }
  return value;
}

export function optionalString(
  value: unknown,
  field: string,
  label = `envelope.${field}`,
): string | undefined {
  if (value === undefined || value === null) return undefined;
  return requireString(value, field, label);
}

/** eventVersion: a non-negative integer that a JS number carries exactly. */
export function requireVersion(value: unknown, label = 'envelope.eventVersion'): number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  if (typeof value === 'bigint') {
    // Only decode produces bigints (see wire-json.ts): a Go int64 beyond 2^53 - 1.
    throw new ValidationError(
      'eventVersion',
      `Expected ${label} to be an integer >= 0 of at most 2^53 - 1 (exact in JavaScript), got ${value}`,
    );
  }
  throw new ValidationError(
    'eventVersion',
    `Expected ${label} to be an integer >= 0, got ${describe(value)}`,
  );
}

/** 'rfc3339' for everything we write or accept now; 'legacy' only for old camelCase bodies. */
export type TimestampRule = 'rfc3339' | 'legacy';

export function requireTimestamp(value: unknown, rule: TimestampRule, label = 'envelope.timestamp'): string {
  if (typeof value === 'string' && (isRfc3339(value) || (rule === 'legacy' && isLegacyTimestamp(value)))) {
    return value;
  }
  throw new ValidationError(
    'timestamp',
    `Expected ${label} to be an RFC 3339 timestamp (e.g. 2026-01-02T03:04:05.123456789+01:00), got ${describe(value)}`,
  );
}

export function requirePayload(value: unknown, label = 'envelope.payload'): void {
  if (value === undefined) {
    throw new ValidationError('payload', `Expected ${label} to be a JSON value or bytes, got undefined`);
  }
}
