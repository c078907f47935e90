/**
 * Envelopes: the unit of at-least-once delivery. Create and validate, plus the
 * wire-header mapping shared by every transport. The body format (encode,
 * decode, raw payload bytes) lives in envelope-wire.ts.
 *
 * Wire format (README.md, Wire format): the Go SDK's envelope, UTF-8 JSON with snake_case
 * keys, self-contained so a message stays meaningful without its headers; the
 * metadata is mirrored in headers so brokers and consumers can route and
 * de-duplicate without decoding. In code, envelopes keep camelCase names.
 */
import { v7 as uuidv7 } from 'uuid';
import {
  describe,
  optionalString,
  requirePayload,
  requireString,
  requireTimestamp,
  requireVersion,
} from './envelope-checks.ts';
import { ValidationError } from './errors.ts';
import { assertGoCompatible } from './go-rules.ts';
import { dateToRfc3339, nowRfc3339 } from './timestamps.ts';

export { decodeEnvelope, encodeEnvelope, rawPayload } from './envelope-wire.ts';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface Envelope<P = unknown> {
  readonly eventId: string;
  readonly aggregateId: string;
  readonly eventType: string;
  readonly eventVersion: number;
  /**
   * RFC 3339 (`2026-01-02T03:04:05.123456789+01:00`), kept exactly as the
   * producer wrote it: offset and up to nanoseconds, which a Date would round.
   */
  readonly timestamp: string;
  readonly traceId?: string;
  readonly correlationId?: string;
  /**
   * Any JSON value. Decoded integers beyond ±(2^53 - 1) are `bigint`s (exact);
   * `rawPayload(envelope)` gives the payload's bytes as they were on the wire.
   */
  readonly payload: P;
}

/** What `publishEnvelope` accepts: eventId and timestamp are filled in when absent. */
export interface EnvelopeInput<P = unknown> {
  readonly eventId?: string;
  readonly aggregateId: string;
  readonly eventType: string;
  readonly eventVersion: number;
  /** RFC 3339 string (kept as written) or a Date (written as UTC with milliseconds). */
  readonly timestamp?: string | Date;
  readonly traceId?: string;
  readonly correlationId?: string;
  /** A JSON value (bigints allowed), or bytes holding UTF-8 JSON text (sent inline). */
  readonly payload: P;
}

/**
 * Extra publish-time rules. 'jxt-go': also the Go SDK's `Validate()` (see
 * go-rules.ts), for topics that Go services consume.
 */
export type EnvelopeRules = 'default' | 'jxt-go';

export const Headers = {
  eventId: 'X-Event-ID',
  aggregateId: 'X-Aggregate-ID',
  eventType: 'X-Event-Type',
  eventVersion: 'X-Event-Version',
  timestamp: 'X-Timestamp',
  traceId: 'X-Trace-ID',
  correlationId: 'X-Correlation-ID',
  natsMsgId: 'Nats-Msg-Id',
  traceparent: 'traceparent',
  deadLetterReason: 'X-DLQ-Reason',
  deadLetterAttempts: 'X-DLQ-Attempts',
  deadLetterTopic: 'X-DLQ-Original-Topic',
  deadLetterSequence: 'X-DLQ-Original-Sequence',
  deadLetterPolicy: 'X-DLQ-Policy',
  deadLetterGroup: 'X-DLQ-Group',
  /** The aggregate (routing key) a dead letter or parked event belongs to. */
  deadLetterKey: 'X-DLQ-Key',
  /** On a parked event being replayed: its sequence in `<topic>.PARKED`. */
  deadLetterReplayOf: 'X-DLQ-Replay-Of',
} as const;

function normaliseTimestamp(value: unknown): string {
  if (value === undefined || value === null) return nowRfc3339();
  if (value instanceof Date) {
    const text = dateToRfc3339(value);
    if (text === undefined) {
      throw new ValidationError(
        'timestamp',
        `Expected envelope.timestamp to be a valid date in the years 0000-9999, got ${String(value)}`,
      );
    }
    return text;
  }
  return requireTimestamp(value, 'rfc3339');
}

/**
 * Builds a complete, validated envelope from input: generates a UUIDv7
 * eventId and the current timestamp when absent. Throws ValidationError
 * naming the first bad field. `rules: 'jxt-go'` adds the Go SDK's checks.
 */
export function createEnvelope<P>(input: EnvelopeInput<P>, rules: EnvelopeRules = 'default'): Envelope<P> {
  if (typeof input !== 'object' || input === null) {
    throw new ValidationError('envelope', `Expected an envelope object, got ${describe(input)}`);
  }
  const eventId = input.eventId === undefined ? uuidv7() : requireString(input.eventId, 'eventId');
  const aggregateId = requireString(input.aggregateId, 'aggregateId');
  const eventType = requireString(input.eventType, 'eventType');
  const eventVersion = requireVersion(input.eventVersion);
  requirePayload(input.payload);
  const traceId = optionalString(input.traceId, 'traceId');
  const correlationId = optionalString(input.correlationId, 'correlationId');
  const envelope: {
    -readonly [K in keyof Envelope<P>]: Envelope<P>[K];
  } = {
    eventId,
    aggregateId,
    eventType,
    eventVersion,
    timestamp: normaliseTimestamp(input.timestamp),
    payload: input.payload,
  };
  if (traceId !== undefined) envelope.traceId = traceId;
  if (correlationId !== undefined) envelope.correlationId = correlationId;
  if (rules === 'jxt-go') assertGoCompatible(envelope);
  return envelope;
}

/**
 * Validates a complete envelope in place, without copying it. Accepts exactly
 * what createEnvelope produces (timestamps: RFC 3339 only).
 */
export function validateEnvelope(value: unknown): asserts value is Envelope {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ValidationError('envelope', `Expected an envelope object, got ${describe(value)}`);
  }
  const v = value as Record<string, unknown>;
  requireString(v.eventId, 'eventId');
  requireString(v.aggregateId, 'aggregateId');
  requireString(v.eventType, 'eventType');
  requireVersion(v.eventVersion);
  requireTimestamp(v.timestamp, 'rfc3339');
  requirePayload(v.payload);
  optionalString(v.traceId, 'traceId');
  optionalString(v.correlationId, 'correlationId');
}

/** The header mapping of README.md, Wire format. */
export function envelopeHeaders(envelope: Envelope): Record<string, string> {
  const headers: Record<string, string> = {
    [Headers.eventId]: envelope.eventId,
    [Headers.aggregateId]: envelope.aggregateId,
    [Headers.eventType]: envelope.eventType,
    [Headers.eventVersion]: String(envelope.eventVersion),
    [Headers.timestamp]: envelope.timestamp,
  };
  if (envelope.traceId !== undefined) headers[Headers.traceId] = envelope.traceId;
  if (envelope.correlationId !== undefined) headers[Headers.correlationId] = envelope.correlationId;
  return headers;
}

/**
 * Routing key for a delivered message: envelope field → X-Aggregate-ID header
 * → transport key (Kafka record key) → none.
 */
export function extractAggregateId(
  envelope: Pick<Envelope, 'aggregateId'> | undefined,
  headers: Readonly<Record<string, string>>,
  key: string | undefined,
): string | undefined {
  if (envelope?.aggregateId) return envelope.aggregateId;
  const header = headers[Headers.aggregateId];
  if (header) return header;
  if (key) return key;
  return undefined;
}

const utf8 = new TextEncoder();

function utf8Length(text: string): number {
  // ASCII fast path: header names and most values.
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return utf8.encode(text).byteLength;
  return text.length;
}

/**
 * Size of a message as the broker counts it, byte for byte: the body plus the
 * NATS header block the client writes (`NATS/1.0\r\n`, one `Name: value\r\n`
 * per header with the value trimmed as the client does, a closing `\r\n`),
 * including the `Nats-Msg-Id` header the publisher adds for `msgId`. A
 * message of exactly the broker's limit is accepted; one byte more is refused.
 */
export function encodedSize(
  data: Uint8Array,
  headers: Readonly<Record<string, string>>,
  msgId?: string,
): number {
  let block = 0;
  let count = 0;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || (msgId && name === Headers.natsMsgId)) continue;
    block += utf8Length(name) + 2 + utf8Length(value.trim()) + 2;
    count++;
  }
  if (msgId) {
    block += Headers.natsMsgId.length + 2 + utf8Length(msgId.trim()) + 2;
    count++;
  }
  if (count === 0) return data.byteLength;
  return data.byteLength + 'NATS/1.0\r\n'.length + block + 2;
}

export function newEventId(): string {
  return uuidv7();
}
