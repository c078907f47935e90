/**
 * The oldest Node.js this library runs on. Older versions fail later in
 * confusing ways (`Promise.withResolvers is not a function`, no
 * `Symbol.asyncDispose`), so entry points check first and say what is needed.
 */
import { UnsupportedRuntimeError } from './errors.ts';

/** Keep in step with `engines.node` in package.json. */
export const minimumNodeMajor = 24;

export function assertSupportedRuntime(version: string = process.versions.node): void {
  const major = Number(version.split('.')[0]);
  if (!(major >= minimumNodeMajor)) {
    throw new UnsupportedRuntimeError(
      `Expected Node.js ${minimumNodeMajor} or newer (package.json engines), got ${version}: upgrade Node.js`,
    );
  }
}
