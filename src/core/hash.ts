/**
 * FNV-1a 32-bit over the UTF-16 code units of `key`, as an unsigned integer.
 * Stable across processes and versions (never a signed modulo), cheap, and
 * good enough to spread aggregate IDs over a few dozen actors.
 */
export function fnv1a32(key: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    hash ^= c & 0xff;
    hash = Math.imul(hash, 0x01000193);
    hash ^= c >>> 8;
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/**
 * murmur3's 32-bit finaliser: FNV-1a's low bits depend only on the low bits
 * of each character, so keys sharing a prefix would cluster on power-of-two
 * actor counts without this avalanche step.
 */
export function fmix32(h: number): number {
  let x = h;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** Index of the actor that owns `key`, in [0, actors). */
export function actorIndexFor(key: string, actors: number): number {
  return fmix32(fnv1a32(key)) % actors;
}
