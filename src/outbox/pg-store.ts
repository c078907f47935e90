/** The PostgreSQL adapter (`pg`): a Pool for the relay, the caller's client for `add`/`processOnce`. */
import { InvalidArgumentError } from '../core/errors.ts';
import { createOutboxStore, type Driver } from './store.ts';
import type { OutboxStore, OutboxStoreOptions, SqlExecutor } from './types.ts';

/*
 * The parts of `pg` this adapter uses, declared structurally: a pg.Pool and
 * its clients satisfy them, and the published types do not import `pg`, so a
 * user's type-check needs neither pg nor @types/pg unless they use them.
 */

/** The part of a pg client (Client, PoolClient) or Pool that runs a statement. */
export interface PgQueryable {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[]; rowCount: number | null }>;
}

/** A pg PoolClient: released to its pool, and the LISTEN connection's events. */
export interface PgPoolClient extends PgQueryable {
  release(error?: Error | boolean): void;
  on(event: 'notification', listener: (message: { channel: string }) => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  off(event: 'notification', listener: (message: { channel: string }) => void): unknown;
  off(event: 'error', listener: (error: Error) => void): unknown;
}

/** A pg.Pool, as far as the outbox uses it. */
export interface PgPool extends PgQueryable {
  connect(): Promise<PgPoolClient>;
}

/** What `add`/`processOnce` take with pg: a client (e.g. a PoolClient) inside BEGIN … COMMIT. */
export type PgTransaction = PgQueryable;

type Queryable = PgQueryable;

function executor(client: Queryable): SqlExecutor {
  return {
    async query<R>(text: string, params?: readonly unknown[]) {
      const result = await client.query(text, params as unknown[] | undefined);
      return { rows: result.rows as R[], affectedRows: result.rowCount ?? 0 };
    },
  };
}

function pgDriver(pool: PgPool): Driver<PgTransaction> {
  return {
    kind: 'pg',
    db: executor(pool),
    executor,
    async transaction<T>(fn: (tx: PgTransaction, q: SqlExecutor) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      let broken: Error | undefined;
      // A connection lost while checked out is emitted as 'error' on the client;
      // without a listener that kills the process (the pool's own listener only
      // covers idle clients). The failing query rejects as well, so the error is
      // only recorded here, and the client discarded on release.
      const onClientError = (error: Error): void => {
        broken ??= error;
      };
      client.on('error', onClientError);
      try {
        await client.query('BEGIN');
        const result = await fn(client, executor(client));
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch((rollbackError: Error) => {
          broken = rollbackError;
        });
        throw error;
      } finally {
        client.off('error', onClientError);
        // Errors after release reach the pool's listener (idle clients).
        client.release(broken);
      }
    },
    async listen(channel, onNotify, onError) {
      const client: PgPoolClient = await pool.connect();
      let released = false;
      const release = (error?: Error) => {
        if (released) return;
        released = true;
        client.off('notification', onNotification);
        client.off('error', onClientError);
        client.release(error);
      };
      const onNotification = (msg: { channel: string }) => {
        if (msg.channel === channel) onNotify();
      };
      const onClientError = (error: Error) => {
        release(error);
        onError(error);
      };
      client.on('notification', onNotification);
      client.on('error', onClientError);
      try {
        await client.query(`LISTEN ${channel}`);
      } catch (error) {
        release(error as Error);
        throw error;
      }
      return async () => {
        if (released) return;
        try {
          await client.query(`UNLISTEN ${channel}`);
          release();
        } catch (error) {
          release(error as Error);
        }
      };
    },
  };
}

/**
 * An outbox/inbox store on PostgreSQL through a `pg` Pool. The relay uses the
 * pool (one extra connection is held for LISTEN while a relay listens); the
 * application passes its own client, inside its transaction, to `add` and
 * `processOnce`.
 */
export function createPgOutboxStore(pool: PgPool, options?: OutboxStoreOptions): OutboxStore<PgTransaction> {
  if (typeof pool !== 'object' || pool === null || typeof pool.connect !== 'function') {
    throw new InvalidArgumentError(`Expected a pg.Pool, got ${String(pool)}`);
  }
  return createOutboxStore(pgDriver(pool), options);
}
