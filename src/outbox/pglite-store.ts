/** The embedded adapter (PGlite): the same SQL, in-process. */
import { InvalidArgumentError } from '../core/errors.ts';
import { createOutboxStore, type Driver } from './store.ts';
import type { OutboxStore, OutboxStoreOptions, SqlExecutor } from './types.ts';

/*
 * The parts of PGlite this adapter uses, declared structurally so that the
 * published types do not import @electric-sql/pglite (an optional peer
 * dependency): a PGlite instance and its transactions satisfy them.
 */

/** A PGlite instance or transaction, as far as running a statement goes. */
export interface PgliteQueryable {
  query<R>(text: string, params?: unknown[]): Promise<{ rows: R[]; affectedRows?: number }>;
}

/** A PGlite instance, as far as the outbox uses it. */
export interface PgliteDatabase extends PgliteQueryable {
  readonly closed: boolean;
  transaction<T>(callback: (tx: PgliteQueryable) => Promise<T>): Promise<T>;
  listen(channel: string, callback: (payload: string) => void): Promise<() => Promise<void>>;
}

/** What `add`/`processOnce` take with PGlite: the `tx` of `db.transaction(async (tx) => …)`. */
export type PgliteTransaction = PgliteQueryable;

function executor(tx: PgliteQueryable): SqlExecutor {
  return {
    async query<R>(text: string, params?: readonly unknown[]) {
      const result = await tx.query<R>(text, params as unknown[] | undefined);
      return { rows: result.rows, affectedRows: result.affectedRows ?? 0 };
    },
  };
}

function pgliteDriver(db: PgliteDatabase): Driver<PgliteTransaction> {
  return {
    kind: 'pglite',
    db: executor(db),
    executor,
    transaction<T>(fn: (tx: PgliteTransaction, q: SqlExecutor) => Promise<T>): Promise<T> {
      return db.transaction((tx) => fn(tx, executor(tx)));
    },
    async listen(channel, onNotify) {
      const unsubscribe = await db.listen(channel, () => onNotify());
      return async () => {
        if (!db.closed) await unsubscribe();
      };
    },
  };
}

/**
 * An outbox/inbox store on PGlite (embedded Postgres). PGlite runs one
 * transaction at a time, so several relays on one PGlite are safe (and
 * serialised); the SQL is the one the PostgreSQL adapter runs.
 */
export function createPgliteOutboxStore(
  db: PgliteDatabase,
  options?: OutboxStoreOptions,
): OutboxStore<PgliteTransaction> {
  if (typeof db !== 'object' || db === null || typeof db.transaction !== 'function') {
    throw new InvalidArgumentError(`Expected a PGlite instance, got ${String(db)}`);
  }
  return createOutboxStore(pgliteDriver(db), options);
}
