/**
 * Envelopes: the unit of at-least-once delivery. Create, validate, encode and
 * decode, plus the wire-header mapping shared by every transport.
 *
 * Wire format: the body is the envelope as UTF-8 JSON (self-contained, so a
 * message stays meaningful without its headers); the metadata is mirrored in
 * headers so brokers and consumers can route and de-duplicate without decoding.
 */
import { v7 as uuidv7 } from 'uuid';
import { DecodeError, ValidationError } from './errors.ts';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface Envelope<P = unknown> {
  readonly eventId: string;
  readonly aggregateId: string;
  readonly eventType: string;
  readonly eventVersion: number;
  /** ISO 8601, UTC. */
  readonly timestamp: string;
  readonly traceId?: string;
  readonly correlationId?: string;
  /** Any JSON value, or raw bytes. */
  readonly payload: P;
}

/** What `publishEnvelope` accepts: eventId and timestamp are filled in when absent. */
export interface EnvelopeInput<P = unknown> {
  readonly eventId?: string;
  readonly aggregateId: string;
  readonly eventType: string;
  readonly eventVersion: number;
  readonly timestamp?: string | Date;
  readonly traceId?: string;
  readonly correlationId?: string;
  readonly payload: P;
}

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
} as const;

const MAX_ID_LENGTH = 256;

function requireString(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new ValidationError(
      field,
      `Expected envelope.${field} to be a non-empty string, got ${describe(value)}`,
    );
  }
  if (value.length > MAX_ID_LENGTH) {
    throw new ValidationError(
      field,
      `Expected envelope.${field} to be at most ${MAX_ID_LENGTH} characters, got ${value.length}`,
    );
  }
  return value;
}

function optionalString(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  return requireString(value, field);
}

function describe(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  if (typeof value === 'string')
    return value.length === 0 ? 'an empty string' : `string "${value.slice(0, 40)}"`;
  return `${typeof value} ${String(value).slice(0, 40)}`;
}

let lastNowMs = 0;
let lastNowIso = '';

/** The current time as ISO 8601, formatted once per millisecond (hot path of every publish). */
function isoNow(): string {
  const now = Date.now();
  if (now !== lastNowMs) {
    lastNowMs = now;
    lastNowIso = new Date(now).toISOString();
  }
  return lastNowIso;
}

const ISO_PREFIX = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;

function normaliseTimestamp(value: unknown): string {
  if (value === undefined || value === null) return isoNow();
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) {
      throw new ValidationError(
        'timestamp',
        'Expected envelope.timestamp to be a valid date, got Invalid Date',
      );
    }
    return value.toISOString();
  }
  if (typeof value === 'string' && !Number.isNaN(Date.parse(value))) return value;
  throw new ValidationError(
    'timestamp',
    `Expected envelope.timestamp to be an ISO 8601 string or Date, got ${describe(value)}`,
  );
}

/**
 * Builds a complete, validated envelope from input: generates a UUIDv7
 * eventId and the current timestamp when absent. Throws ValidationError
 * naming the first bad field.
 */
export function createEnvelope<P>(input: EnvelopeInput<P>): Envelope<P> {
  if (typeof input !== 'object' || input === null) {
    throw new ValidationError('envelope', `Expected an envelope object, got ${describe(input)}`);
  }
  const eventId = input.eventId === undefined ? uuidv7() : requireString(input.eventId, 'eventId');
  const aggregateId = requireString(input.aggregateId, 'aggregateId');
  const eventType = requireString(input.eventType, 'eventType');
  const eventVersion = input.eventVersion;
  if (typeof eventVersion !== 'number' || !Number.isSafeInteger(eventVersion) || eventVersion < 0) {
    throw new ValidationError(
      'eventVersion',
      `Expected envelope.eventVersion to be an integer >= 0, got ${describe(eventVersion)}`,
    );
  }
  if (input.payload === undefined) {
    throw new ValidationError(
      'payload',
      'Expected envelope.payload to be a JSON value or bytes, got undefined',
    );
  }
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
  return envelope;
}

/**
 * Validates a complete envelope (e.g. one decoded from the wire) in place,
 * without copying it: this runs for every consumed message.
 */
export function validateEnvelope(value: unknown): asserts value is Envelope {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ValidationError('envelope', `Expected an envelope object, got ${describe(value)}`);
  }
  const v = value as Record<string, unknown>;
  requireString(v.eventId, 'eventId');
  requireString(v.aggregateId, 'aggregateId');
  requireString(v.eventType, 'eventType');
  const version = v.eventVersion;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 0) {
    throw new ValidationError(
      'eventVersion',
      `Expected envelope.eventVersion to be an integer >= 0, got ${describe(version)}`,
    );
  }
  if (typeof v.timestamp !== 'string' || !ISO_PREFIX.test(v.timestamp)) {
    throw new ValidationError(
      'timestamp',
      `Expected envelope.timestamp to be an ISO 8601 string, got ${describe(v.timestamp)}`,
    );
  }
  if (v.payload === undefined) {
    throw new ValidationError(
      'payload',
      'Expected envelope.payload to be a JSON value or bytes, got undefined',
    );
  }
  optionalString(v.traceId, 'traceId');
  optionalString(v.correlationId, 'correlationId');
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

interface WireEnvelope {
  eventId: string;
  aggregateId: string;
  eventType: string;
  eventVersion: number;
  timestamp: string;
  traceId?: string;
  correlationId?: string;
  payload?: unknown;
  payloadBase64?: string;
}

/** Encodes to the wire body (UTF-8 JSON; byte payloads travel as base64). */
export function encodeEnvelope(envelope: Envelope): Uint8Array {
  if (envelope.payload instanceof Uint8Array) {
    const { payload, ...rest } = envelope;
    const wire: WireEnvelope = { ...rest, payloadBase64: Buffer.from(payload).toString('base64') };
    return encoder.encode(JSON.stringify(wire));
  }
  return encoder.encode(JSON.stringify(envelope));
}

/** Decodes and validates a wire body; throws DecodeError saying what was wrong. */
export function decodeEnvelope(data: Uint8Array): Envelope {
  if (data.byteLength === 0) throw new DecodeError('Expected an envelope (JSON object), got an empty body');
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(data));
  } catch (cause) {
    throw new DecodeError(
      `Expected an envelope (UTF-8 JSON), got ${data.byteLength} bytes that do not parse`,
      {
        cause,
      },
    );
  }
  if (typeof parsed === 'object' && parsed !== null && 'payloadBase64' in parsed) {
    const wire = parsed as WireEnvelope;
    if (typeof wire.payloadBase64 !== 'string') {
      throw new DecodeError('Expected envelope.payloadBase64 to be a base64 string');
    }
    const { payloadBase64, ...rest } = wire;
    parsed = { ...rest, payload: new Uint8Array(Buffer.from(payloadBase64, 'base64')) };
  }
  try {
    validateEnvelope(parsed);
  } catch (cause) {
    throw new DecodeError(`Expected a valid envelope: ${(cause as Error).message}`, { cause });
  }
  return parsed;
}

/** The SPEC §2 header mapping. */
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

/** Size of a message as the broker counts it (body + header bytes, roughly). */
export function encodedSize(data: Uint8Array, headers: Readonly<Record<string, string>>): number {
  let size = data.byteLength;
  for (const name in headers) size += name.length + (headers[name]?.length ?? 0) + 4;
  return size;
}

export function newEventId(): string {
  return uuidv7();
}
