/**
 * The outbox/inbox schema as ordered migrations. Each migration is a list of
 * single statements (PGlite's extended protocol runs one statement per query),
 * applied once and recorded in `eventbus_migrations`. Never edit a shipped
 * migration: add a new one.
 */

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly statements: readonly string[];
}

export const MIGRATIONS_TABLE = 'eventbus_migrations';

/** Serialises concurrent `migrate()` calls across processes (pg_advisory_xact_lock key). */
export const MIGRATION_LOCK_KEY = 4_665_430_001;

export const createMigrationsTable = `CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE} (
  version integer PRIMARY KEY,
  name text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
)`;

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'outbox_and_inbox',
    statements: [
      `CREATE TABLE eventbus_outbox (
        id text PRIMARY KEY,
        topic text NOT NULL,
        aggregate_id text NOT NULL,
        event_type text NOT NULL,
        seq bigserial NOT NULL,
        envelope jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        published_at timestamptz,
        attempts integer NOT NULL DEFAULT 0,
        last_error text,
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        claimed_by text,
        claimed_until timestamptz
      )`,
      // The pending scan: oldest first, only unpublished rows are indexed.
      `CREATE INDEX eventbus_outbox_pending ON eventbus_outbox (seq) WHERE published_at IS NULL`,
      // Per-aggregate order: "is there an earlier unpublished row of this aggregate?"
      `CREATE INDEX eventbus_outbox_pending_aggregate ON eventbus_outbox (aggregate_id, seq)
        WHERE published_at IS NULL`,
      // Housekeeping: purging old published rows.
      `CREATE INDEX eventbus_outbox_published_at ON eventbus_outbox (published_at)
        WHERE published_at IS NOT NULL`,
      `CREATE TABLE eventbus_inbox (
        consumer text NOT NULL,
        event_id text NOT NULL,
        processed_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (consumer, event_id)
      )`,
      `CREATE INDEX eventbus_inbox_processed_at ON eventbus_inbox (processed_at)`,
    ],
  },
];
