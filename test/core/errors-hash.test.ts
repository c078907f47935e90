import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BusClosedError,
  EventBusError,
  findErrorByCode,
  isEventBusError,
  TimeoutError,
  TransportError,
} from '../../src/core/errors.ts';
import { actorIndexFor, fnv1a32 } from '../../src/core/hash.ts';

describe('errors', () => {
  it('carry code, retryable and cause', () => {
    const cause = new Error('socket');
    const e = new TimeoutError('no ack', { cause });
    assert.equal(e.code, 'EVENTBUS_TIMEOUT');
    assert.equal(e.retryable, true);
    assert.equal(e.cause, cause);
    assert.ok(e instanceof EventBusError);
    assert.equal(new BusClosedError().retryable, false);
  });

  it('findErrorByCode walks causes and aggregate errors', () => {
    const inner = new TransportError('down');
    const wrapped = new AggregateError([new Error('x'), new Error('y', { cause: inner })]);
    assert.equal(findErrorByCode(wrapped, 'EVENTBUS_TRANSPORT'), inner);
    assert.equal(findErrorByCode(wrapped, 'EVENTBUS_TIMEOUT'), undefined);
    assert.equal(isEventBusError(new Error('plain')), false);
  });
});

describe('stable hash routing', () => {
  it('is FNV-1a over the UTF-16LE bytes of the key (an independent byte-wise FNV-1a agrees)', () => {
    // Routing must not change between versions or processes: an aggregate's events would
    // land on another actor (or partition) after an upgrade. So the function is pinned to
    // the textbook FNV-1a, computed here byte by byte from Node's own UTF-16LE encoding.
    const reference = (key: string): number => {
      let hash = 0x811c9dc5;
      for (const byte of Buffer.from(key, 'utf16le')) hash = Math.imul(hash ^ byte, 0x01000193);
      return hash >>> 0;
    };
    for (const key of ['', 'a', 'order-1', 'foobar', '€uro', 'k\u{1F600}', 'x'.repeat(300)]) {
      assert.equal(fnv1a32(key), reference(key), `key ${JSON.stringify(key)}`);
    }
    assert.equal(fnv1a32(''), 0x811c9dc5, 'the FNV offset basis');
    assert.equal(fnv1a32('a'), 0x2b24d044, 'pinned: changing it reroutes every aggregate');
  });

  it('is unsigned and spreads keys', () => {
    const counts = new Array(16).fill(0);
    for (let i = 0; i < 16_000; i++) {
      const idx = actorIndexFor(`aggregate-${i}`, 16);
      assert.ok(idx >= 0 && idx < 16);
      counts[idx]++;
    }
    for (const c of counts) assert.ok(c > 700 && c < 1300, `uneven spread: ${counts.join(',')}`);
  });

  it('never goes negative for keys whose signed hash would', () => {
    for (let i = 0; i < 10_000; i++) assert.ok(fnv1a32(`k${i}\u{1F600}`) >= 0);
  });
});

describe('actor routing for prefix-sharing keys', () => {
  it('spreads keys whose last characters differ by multiples of 64 over 64 actors', () => {
    // FNV-1a alone sends these 16 keys to only 4 actors (its low bits follow the
    // last character's low bits); the murmur3 finaliser must spread them.
    const keys = Array.from({ length: 16 }, (_, j) => `order-${String.fromCharCode(48 + 64 * j)}`);
    const actors = new Set(keys.map((k) => actorIndexFor(k, 64)));
    assert.ok(actors.size >= 12, `16 keys landed on only ${actors.size} actors`);
  });
});
