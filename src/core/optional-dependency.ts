/**
 * Broker clients and database drivers are optional peer dependencies: a
 * NATS-only service should not install Kafka's client or PGlite. They are
 * imported on first use, and a missing one becomes a MissingDependencyError
 * naming the package to install instead of a bare ERR_MODULE_NOT_FOUND.
 */
import { MissingDependencyError } from './errors.ts';

/** Imports `packageName`; `feature` says what needs it ("the Kafka transport"). */
export async function importOptional<T>(packageName: string, feature: string): Promise<T> {
  try {
    return (await import(packageName)) as T;
  } catch (error) {
    if (isMissingPackage(error, packageName))
      throw new MissingDependencyError(packageName, feature, { cause: error });
    throw error;
  }
}

/**
 * True when `error` says `packageName` itself cannot be found (not one of its
 * own imports failing, which is a broken install and must surface as is).
 */
export function isMissingPackage(error: unknown, packageName: string): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, message } = error as { code?: unknown; message?: unknown };
  return (
    code === 'ERR_MODULE_NOT_FOUND' && typeof message === 'string' && message.includes(`'${packageName}'`)
  );
}
