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
  it('is unsigned, deterministic and spreads keys', () => {
    assert.equal(fnv1a32(''), 0x811c9dc5);
    assert.equal(fnv1a32('order-1'), fnv1a32('order-1'));
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
