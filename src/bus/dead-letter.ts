/**
 * The dead letter (or parked copy) of a failed message: its original bytes,
 * its original headers where they fit, and the `X-DLQ-*` headers saying why.
 *
 * A dead letter must always fit the broker's limit, or the message can never
 * be given up on: the copied headers plus ours can exceed `max_payload` for a
 * message that was close to it. Copied headers are dropped (largest first,
 * the envelope's identity headers last) until it fits; the reason is kept,
 * shortened only as a last resort. The size counted is exactly what the
 * transport sends (see encodedSize), the message-id header and framing included.
 * The transport's own wire headers (Transport.ownedHeaders) are not copied:
 * they belonged to the delivered copy, and the re-publish gets its own.
 */
import { createHash } from 'node:crypto';
import { encodedSize, Headers } from '../core/envelope.ts';
import { DecodeError, PayloadTooLargeError } from '../core/errors.ts';
import type { OutboundMessage } from '../core/transport.ts';
import type { DeadLetterRequest } from '../dispatch/types.ts';
import { readHeaders } from './tasks.ts';

/** Set when copied headers had to be left out to fit the limit: how many. */
export const droppedHeadersHeader = 'X-DLQ-Headers-Dropped';
/** Set when the original headers could not be parsed (none are copied). */
export const unreadableHeadersHeader = 'X-DLQ-Headers-Unreadable';

const REASON_MAX = 512;
const REASON_SHORT = 64;

/** Copied headers that identify the event: dropped only after every other copied header. */
const identityHeaders = new Set<string>([
  Headers.eventId,
  Headers.aggregateId,
  Headers.eventType,
  Headers.eventVersion,
  Headers.timestamp,
]);

/** A short stable digest of a message's bytes (dead-letter ids of messages without an eventId). */
function digest(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex').slice(0, 24);
}

/** Header values must stay on one line and reasonably short. */
function headerSafe(text: string, max: number): string {
  const flat = text.replace(/[\r\n]+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

export function deadLetterMessage(
  topic: string,
  group: string,
  deadLetterTopic: string,
  request: DeadLetterRequest,
  limit: number,
  transportHeaders: readonly string[] = [],
): OutboundMessage {
  const parked = request.disposition === 'parked';
  const original = request.task.message;
  const read = readHeaders(original);
  const copied: Record<string, string> = read instanceof DecodeError ? {} : { ...read };
  const owned = new Set(transportHeaders.map((name) => name.toLowerCase()));
  for (const name of Object.keys(copied)) if (owned.has(name.toLowerCase())) delete copied[name];
  // A replayed parked event carries the X-DLQ-* headers of its first parking: they are rewritten.
  for (const name of Object.keys(copied)) {
    if (name.startsWith('X-DLQ-') && name !== Headers.deadLetterReplayOf) delete copied[name];
  }
  const reason = request.error.message || request.error.name || 'unknown error';
  const ours: Record<string, string> = {
    [Headers.deadLetterReason]: headerSafe(reason, REASON_MAX),
    [Headers.deadLetterAttempts]: String(request.attempts),
    [Headers.deadLetterTopic]: topic,
    [Headers.deadLetterPolicy]: parked ? 'parked' : 'dead-letter',
    [Headers.deadLetterGroup]: group,
    [Headers.deadLetterKey]: request.key,
  };
  if (original.sequence !== undefined) ours[Headers.deadLetterSequence] = String(original.sequence);
  if (read instanceof DecodeError) ours[unreadableHeadersHeader] = 'true';
  // The same delivery dead-lettered again (a crash before the original was
  // settled) must de-duplicate, but a *different* message must not: stream
  // sequences restart when a stream is recreated, so the id also carries the
  // eventId (or, for bytes without one, a digest of the bytes).
  // A replayed parked event has no stream sequence: its place in the parked topic identifies it.
  const place =
    original.sequence ??
    (copied[Headers.deadLetterReplayOf] ? `r${copied[Headers.deadLetterReplayOf]}` : '-');
  const identity = `${place}:${copied[Headers.eventId] ?? digest(original.data)}`;
  const msgId = `${topic}:${group}:${identity}:${parked ? 'parked' : 'dlq'}`;
  const headers = fit(original.data, copied, ours, msgId, limit);
  return {
    topic: parked ? `${topic}.PARKED` : deadLetterTopic,
    kind: 'envelope',
    data: original.data,
    headers,
    msgId,
    key: request.key,
  };
}

/** Our headers plus as many copied ones as fit; throws PayloadTooLargeError when even the bare minimum does not. */
function fit(
  data: Uint8Array,
  copied: Record<string, string>,
  ours: Record<string, string>,
  msgId: string,
  limit: number,
): Record<string, string> {
  const all = { ...copied, ...ours };
  if (encodedSize(data, all, msgId) <= limit) return all;
  // Drop order: other headers largest first, then the identity headers.
  const names = Object.keys(copied).filter((name) => !(name in ours));
  const size = (name: string): number => name.length + (copied[name] ?? '').length;
  names.sort((a, b) => {
    const identity = Number(identityHeaders.has(a)) - Number(identityHeaders.has(b));
    return identity !== 0 ? identity : size(b) - size(a);
  });
  const kept = { ...all };
  let dropped = 0;
  for (const name of names) {
    delete kept[name];
    dropped++;
    kept[droppedHeadersHeader] = String(dropped);
    if (encodedSize(data, kept, msgId) <= limit) return kept;
  }
  const reason = ours[Headers.deadLetterReason] ?? '';
  kept[Headers.deadLetterReason] = headerSafe(reason, REASON_SHORT);
  const bare = encodedSize(data, kept, msgId);
  if (bare <= limit) return kept;
  throw new PayloadTooLargeError(bare, limit, 'dead letter (original body plus the X-DLQ headers)');
}
