/**
 * The envelope body on the wire: the Go SDK's `Envelope` JSON (README.md, Wire format).
 *
 *   {"event_id":"…","aggregate_id":"…","event_type":"…","event_version":3,
 *    "timestamp":"2026-01-02T03:04:05.123456789Z","trace_id":"…",
 *    "correlation_id":"…","payload":{…}}
 *
 * Keys in the Go struct's order; trace_id/correlation_id only when set
 * (Go's omitempty); payload inline JSON (Go's json.RawMessage). Decoding also
 * reads the camelCase body earlier versions of this package wrote (payload
 * inline, or bytes as `payloadBase64`), so events already stored stay readable.
 */
import type { Envelope } from './envelope.ts';
import {
  optionalString,
  requirePayload,
  requireString,
  requireTimestamp,
  requireVersion,
  type TimestampRule,
} from './envelope-checks.ts';
import { DecodeError, ValidationError } from './errors.ts';
import { parseLossless, stringifyLossless, topLevelMember } from './wire-json.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

function notJson(payload: Uint8Array, cause: unknown): ValidationError {
  return new ValidationError(
    'payload',
    `Expected a byte payload to be UTF-8 JSON text (the wire payload is inline JSON, as in the Go SDK), got ${payload.byteLength} bytes that are not`,
    { cause },
  );
}

/** A byte payload's JSON text: only bytes that already are UTF-8 JSON have one. */
function bytesJson(payload: Uint8Array): string {
  try {
    const text = decoder.decode(payload);
    JSON.parse(text);
    return text;
  } catch (cause) {
    throw notJson(payload, cause);
  }
}

function noJsonForm(payload: unknown): ValidationError {
  return new ValidationError(
    'payload',
    `Expected envelope.payload to be a JSON value or JSON bytes, got ${typeof payload}`,
  );
}

/** The JSON text of any payload (rawPayload's fallback for envelopes built in-process). */
function payloadJson(payload: unknown): string {
  if (payload instanceof Uint8Array) return bytesJson(payload);
  const text = stringifyLossless(payload);
  if (text === undefined) throw noJsonForm(payload);
  return text;
}

/**
 * Encodes to the wire body. Throws ValidationError('payload') for a payload
 * without a JSON form (bytes that are not UTF-8 JSON, a function, a symbol).
 */
export function encodeEnvelope(envelope: Envelope): Uint8Array {
  const { payload } = envelope;
  const bytes = payload instanceof Uint8Array;
  if (!bytes && (payload === undefined || typeof payload === 'function' || typeof payload === 'symbol')) {
    throw noJsonForm(payload);
  }
  // One shape for every body (undefined members are left out by JSON.stringify): one fast stringify.
  const wire = {
    event_id: envelope.eventId,
    aggregate_id: envelope.aggregateId,
    event_type: envelope.eventType,
    event_version: envelope.eventVersion,
    timestamp: envelope.timestamp,
    trace_id: envelope.traceId,
    correlation_id: envelope.correlationId,
    payload: bytes ? undefined : payload,
  };
  let body = stringifyLossless(wire) as string;
  // Bytes are JSON text already: spliced in as written (JSON.rawJSON takes primitives only).
  if (bytes) body = `${body.slice(0, -1)},"payload":${bytesJson(payload)}}`;
  // Buffer.from, not TextEncoder: a body under 4 KiB is a slice of Node's shared
  // pool instead of an ArrayBuffer of its own (the encode was 7% of a publish's CPU,
  // more than the stringify). Consumers of message bytes honour byteOffset.
  return Buffer.from(body, 'utf8');
}

/** Go omits empty optional strings; another producer may write "" or null for "not set". */
function goOptional(value: unknown, field: string, label: string): string | undefined {
  return value === '' ? undefined : optionalString(value, field, label);
}

function fromGoBody(w: Record<string, unknown>): Envelope {
  const envelope: { -readonly [K in keyof Envelope]: Envelope[K] } = {
    eventId: requireString(w.event_id, 'eventId', 'event_id'),
    aggregateId: requireString(w.aggregate_id, 'aggregateId', 'aggregate_id'),
    eventType: requireString(w.event_type, 'eventType', 'event_type'),
    eventVersion: requireVersion(w.event_version, 'event_version'),
    timestamp: requireTimestamp(w.timestamp, 'rfc3339', 'timestamp'),
    payload: w.payload,
  };
  requirePayload(w.payload, 'payload');
  const traceId = goOptional(w.trace_id, 'traceId', 'trace_id');
  const correlationId = goOptional(w.correlation_id, 'correlationId', 'correlation_id');
  if (traceId !== undefined) envelope.traceId = traceId;
  if (correlationId !== undefined) envelope.correlationId = correlationId;
  return envelope;
}

/** The camelCase body of earlier versions; checked as their decoder did (see isLegacyTimestamp). */
function fromLegacyBody(w: Record<string, unknown>): Envelope {
  let payload = w.payload;
  if ('payloadBase64' in w) {
    if (typeof w.payloadBase64 !== 'string') {
      throw new DecodeError('Expected envelope.payloadBase64 to be a base64 string');
    }
    payload = new Uint8Array(Buffer.from(w.payloadBase64, 'base64'));
  }
  const rule: TimestampRule = 'legacy';
  const envelope: { -readonly [K in keyof Envelope]: Envelope[K] } = {
    eventId: requireString(w.eventId, 'eventId'),
    aggregateId: requireString(w.aggregateId, 'aggregateId'),
    eventType: requireString(w.eventType, 'eventType'),
    eventVersion: requireVersion(w.eventVersion),
    timestamp: requireTimestamp(w.timestamp, rule),
    payload,
  };
  requirePayload(payload);
  const traceId = optionalString(w.traceId, 'traceId');
  const correlationId = optionalString(w.correlationId, 'correlationId');
  if (traceId !== undefined) envelope.traceId = traceId;
  if (correlationId !== undefined) envelope.correlationId = correlationId;
  return envelope;
}

function isLegacyBody(w: Record<string, unknown>): boolean {
  return !('aggregate_id' in w) && !('event_id' in w) && ('aggregateId' in w || 'eventId' in w);
}

/**
 * A decoded envelope's wire body, for rawPayload(): a non-enumerable symbol
 * property (3x cheaper than a WeakMap entry on this per-message path; invisible
 * to JSON, spread, Object.keys and deepStrictEqual). The body lives as long as
 * the envelope.
 */
const WIRE_BODY = Symbol('jxt-eventbus.wireBody');

/**
 * JSON nested deeper than this is refused before parsing. JSON.parse itself
 * copes, but the exact-integer reviver, JSON.stringify (logs, forwarding) and
 * most handlers recurse and die with "Maximum call stack size exceeded"; a
 * precise reason at decode names the real problem. Go's encoding/json allows
 * 10,000; no real event nests anywhere near 512.
 */
export const MAX_JSON_DEPTH = 512;

/** Byte offset where nesting passes `max` (strings skipped), or undefined. */
function nestingBeyond(b: Uint8Array, max: number): number | undefined {
  let depth = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i];
    if (c === 0x22) {
      // Skip the string: a backslash escapes the next byte.
      for (i++; i < b.length && b[i] !== 0x22; i++) if (b[i] === 0x5c) i++;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return i;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  return undefined;
}

/** Offset of the first byte that breaks UTF-8 (the fatal decoder said there is one). */
function firstInvalidUtf8(b: Uint8Array): number {
  let lo = 0;
  let hi = b.length;
  // Binary search on the longest valid prefix, allowing for a split character at its end.
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(b.subarray(0, mid), { stream: true });
      lo = mid;
    } catch {
      hi = mid - 1;
    }
  }
  return lo;
}

/** Decodes and validates a wire body (either format); throws DecodeError saying what was wrong. */
export function decodeEnvelope(data: Uint8Array): Envelope {
  if (data.byteLength === 0) throw new DecodeError('Expected an envelope (JSON object), got an empty body');
  let text: string;
  try {
    text = decoder.decode(data);
  } catch (cause) {
    throw new DecodeError(
      `Expected an envelope (UTF-8 JSON), got ${data.byteLength} bytes that are not valid UTF-8 (first bad byte at offset ${firstInvalidUtf8(data)})`,
      { cause },
    );
  }
  // Nesting deeper than the limit needs more bytes than the limit: small bodies skip the scan.
  const depth = data.byteLength > MAX_JSON_DEPTH ? nestingBeyond(data, MAX_JSON_DEPTH) : undefined;
  if (depth !== undefined) {
    throw new DecodeError(
      `Expected an envelope (UTF-8 JSON) nested at most ${MAX_JSON_DEPTH} levels deep, got deeper nesting (level ${MAX_JSON_DEPTH + 1} opens at byte ${depth})`,
    );
  }
  let parsed: unknown;
  try {
    parsed = parseLossless(text);
  } catch (cause) {
    throw new DecodeError(
      `Expected an envelope (UTF-8 JSON), got ${data.byteLength} bytes that do not parse: ${(cause as Error).message}`,
      { cause },
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new DecodeError('Expected a valid envelope: Expected an envelope object, got a JSON non-object');
  }
  const wire = parsed as Record<string, unknown>;
  let envelope: Envelope;
  try {
    envelope = isLegacyBody(wire) ? fromLegacyBody(wire) : fromGoBody(wire);
  } catch (cause) {
    if (cause instanceof DecodeError) throw cause;
    throw new DecodeError(`Expected a valid envelope: ${(cause as Error).message}`, { cause });
  }
  Object.defineProperty(envelope, WIRE_BODY, { value: data });
  return envelope;
}

/**
 * The payload's bytes: for a decoded envelope exactly as they were on the wire
 * (UTF-8 JSON text: every digit of every number, whatever its size or
 * precision), for a byte payload the bytes, otherwise the payload's JSON
 * encoding. Throws ValidationError('payload') for a payload without a JSON form.
 */
export function rawPayload(envelope: Envelope): Uint8Array {
  if (envelope.payload instanceof Uint8Array) return envelope.payload;
  const body = (envelope as { [WIRE_BODY]?: Uint8Array })[WIRE_BODY];
  const member = body === undefined ? undefined : topLevelMember(body, 'payload');
  return member ?? encoder.encode(payloadJson(envelope.payload));
}

/**
 * A copy of `envelope` with another payload (a schema's parsed value) that
 * keeps the wire body, so rawPayload() still gives the bytes as received.
 */
export function withPayload<P>(envelope: Envelope, payload: P): Envelope<P> {
  const copy = { ...envelope, payload };
  const body = (envelope as { [WIRE_BODY]?: Uint8Array })[WIRE_BODY];
  if (body !== undefined) Object.defineProperty(copy, WIRE_BODY, { value: body });
  return copy;
}
