import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidArgumentError } from '../../src/core/errors.ts';
import {
  fraction,
  integerInRange,
  nonEmptyString,
  numberInRange,
  positiveInteger,
} from '../../src/core/option-checks.ts';

function rejects(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (error: unknown) => error instanceof InvalidArgumentError && message.test(error.message));
}

describe('option checks', () => {
  test('positiveInteger: the fallback for undefined, the value when valid', () => {
    assert.equal(positiveInteger('batchSize', undefined, 1000), 1000);
    assert.equal(positiveInteger('batchSize', 7, 1000), 7);
    rejects(
      () => positiveInteger('batchSize', 0, 1),
      /^Expected `batchSize` to be a positive integer, got `0`/,
    );
    rejects(() => positiveInteger('batchSize', 1.5, 1), /positive integer/);
    rejects(() => positiveInteger('batchSize', '3', 1), /got "3" \(string\)$/);
  });

  test('fraction: (0, 1]', () => {
    assert.equal(fraction('ratio', undefined, 0.5), 0.5);
    assert.equal(fraction('ratio', 1, 0.5), 1);
    rejects(() => fraction('ratio', 0, 0.5), /^Expected `ratio` to be a number in \(0, 1\]/);
    rejects(() => fraction('ratio', 1.1, 0.5), /in \(0, 1\]/);
  });

  test('ranges and strings', () => {
    assert.equal(numberInRange('x', 0.5, 0, 1), 0.5);
    rejects(
      () => numberInRange('x', Number.POSITIVE_INFINITY, 0, 1),
      /^Expected `x` to be a number from 0 to 1/,
    );
    assert.equal(integerInRange('n', 3, 1, 5), 3);
    rejects(
      () => integerInRange('n', 6, 1, 5),
      /^Expected `n` to be an integer from 1 to 5, got `6` \(number\)$/,
    );
    assert.equal(nonEmptyString('topic', 't'), 't');
    rejects(() => nonEmptyString('topic', ''), /^Expected `topic` to be a non-empty string/);
    rejects(() => nonEmptyString('topic', null), /got `null`$/);
  });
});
