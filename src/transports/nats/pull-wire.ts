/**
 * What a pull loop reads and writes on the wire: the `CONSUMER.MSG.NEXT`
 * request, the ack subject every delivered message carries (its delivery
 * count and sequences), NATS headers turned into a record on demand, and the
 * status answers that end a pull.
 */
import type { MsgHdrs } from '@nats-io/transport-node';

export type PullOutcome =
  | { readonly kind: 'done' | 'expired' | 'reconnected' | 'aborted' | 'unanswered' }
  | { readonly kind: 'missing'; readonly reason: string }
  | { readonly kind: 'retry' | 'error'; readonly reason: string };

export const DONE: PullOutcome = { kind: 'done' };
export const EXPIRED: PullOutcome = { kind: 'expired' };
/** Expired with no answer at all (see PullLedger.armSafety). */
export const UNANSWERED: PullOutcome = { kind: 'unanswered' };

const EMPTY_HEADERS: Readonly<Record<string, string>> = Object.freeze({});
const encoder = new TextEncoder();

/** The body of a `$JS.API.CONSUMER.MSG.NEXT` request. */
export function pullRequest(batch: number, expiresNs: number): Uint8Array {
  return encoder.encode(`{"batch":${batch},"expires":${expiresNs}}`);
}

export function headersRecord(headers: MsgHdrs | undefined): Readonly<Record<string, string>> {
  if (headers === undefined) return EMPTY_HEADERS;
  const record: Record<string, string> = {};
  for (const [name, values] of headers) {
    const value = values[0];
    if (value !== undefined) record[name] = value;
  }
  return record;
}

const dots = new Int32Array(16);

/**
 * `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>` (9 tokens)
 * or the v2 form with `<domain>.<account hash>` after ACK and a trailing token.
 * Writes [deliveryCount, streamSequence, consumerSequence] into `out`; false
 * when not an ack subject.
 */
export function parseAckSubject(reply: string, out: [number, number, number]): boolean {
  if (!reply.startsWith('$JS.ACK.')) return false;
  let count = 0;
  for (let i = 0; i < reply.length && count < 16; i++) {
    if (reply.charCodeAt(i) === 46) dots[count++] = i;
  }
  const tokens = count + 1;
  const first = tokens === 9 ? 4 : tokens >= 11 ? 6 : -1;
  if (first < 0) return false;
  const deliveryCount = Number(reply.slice((dots[first - 1] as number) + 1, dots[first]));
  const sequence = Number(reply.slice((dots[first] as number) + 1, dots[first + 1]));
  const consumerSequence = Number(reply.slice((dots[first + 1] as number) + 1, dots[first + 2]));
  if (!Number.isSafeInteger(deliveryCount) || !Number.isSafeInteger(sequence)) return false;
  out[0] = deliveryCount;
  out[1] = sequence;
  out[2] = Number.isSafeInteger(consumerSequence) ? consumerSequence : 0;
  return true;
}

/** How a status answer (no reply subject, a `code` header) ends the pull it answers. */
export function statusOutcome(code: number, description: string): PullOutcome {
  switch (code) {
    case 404:
    case 408:
      return EXPIRED;
    case 409:
      if (/consumer deleted/i.test(description)) return { kind: 'missing', reason: description };
      if (/maxwaiting|leadership/i.test(description)) return { kind: 'retry', reason: description };
      return { kind: 'error', reason: `409 ${description}` };
    case 503:
      return { kind: 'missing', reason: '503 no responders' };
    default:
      return { kind: 'error', reason: `${code} ${description}` };
  }
}
