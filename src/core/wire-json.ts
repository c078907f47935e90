/**
 * JSON on the wire without silent number loss, and the payload's own bytes.
 *
 * Go writes `int64` (and any integer a `json.RawMessage` payload holds) as a
 * plain JSON integer; `JSON.parse` turns an integer beyond ±(2^53 − 1) into
 * the nearest double, i.e. a different number, without a word. We parse with
 * the reviver's source text (`context.source`, Node ≥ 21) and hand such
 * integers over as `bigint`, exact. Encoding writes a `bigint` back as the same
 * JSON integer (`JSON.rawJSON`), so forwarding an event keeps its numbers.
 *
 * The reviver is slow, so it only runs on bodies that could hold such an
 * integer: 2^53 has 16 digits, so a body without 16 digits in a row has none.
 *
 * The payload's exact bytes (`rawPayload`) come from the body by locating the
 * top-level `payload` member: a scan over a body JSON.parse has already
 * accepted, so it only skips strings and balanced brackets (no validation,
 * no value building).
 */

interface ReviverContext {
  readonly source?: string;
}

type JsonRaw = (text: string) => unknown;
/** `JSON.rawJSON` (ES2025, V8 11.4): not yet in TypeScript's lib. */
const rawJson: JsonRaw = (JSON as unknown as { rawJSON: JsonRaw }).rawJSON;

const MAYBE_UNSAFE_INTEGER = /\d{16}/;
const INTEGER_LITERAL = /^-?\d+$/;

function exactIntegers(_key: string, value: unknown, context?: ReviverContext): unknown {
  if (typeof value !== 'number' || Number.isSafeInteger(value)) return value;
  const source = context?.source;
  // Only integer literals: 1.5e300 is a float and stays one, as in any JSON reader.
  if (source !== undefined && INTEGER_LITERAL.test(source)) return BigInt(source);
  return value;
}

/** JSON.parse, except integers beyond ±(2^53 − 1) come back as exact `bigint`s. */
export function parseLossless(text: string): unknown {
  if (!MAYBE_UNSAFE_INTEGER.test(text)) return JSON.parse(text);
  return JSON.parse(text, exactIntegers);
}

function bigintAsJsonInteger(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? rawJson(value.toString()) : value;
}

/**
 * JSON text of a value; `bigint`s are written as JSON integers (JSON.stringify
 * alone throws on them). Undefined when the value has no JSON form (a function,
 * a symbol, undefined).
 */
export function stringifyLossless(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch (error) {
    // Only the rare payload holding a bigint pays for the replacer.
    if (error instanceof TypeError && /BigInt/i.test(error.message)) {
      return JSON.stringify(value, bigintAsJsonInteger);
    }
    throw error;
  }
}

const SPACE = 0x20;
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

function isSpace(byte: number | undefined): boolean {
  return byte === SPACE || byte === LF || byte === CR || byte === TAB;
}

function skipSpace(b: Uint8Array, i: number): number {
  while (i < b.length && isSpace(b[i])) i++;
  return i;
}

/** `b[i]` is an opening quote; returns the index after the closing one. */
function skipString(b: Uint8Array, i: number): number {
  i++;
  while (i < b.length) {
    const c = b[i];
    if (c === BACKSLASH) i += 2;
    else if (c === QUOTE) return i + 1;
    else i++;
  }
  return i;
}

/** Index after the JSON value starting at `b[i]`. UTF-8 never puts an ASCII byte inside a multi-byte character, so bytes suffice. */
function skipValue(b: Uint8Array, i: number): number {
  const first = b[i];
  if (first === QUOTE) return skipString(b, i);
  if (first === OPEN_BRACE || first === OPEN_BRACKET) {
    let depth = 0;
    while (i < b.length) {
      const c = b[i];
      if (c === QUOTE) {
        i = skipString(b, i);
        continue;
      }
      if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++;
      else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
        depth--;
        if (depth === 0) return i + 1;
      }
      i++;
    }
    return i;
  }
  while (i < b.length && b[i] !== COMMA && b[i] !== CLOSE_BRACE && b[i] !== CLOSE_BRACKET && !isSpace(b[i])) {
    i++;
  }
  return i;
}

const keyDecoder = new TextDecoder();

/**
 * The bytes of the top-level member `name` of a JSON object body that
 * JSON.parse already accepted (so no validation here). The last occurrence
 * wins, as in JSON.parse. Undefined when the body has no such member.
 */
export function topLevelMember(body: Uint8Array, name: string): Uint8Array | undefined {
  let i = skipSpace(body, 0);
  if (body[i] === 0xef && body[i + 1] === 0xbb && body[i + 2] === 0xbf) i = skipSpace(body, i + 3); // BOM
  if (body[i] !== OPEN_BRACE) return undefined;
  i++;
  let found: Uint8Array | undefined;
  for (;;) {
    i = skipSpace(body, i);
    if (body[i] !== QUOTE) return found;
    const keyEnd = skipString(body, i);
    const quoted = keyDecoder.decode(body.subarray(i, keyEnd));
    const key = quoted.includes('\\') ? (JSON.parse(quoted) as string) : quoted.slice(1, -1);
    i = skipSpace(body, skipSpace(body, keyEnd) + 1); // past the colon
    const end = skipValue(body, i);
    if (key === name) found = body.subarray(i, end);
    i = skipSpace(body, end);
    if (body[i] !== COMMA) return found;
    i++;
  }
}
