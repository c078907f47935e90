/**
 * Store fixtures: every outbox test body runs against both stores, a fresh
 * in-process PGlite and a fresh database on a spawned PostgreSQL server (one
 * server per test file, started on first use; call `stopPostgres` in `after`).
 */
import { after } from 'node:test';
import type { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import type { EventBus } from '../../src/core/types.ts';
import { createPgOutboxStore } from '../../src/outbox/pg-store.ts';
import { createPgliteOutboxStore } from '../../src/outbox/pglite-store.ts';
import type { OutboxRelay } from '../../src/outbox/relay-options.ts';
import type { OutboxStore } from '../../src/outbox/types.ts';
import { pollUntil } from '../../src/testing/waiters.ts';
import { freshPglite } from '../harness/pglite-template.ts';
import { type PostgresServer, startPostgres } from '../harness/postgres.ts';

export interface StoreFixture {
  readonly kind: 'pglite' | 'postgres';
  /** A migrated store. */
  readonly store: OutboxStore<unknown>;
  /**
   * Another store on the same database, as a second process would have
   * (its own pool for PostgreSQL; PGlite is one in-process database).
   */
  openStore(): OutboxStore<unknown>;
  /** Ad-hoc SQL for assertions. */
  query<R = Record<string, unknown>>(text: string, params?: unknown[]): Promise<R[]>;
  close(): Promise<void>;
}

export interface StoreFactory {
  readonly kind: 'pglite' | 'postgres';
  create(): Promise<StoreFixture>;
}

let server: Promise<PostgresServer> | undefined;
let databases = 0;

export async function stopPostgres(): Promise<void> {
  const s = server;
  server = undefined;
  if (s) await (await s).stop();
}

function newPool(url: string, max = 10): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max });
  // Server-side terminations surface on idle clients; the test that caused them asserts on its own.
  pool.on('error', () => {});
  return pool;
}

/**
 * Loading even a copy takes about a second of CPU (Postgres starting in WASM),
 * and the outbox files create a fixture per test: a closed fixture's database
 * goes back here emptied (its schema dropped and created anew; migrate() runs
 * again when the next fixture takes it, a few milliseconds). A database a test closed, or
 * one the reset fails on, is dropped. A fixture is still a fresh, empty,
 * migrated outbox to the test that gets it.
 */
const idlePglites: PGlite[] = [];

// An idle database keeps the test process alive: close them all once every
// test of the file has run.
after(async () => {
  await Promise.all(idlePglites.splice(0).map((db) => db.close().catch(() => {})));
});

async function takePglite(): Promise<PGlite> {
  return idlePglites.pop() ?? freshPglite();
}

async function givePgliteBack(db: PGlite): Promise<void> {
  if (db.closed) return;
  try {
    // Tests create their own tables too: drop everything, the fixture migrates anew.
    await db.exec('DROP SCHEMA public CASCADE; CREATE SCHEMA public;');
    idlePglites.push(db);
  } catch {
    await db.close().catch(() => {});
  }
}

const pgliteFactory: StoreFactory = {
  kind: 'pglite',
  async create() {
    const db = await takePglite();
    const store = createPgliteOutboxStore(db) as OutboxStore<unknown>;
    await store.migrate();
    return {
      kind: 'pglite',
      store,
      openStore: () => createPgliteOutboxStore(db) as OutboxStore<unknown>,
      async query<R>(text: string, params?: unknown[]) {
        return (await db.query<R>(text, params)).rows;
      },
      close: () => givePgliteBack(db),
    };
  },
};

const postgresFactory: StoreFactory = {
  kind: 'postgres',
  async create() {
    server ??= startPostgres();
    const s = await server;
    const url = await s.createDatabase(`outbox_${process.pid}_${++databases}`);
    const pools: pg.Pool[] = [];
    const open = () => {
      const pool = newPool(url);
      pools.push(pool);
      return createPgOutboxStore(pool) as OutboxStore<unknown>;
    };
    const store = open();
    await store.migrate();
    const admin = newPool(url, 2);
    pools.push(admin);
    return {
      kind: 'postgres',
      store,
      openStore: open,
      async query<R>(text: string, params?: unknown[]) {
        return (await admin.query(text, params)).rows as R[];
      },
      async close() {
        await Promise.all(pools.map((p) => p.end()));
      },
    };
  },
};

export const storeFactories: readonly StoreFactory[] = [pgliteFactory, postgresFactory];

/** Runs `fn` with a fresh fixture and closes it afterwards. */
export async function withStore<T>(factory: StoreFactory, fn: (f: StoreFixture) => Promise<T>): Promise<T> {
  const fixture = await factory.create();
  try {
    return await fn(fixture);
  } finally {
    await fixture.close();
  }
}

/** `n` events for aggregate `aggregateId`, payload { aggregateId, index }. */
export function eventsFor(topic: string, aggregateId: string, from: number, n: number) {
  return Array.from({ length: n }, (_, k) => ({
    topic,
    envelope: {
      aggregateId,
      eventType: 'TestEvent',
      eventVersion: 1,
      payload: { aggregateId, index: from + k },
    },
  }));
}

/**
 * Waits until `condition` holds, re-checking after each `intervalMs`. This is
 * waiting for an observable state, with a deadline, not a sleep standing in for it.
 */
export function waitUntil(
  condition: () => boolean | Promise<boolean>,
  { timeoutMs = 30_000, intervalMs = 20, what = 'condition' } = {},
): Promise<void> {
  return pollUntil(condition, { what, timeoutMs, intervalMs });
}

/**
 * A relay crash at a known point: aborts `relay` (no clean shutdown: what it
 * sent but had not recorded stays leased) the moment `bus` reports the
 * `acks`-th successful publish; resolves then. Subscribe before starting the relay.
 */
export function abortAfterAcks(
  bus: EventBus,
  relay: Pick<OutboxRelay, 'abort'>,
  acks: number,
): Promise<void> {
  return new Promise<void>((resolve) => {
    const results = bus.publishResults();
    let acked = 0;
    void (async () => {
      for await (const r of results) {
        if (r.success && ++acked === acks) {
          relay.abort();
          results.close();
          resolve();
        }
      }
    })();
  });
}

/** Every row in the outbox as an expected event (aggregate, index from the payload). */
export async function expectedFromDb(f: StoreFixture) {
  const rows = await f.query<{ id: string; aggregate_id: string; index: number }>(
    "SELECT id, aggregate_id, (envelope->'payload'->>'index')::int AS index FROM eventbus_outbox ORDER BY seq",
  );
  return rows.map((r) => ({ eventId: r.id, aggregateId: r.aggregate_id, index: Number(r.index) }));
}

export async function unpublishedCount(f: StoreFixture): Promise<number> {
  const [row] = await f.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM eventbus_outbox WHERE published_at IS NULL',
  );
  return Number(row?.n ?? -1);
}

export interface LogEntry {
  readonly level: string;
  readonly msg: string | undefined;
  readonly fields: object;
}

/** A Logger that keeps what it is told, for assertions. */
export function captureLogger() {
  const entries: LogEntry[] = [];
  const at =
    (level: string) =>
    (obj: object | string, msg?: string): void => {
      entries.push(typeof obj === 'string' ? { level, msg: obj, fields: {} } : { level, msg, fields: obj });
    };
  return { entries, logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } };
}
