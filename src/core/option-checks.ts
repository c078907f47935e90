/**
 * The value checks every options resolver shares, beside the key check in
 * option-keys.ts: one wording for every rejected option
 * ("Expected `name` to be …, got …"), so a user reads the same sentence
 * whichever part of the library refused the value.
 */
import { InvalidArgumentError } from './errors.ts';

/** Largest delay setInterval/setTimeout accept (2^31 - 1 ms); larger values fire at once. */
export const MAX_TIMER_MS = 2_147_483_647;

/** Throws InvalidArgumentError: "Expected `name` to be <expected>, got <value>". */
export function failOption(name: string, expected: string, value: unknown): never {
  throw new InvalidArgumentError(`Expected \`${name}\` to be ${expected}, got ${describeValue(value)}`);
}

/** A value as an error message shows it: strings quoted, objects and functions by kind only. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return `${JSON.stringify(value)} (string)`;
  if (value === null) return '`null`';
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'object') return 'an object';
  return `\`${String(value)}\` (${typeof value})`;
}

/** A finite number in [min, max]. */
export function numberInRange(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    failOption(name, `a number from ${min} to ${max}`, value);
  }
  return value;
}

/** An integer in [min, max]. */
export function integerInRange(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    failOption(name, `an integer from ${min} to ${max}`, value);
  }
  return value;
}

/** `fallback` when `value` is undefined, else a positive safe integer. */
export function positiveInteger(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    failOption(name, 'a positive integer', value);
  }
  return value;
}

/** `fallback` when `value` is undefined, else a number in (0, 1]. */
export function fraction(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value > 0 && value <= 1)) failOption(name, 'a number in (0, 1]', value);
  return value;
}

export function nonEmptyString(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) failOption(name, 'a non-empty string', value);
  return value;
}
