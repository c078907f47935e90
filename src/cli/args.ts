/** Small validators for command-line values; bad input is an InvalidArgumentError naming the flag. */
import { InvalidArgumentError } from '../core/errors.ts';
import type { StartAt } from './stream-reader.ts';

export function positiveInteger(value: string, flag: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n <= 0) {
    throw new InvalidArgumentError(`Expected ${flag} to be a positive integer, got "${value}"`);
  }
  return n;
}

export function startAt(value: string): StartAt {
  if (value === 'start' || value === 'new') return value;
  if (/^\d+$/.test(value)) return positiveInteger(value, '--from');
  throw new InvalidArgumentError(`Expected --from to be start, new or a stream sequence, got "${value}"`);
}

export function requireTopic(positionals: readonly string[], command: string): string {
  const [topic, ...extra] = positionals;
  if (topic === undefined) throw new InvalidArgumentError(`Expected a topic: eventbus ${command} <topic>`);
  if (extra.length > 0) {
    throw new InvalidArgumentError(
      `Expected one topic for eventbus ${command}, got ${positionals.join(' ')}`,
    );
  }
  return topic;
}
