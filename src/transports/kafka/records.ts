/**
 * Wire mapping between the transport contract and Kafka records: headers,
 * record key, value, and the partition a key goes to.
 *
 * - Record headers are the message's headers (X-Event-ID, X-Aggregate-ID, …),
 *   UTF-8, passed as given: another transport's wire headers never reach
 *   here (each transport adds its own and the bus drops them before a re-publish).
 * - Record key = the aggregate id (so one aggregate stays in one partition).
 * - Partition = murmur2(key) & 0x7fffffff, the Java client's default, so
 *   producers in other languages agree on an aggregate's partition. Messages
 *   without a key go round-robin.
 */
/**
 * Header names as bytes, encoded once: every event carries the same few names
 * (X-Event-ID, …). The client only reads these buffers. Bounded, so that
 * arbitrary user header names cannot grow it without limit.
 */
const nameBytes = new Map<string, Buffer>();
const MAX_CACHED_NAMES = 256;

function headerName(name: string): Buffer {
  let bytes = nameBytes.get(name);
  if (bytes === undefined) {
    bytes = Buffer.from(name, 'utf8');
    if (nameBytes.size < MAX_CACHED_NAMES) nameBytes.set(name, bytes);
  }
  return bytes;
}

/** Message headers → Kafka record headers (UTF-8 bytes). */
export function toRecordHeaders(headers: Readonly<Record<string, string>>): Map<Buffer, Buffer> {
  const out = new Map<Buffer, Buffer>();
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    out.set(headerName(name), Buffer.from(value, 'utf8'));
  }
  return out;
}

type HeaderBytes = Buffer | Uint8Array | null | undefined;

/**
 * Kafka record headers → message headers. Accepts the client's Map or its
 * entry list (which keeps repeated names); for a repeated name the last value
 * wins, as in the Map. A null value becomes ''.
 */
export function fromRecordHeaders(
  headers: Iterable<readonly [HeaderBytes, HeaderBytes]> | undefined,
): Record<string, string> {
  const out: Record<string, string> = {};
  if (headers === undefined) return out;
  for (const [name, value] of headers) {
    if (name === null || name === undefined) continue;
    out[bytesToString(name)] = value === null || value === undefined ? '' : bytesToString(value);
  }
  return out;
}

function bytesToString(bytes: Buffer | Uint8Array): string {
  return (
    Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  ).toString('utf8');
}

/** The aggregate id as record key bytes; undefined (no key) for an absent or empty key. */
export function toRecordKey(key: string | undefined): Buffer | undefined {
  return key === undefined || key.length === 0 ? undefined : Buffer.from(key, 'utf8');
}

/** Record key bytes → string key; undefined for a null or empty key. */
export function fromRecordKey(key: Buffer | Uint8Array | null | undefined): string | undefined {
  if (key === null || key === undefined || key.byteLength === 0) return undefined;
  return bytesToString(key);
}

/** A zero-copy Buffer view of the body. */
export function toRecordValue(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** Record value → body (empty for a null value, e.g. a tombstone). */
export function fromRecordValue(value: Buffer | Uint8Array | null | undefined): Uint8Array {
  return value ?? new Uint8Array(0);
}

/**
 * The partition hash of a key before the modulo, as the Java client computes
 * it (`toPositive(murmur2(key))`). The final partition is this value modulo
 * the topic's partition count.
 */
export function keyHash(key: Uint8Array): number {
  return murmur2(key) & 0x7fffffff;
}

/**
 * Kafka's murmur2 (Java `Utils.murmur2`) on 32-bit integer arithmetic; the
 * client's own version works on BigInt and is ~20x slower per key.
 */
export function murmur2(data: Uint8Array): number {
  const m = 0x5bd1e995;
  const length = data.length;
  let h = 0x9747b28c ^ length;
  const length4 = length & ~3;
  for (let i = 0; i < length4; i += 4) {
    let k =
      (data[i] as number) |
      ((data[i + 1] as number) << 8) |
      ((data[i + 2] as number) << 16) |
      ((data[i + 3] as number) << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m);
    h ^= k;
  }
  const rest = length & 3;
  if (rest === 3) h ^= (data[length4 + 2] as number) << 16;
  if (rest >= 2) h ^= (data[length4 + 1] as number) << 8;
  if (rest >= 1) {
    h ^= data[length4] as number;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/** Size the broker counts for a record, roughly: value + key + header names and values. */
export function recordSize(value: Buffer, key: Buffer | undefined, headers: Map<Buffer, Buffer>): number {
  let size = value.byteLength + (key?.byteLength ?? 0);
  for (const [name, v] of headers) size += name.byteLength + v.byteLength + 4;
  return size;
}
