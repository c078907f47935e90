import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Backoff, backoffDelay, resolveBackoff } from '../../src/core/backoff.ts';
import { InvalidArgumentError } from '../../src/core/errors.ts';
import { UnknownOptionError } from '../../src/core/option-keys.ts';

const defaults = { initialMs: 100, maxMs: 5_000, multiplier: 2, jitter: 0.2 };

describe('backoffDelay', () => {
  test('grows by the multiplier from initialMs and is capped at maxMs', () => {
    const noJitter = { ...defaults, jitter: 0 };
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7].map((n) => backoffDelay(n, noJitter)),
      [100, 200, 400, 800, 1600, 3200, 5000],
    );
    assert.equal(backoffDelay(3, { ...noJitter, multiplier: 3 }), 900);
  });

  test('takes the jitter fraction downwards, so the cap is never exceeded', () => {
    assert.equal(
      backoffDelay(1, defaults, () => 0),
      100,
    );
    assert.equal(
      backoffDelay(1, defaults, () => 0.5),
      90,
    );
    assert.equal(
      backoffDelay(30, defaults, () => 0),
      5000,
    );
  });
});

describe('Backoff', () => {
  test('next() grows per failure, reset() starts over', () => {
    const b = new Backoff({ ...defaults, jitter: 0 });
    assert.deepEqual([b.next(), b.next(), b.next()], [100, 200, 400]);
    assert.equal(b.failures, 3);
    b.reset();
    assert.equal(b.failures, 0);
    assert.equal(b.next(), 100);
  });
});

describe('resolveBackoff', () => {
  test('fills what is missing from the defaults; undefined gives the defaults', () => {
    assert.deepEqual(resolveBackoff('backoff', { maxMs: 900 }, defaults), { ...defaults, maxMs: 900 });
    assert.equal(resolveBackoff('backoff', undefined, defaults), defaults);
  });

  const rejected: Array<[string, unknown, RegExp]> = [
    ['a non-object', 5, /^Expected `backoff` to be an object/],
    ['an unknown key', { initalMs: 5 }, /Unknown option `backoff.initalMs`/],
    ['a negative delay', { initialMs: -1 }, /^Expected `backoff.initialMs` to be a number from 0/],
    ['a string delay', { maxMs: '100' }, /^Expected `backoff.maxMs` to be a number/],
    ['a multiplier below 1', { multiplier: 0.5 }, /^Expected `backoff.multiplier` to be a number from 1/],
    ['jitter above 1', { jitter: 2 }, /^Expected `backoff.jitter` to be a number from 0 to 1/],
    ['NaN', { initialMs: Number.NaN }, /^Expected `backoff.initialMs`/],
    ['maxMs below initialMs', { initialMs: 500, maxMs: 100 }, /^Expected `backoff.maxMs` to be at least/],
  ];
  for (const [name, input, message] of rejected) {
    test(`rejects ${name}`, () => {
      assert.throws(
        () => resolveBackoff('backoff', input, defaults),
        (error: unknown) => error instanceof InvalidArgumentError && message.test(error.message),
      );
    });
  }

  test('an unknown key is an UnknownOptionError naming the path', () => {
    assert.throws(
      () => resolveBackoff('outbox.backoff', { jiter: 0.1 }, defaults),
      (error: unknown) => error instanceof UnknownOptionError && error.option === 'outbox.backoff.jiter',
    );
  });
});
