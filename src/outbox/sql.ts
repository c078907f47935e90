/**
 * Every statement the outbox, relay and inbox run. One dialect (PostgreSQL);
 * the pg and PGlite adapters execute exactly these strings.
 *
 * Claiming and ordering (see relay.ts for the in-memory side):
 * - a row is claimable only when it is the *head* of its aggregate (no earlier
 *   unpublished row of the same aggregate), due (`next_attempt_at`), and not
 *   leased (`claimed_until` unset or past);
 * - heads are locked `FOR UPDATE SKIP LOCKED`, so concurrent relays never
 *   claim the same aggregate; the claimer then leases a contiguous prefix of
 *   each claimed aggregate's pending rows;
 * - while any of an aggregate's rows is leased its head is leased too, so no
 *   other relay can claim any row of it until the lease is settled or expires.
 */

/** Advisory-lock namespace for per-aggregate insert serialisation (two-key form). */
export const AGGREGATE_LOCK_CLASS = 1_163_280_944;

export const NOTIFY_CHANNEL = 'eventbus_outbox';

/**
 * Run inside the application's transaction before inserting: serialises
 * concurrent transactions that add events for the same aggregate (so `seq`
 * order = commit order per aggregate) and queues a NOTIFY that Postgres
 * delivers only if the transaction commits. Locks are taken in sorted order.
 */
export const lockAggregatesAndNotify = `
  SELECT pg_notify('${NOTIFY_CHANNEL}', ''), pg_advisory_xact_lock(${AGGREGATE_LOCK_CLASS}, hashtext(a))::text AS locked
  FROM (SELECT DISTINCT unnest($1::text[]) AS a ORDER BY 1) AS aggregates`;

export const insertRows = `
  INSERT INTO eventbus_outbox (id, topic, aggregate_id, event_type, envelope)
  SELECT id, topic, aggregate_id, event_type, envelope::jsonb
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
    WITH ORDINALITY AS r(id, topic, aggregate_id, event_type, envelope, ord)
  ORDER BY ord`;

/** Step 1 of a claim: lock the oldest claimable aggregate heads. */
export const lockHeads = `
  SELECT o.aggregate_id
  FROM eventbus_outbox o
  WHERE o.published_at IS NULL
    AND o.next_attempt_at <= now()
    AND (o.claimed_until IS NULL OR o.claimed_until < now())
    AND NOT EXISTS (
      SELECT 1 FROM eventbus_outbox p
      WHERE p.aggregate_id = o.aggregate_id AND p.published_at IS NULL AND p.seq < o.seq
    )
  ORDER BY o.seq
  LIMIT $1
  FOR UPDATE OF o SKIP LOCKED`;

/**
 * Step 2 of a claim: lease a contiguous prefix of each locked aggregate's
 * pending rows, breadth first (every head, then every second row, ...), at
 * most $2 rows in all.
 */
export const leasePrefixes = `
  WITH ranked AS (
    SELECT id, seq, row_number() OVER (PARTITION BY aggregate_id ORDER BY seq) AS rn
    FROM eventbus_outbox
    WHERE aggregate_id = ANY($1::text[]) AND published_at IS NULL
  ), chosen AS (
    SELECT id FROM ranked ORDER BY rn, seq LIMIT $2
  ), leased AS (
    UPDATE eventbus_outbox o
    SET claimed_by = $3, claimed_until = now() + $4::integer * interval '1 millisecond'
    FROM chosen
    WHERE o.id = chosen.id
    RETURNING o.id, o.topic, o.aggregate_id, o.seq, o.envelope, o.attempts
  )
  SELECT id, topic, aggregate_id, seq::text AS seq, envelope::text AS envelope, attempts
  FROM leased
  ORDER BY aggregate_id, seq`;

/** Broker acked: published. Clears the lease. */
export const markPublished = `
  UPDATE eventbus_outbox
  SET published_at = now(), claimed_by = NULL, claimed_until = NULL
  WHERE id = ANY($1::text[]) AND published_at IS NULL`;

/**
 * Gives rows back: clears the lease of $1 (held by $2); the failed row $3
 * (if any) also gets attempts+1, the error $4 and a retry time now + $5 ms.
 */
export const releaseRows = `
  UPDATE eventbus_outbox
  SET claimed_by = NULL,
      claimed_until = NULL,
      attempts = attempts + CASE WHEN id = $3 THEN 1 ELSE 0 END,
      last_error = CASE WHEN id = $3 THEN $4 ELSE last_error END,
      next_attempt_at = CASE WHEN id = $3 THEN now() + $5::integer * interval '1 millisecond'
                        ELSE next_attempt_at END
  WHERE id = ANY($1::text[]) AND claimed_by = $2 AND published_at IS NULL`;

/** Extends the lease of rows still held by $2; returns the ids that are still ours. */
export const renewLeases = `
  UPDATE eventbus_outbox
  SET claimed_until = now() + $3::integer * interval '1 millisecond'
  WHERE id = ANY($1::text[]) AND claimed_by = $2 AND published_at IS NULL
  RETURNING id`;

export const outboxStats = `
  SELECT count(*)::integer AS pending,
         COALESCE(EXTRACT(EPOCH FROM (now() - min(created_at))), 0)::float8 AS lag_seconds
  FROM eventbus_outbox
  WHERE published_at IS NULL`;

export const purgePublished = `
  DELETE FROM eventbus_outbox
  WHERE published_at IS NOT NULL AND published_at < now() - $1::bigint * interval '1 millisecond'`;

export const purgeInbox = `
  DELETE FROM eventbus_inbox WHERE processed_at < now() - $1::bigint * interval '1 millisecond'`;

export const inboxSavepoint = 'SAVEPOINT eventbus_process_once';
export const inboxRelease = 'RELEASE SAVEPOINT eventbus_process_once';
export const inboxRollback = 'ROLLBACK TO SAVEPOINT eventbus_process_once';
export const inboxInsert = `
  INSERT INTO eventbus_inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`;
