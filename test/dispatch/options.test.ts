import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidArgumentError } from '../../src/core/errors.ts';
import { silentLogger } from '../../src/core/logger.ts';
import type { SubscribeOptions } from '../../src/core/types.ts';
import { type PoolHooks, poolDefaults, resolvePoolOptions } from '../../src/dispatch/options.ts';
import { recordingMetrics } from './helpers.ts';

const hooks: PoolHooks = {
  deadLetter: () => Promise.resolve(),
  metrics: recordingMetrics(),
  logger: silentLogger,
};

describe('resolvePoolOptions', () => {
  test('fills every default in one place', () => {
    const o = resolvePoolOptions('orders', 'g1', 'envelope', {}, hooks);
    assert.equal(o.topic, 'orders');
    assert.equal(o.group, 'g1');
    assert.equal(o.kind, 'envelope');
    assert.equal(o.actors, 64);
    assert.equal(o.inboxSize, 64);
    assert.equal(o.handlerTimeoutMs, 20_000);
    assert.equal(o.maxAttempts, 5);
    assert.deepEqual(o.backoff, { initialMs: 100, maxMs: 5_000, multiplier: 2, jitter: 0.2 });
    assert.equal(o.deadLetterPolicy, 'continue');
    assert.equal(o.workingIntervalMs, 10_000);
    assert.equal(o.deadLetter, hooks.deadLetter);
    assert.equal(o.metrics, hooks.metrics);
    assert.equal(o.logger, hooks.logger);
    assert.equal('sleep' in o, false);
    assert.equal(poolDefaults.actors, 64);
  });

  test('takes user options and hooks over the defaults', () => {
    const sleep = (): Promise<void> => Promise.resolve();
    const o = resolvePoolOptions(
      'orders',
      'g1',
      'raw',
      {
        actors: 8,
        inboxSize: 16,
        handlerTimeoutMs: 500,
        maxAttempts: 3,
        backoff: { initialMs: 10, jitter: 0 },
        deadLetterPolicy: 'park',
      },
      { ...hooks, workingIntervalMs: 250, sleep },
    );
    assert.equal(o.kind, 'raw');
    assert.equal(o.actors, 8);
    assert.equal(o.inboxSize, 16);
    assert.equal(o.handlerTimeoutMs, 500);
    assert.equal(o.maxAttempts, 3);
    assert.deepEqual(o.backoff, { initialMs: 10, maxMs: 5_000, multiplier: 2, jitter: 0 });
    assert.equal(o.deadLetterPolicy, 'park');
    assert.equal(o.workingIntervalMs, 250);
    assert.equal(o.sleep, sleep);
  });

  const invalid: Array<[string, SubscribeOptions, RegExp]> = [
    ['actors 0', { actors: 0 }, /^Expected `actors` to be an integer from 1 to 65536, got `0` \(number\)$/],
    ['actors 1.5', { actors: 1.5 }, /^Expected `actors` to be an integer .*, got `1\.5` \(number\)$/],
    [
      'inboxSize string',
      { inboxSize: '8' as unknown as number },
      /^Expected `inboxSize` .*, got "8" \(string\)$/,
    ],
    ['handlerTimeoutMs NaN', { handlerTimeoutMs: Number.NaN }, /^Expected `handlerTimeoutMs` to be a number/],
    ['handlerTimeoutMs 0', { handlerTimeoutMs: 0 }, /^Expected `handlerTimeoutMs` .*, got `0` \(number\)$/],
    ['maxAttempts 0', { maxAttempts: 0 }, /^Expected `maxAttempts` to be an integer from 1/],
    ['backoff.initialMs -1', { backoff: { initialMs: -1 } }, /^Expected `backoff\.initialMs`/],
    ['backoff.multiplier 0.5', { backoff: { multiplier: 0.5 } }, /^Expected `backoff\.multiplier`/],
    [
      'backoff.jitter 2',
      { backoff: { jitter: 2 } },
      /^Expected `backoff\.jitter` to be a number from 0 to 1/,
    ],
    [
      'backoff.maxMs below initialMs',
      { backoff: { initialMs: 500, maxMs: 100 } },
      /^Expected `backoff\.maxMs` to be at least `backoff\.initialMs` \(500\), got `100` \(number\)$/,
    ],
    [
      'deadLetterPolicy',
      { deadLetterPolicy: 'drop' as 'park' },
      /^Expected `deadLetterPolicy` to be 'continue' or 'park', got "drop" \(string\)$/,
    ],
    [
      'backoff null',
      { backoff: null as unknown as object },
      /^Expected `backoff` to be an object, got `null`$/,
    ],
  ];
  for (const [name, user, message] of invalid) {
    test(`rejects ${name} with InvalidArgumentError`, () => {
      assert.throws(
        () => resolvePoolOptions('orders', 'g1', 'envelope', user, hooks),
        (error: unknown) => error instanceof InvalidArgumentError && message.test(error.message),
      );
    });
  }

  test('rejects bad arguments and hooks', () => {
    const check = (fn: () => unknown, message: RegExp): void => {
      assert.throws(
        fn,
        (error: unknown) => error instanceof InvalidArgumentError && message.test(error.message),
      );
    };
    check(
      () => resolvePoolOptions('', 'g1', 'envelope', {}, hooks),
      /^Expected `topic` to be a non-empty string/,
    );
    check(() => resolvePoolOptions('t', '', 'envelope', {}, hooks), /^Expected `group`/);
    check(
      () => resolvePoolOptions('t', 'g', 'json' as 'raw', {}, hooks),
      /^Expected `kind` to be 'envelope' or 'raw', got "json"/,
    );
    check(
      () => resolvePoolOptions('t', 'g', 'raw', {}, { ...hooks, deadLetter: undefined as never }),
      /^Expected `deadLetter` to be a function, got `undefined` \(undefined\)$/,
    );
    check(
      () => resolvePoolOptions('t', 'g', 'raw', {}, { ...hooks, workingIntervalMs: -5 }),
      /^Expected `workingIntervalMs` to be a number from 1/,
    );
  });
});
