/**
 * The NATS header block of a publish, built in one string and encoded once.
 *
 * nats.js's `headers()` object validates and canonicalises every name on each
 * `set` (a linear key search and a `String.fromCharCode(...)` per call) and
 * re-serialises on `encode()`: on the publish path that was the largest single
 * cost of our code. `nc.publish` only ever calls `encode()` on the headers it
 * is given, so a pre-encoded block stands in for it. The bytes are exactly
 * what the client writes (`NATS/1.0`, `Name: value` lines with the value
 * trimmed, a blank line), with the same rules: names of printable ASCII
 * without `:`, values without CR or LF.
 */
import type { MsgHdrs } from '@nats-io/transport-node';

const encoder = new TextEncoder();

/** What nats.js calls on publish headers: `encode()`. */
export class EncodedHeaders {
  readonly bytes: Uint8Array;
  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
  }
  encode(): Uint8Array {
    return this.bytes;
  }
  /** For `nc.publish({ headers })`, which reads nothing but `encode()`. */
  asMsgHdrs(): MsgHdrs {
    return this as unknown as MsgHdrs;
  }
}

/** Names already checked (header names are few and fixed in practice; bounded anyway). */
const validNames = new Set<string>();

function checkName(name: string): void {
  if (validNames.has(name)) return;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c === 58 || c < 33 || c > 126) {
      throw new Error(`'${name[i]}' is not a valid character in a header name`);
    }
  }
  if (validNames.size >= 1_000) validNames.clear();
  validNames.add(name);
}

function checkValue(value: string): string {
  if (value.indexOf('\r') >= 0 || value.indexOf('\n') >= 0) {
    throw new Error('header values cannot contain \\r or \\n');
  }
  return value.trim();
}

/**
 * The header block's text: `headers` plus `msgIdName: msgId` (when msgId is
 * set; it replaces a header of that exact name, as `MsgHdrs.set` does), ''
 * when there is no header at all. Throws on an invalid name or value.
 */
export function headerBlockText(
  headers: Readonly<Record<string, string>>,
  msgIdName: string,
  msgId: string,
): string {
  let s = 'NATS/1.0';
  let count = 0;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || (msgId && name === msgIdName)) continue;
    checkName(name);
    s += `\r\n${name}: ${checkValue(value)}`;
    count++;
  }
  if (msgId) {
    s += `\r\n${msgIdName}: ${checkValue(msgId)}`;
    count++;
  }
  return count === 0 ? '' : `${s}\r\n\r\n`;
}

/** The same block as bytes, in the shape `nc.publish` takes. */
export function encodeHeaderBlock(
  headers: Readonly<Record<string, string>>,
  msgIdName: string,
  msgId: string,
): EncodedHeaders {
  return new EncodedHeaders(encoder.encode(headerBlockText(headers, msgIdName, msgId)));
}
