/**
 * The shared check every options object goes through: keys the library does
 * not know are rejected, naming the key and the valid ones, so a typo
 * (`nats: { server }`, `stream: { maxAge }`) never silently falls back to a
 * default. The valid keys are declared as `optionKeys<T>({ a: true, … })`,
 * which does not compile when it misses or invents a key of the option type,
 * so the list cannot drift from the documented interface.
 */
import { InvalidArgumentError } from './errors.ts';

/** An option name the library does not know, at `option` (e.g. `nats.stream.maxAge`). */
export class UnknownOptionError extends InvalidArgumentError {
  /** The full path of the unknown key, e.g. `nats.stream.maxAge`. */
  readonly option: string;
  /** The valid keys at that level. */
  readonly validOptions: readonly string[];

  constructor(option: string, validOptions: readonly string[]) {
    super(`Unknown option \`${option}\`; valid options here: ${validOptions.join(', ')}`);
    this.name = 'UnknownOptionError';
    this.option = option;
    this.validOptions = validOptions;
  }
}

/** The keys of `T`, spelled out once; a missing or extra key is a compile error. */
export function optionKeys<T extends object>(
  keys: { readonly [K in keyof Required<T>]: true },
): readonly string[] {
  return Object.keys(keys);
}

/**
 * Throws UnknownOptionError for the first own key of `value` not in `known`.
 * `path` is where `value` sits (`''` for the top level, `'nats.stream'`).
 * Non-objects are left to the caller's type checks.
 */
export function rejectUnknownKeys(path: string, value: unknown, known: readonly string[]): void {
  if (typeof value !== 'object' || value === null) return;
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) throw new UnknownOptionError(path === '' ? key : `${path}.${key}`, known);
  }
}
