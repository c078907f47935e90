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

/**
 * The claimable conditions, repeated on the locked row itself: when another
 * relay changed the row after our snapshot, Postgres re-checks exactly these
 * on the new version before granting the lock (so a head leased meanwhile is
 * skipped, never claimed twice).
 */
const claimableRow = `o.published_at IS NULL
    AND o.next_attempt_at <= now()
    AND (o.claimed_until IS NULL OR o.claimed_until < now())`;

/**
 * Step 1 of a claim, fast path: look for heads among the oldest $2 pending
 * rows (seq order), lock up to $1 of them. Cheap when most old rows are heads
 * (many aggregates, short backlogs).
 */
export const lockHeadsBySeq = `
  SELECT o.aggregate_id
  FROM eventbus_outbox o
  WHERE o.id IN (
      SELECT c.id
      FROM (
        SELECT id, aggregate_id, seq FROM eventbus_outbox
        WHERE published_at IS NULL
        ORDER BY seq
        LIMIT $2
      ) c
      -- A correlated scalar subquery: one index probe per candidate, never a join over the backlog.
      WHERE c.seq = (
        SELECT min(p.seq) FROM eventbus_outbox p
        WHERE p.aggregate_id = c.aggregate_id AND p.published_at IS NULL
      )
    )
    AND ${claimableRow}
  ORDER BY o.seq
  LIMIT $1
  FOR UPDATE OF o SKIP LOCKED`;

/**
 * Step 1 of a claim, when the fast path found too few: enumerate the
 * aggregates with pending rows by a skip scan of the (aggregate_id, seq)
 * index, take each one's head, lock the oldest $1 claimable ones. Costs one
 * index probe per pending aggregate however long the backlog is (the case
 * after a broker outage: few aggregates, many rows each).
 */
export const lockHeadsByAggregate = `
  WITH RECURSIVE aggregates(aggregate_id) AS (
    (SELECT aggregate_id FROM eventbus_outbox WHERE published_at IS NULL ORDER BY aggregate_id LIMIT 1)
    UNION ALL
    SELECT (
      SELECT e.aggregate_id FROM eventbus_outbox e
      WHERE e.published_at IS NULL AND e.aggregate_id > a.aggregate_id
      ORDER BY e.aggregate_id LIMIT 1
    )
    FROM aggregates a
    WHERE a.aggregate_id IS NOT NULL
  ), heads AS (
    SELECT h.id
    FROM aggregates a
    CROSS JOIN LATERAL (
      SELECT e.id FROM eventbus_outbox e
      WHERE e.aggregate_id = a.aggregate_id AND e.published_at IS NULL
      ORDER BY e.seq LIMIT 1
    ) h
    WHERE a.aggregate_id IS NOT NULL
  )
  SELECT o.aggregate_id
  FROM eventbus_outbox o
  WHERE o.id IN (SELECT id FROM heads)
    AND ${claimableRow}
  ORDER BY o.seq
  LIMIT $1
  FOR UPDATE OF o SKIP LOCKED`;

/**
 * Planner settings for the claim transaction only: queue tables change faster
 * than autovacuum's statistics, and stale estimates turn the bounded ordered
 * index scans above into bitmap scans plus sorts over the whole backlog.
 */
/**
 * Transaction-local settings of a claim: the planner hints, and a bound on how
 * long the claim may sit idle in its transaction ($1 ms, the lease). A relay
 * process stalled mid-claim (SIGSTOP, a long GC pause, a frozen VM) would
 * otherwise keep its row locks for good and block every other relay's writes
 * to those rows; PostgreSQL ends such a session after the lease instead.
 */
export const claimPlannerSettings = `
  SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_seqscan', 'off', true),
         set_config('idle_in_transaction_session_timeout', $1::text, true)`;

/**
 * Step 2 of a claim: lease a contiguous prefix of each locked aggregate's
 * pending rows (at most $5 each), breadth first (every head, then every
 * second row, ...), at most $2 rows in all. Reads at most $5 rows per
 * aggregate, however long its backlog.
 */
export const leasePrefixes = `
  WITH chosen AS (
    SELECT p.id
    FROM unnest($1::text[]) AS a(aggregate_id)
    CROSS JOIN LATERAL (
      SELECT x.id, x.seq, row_number() OVER (ORDER BY x.seq) AS rn
      FROM (
        SELECT e.id, e.seq FROM eventbus_outbox e
        WHERE e.aggregate_id = a.aggregate_id AND e.published_at IS NULL
        ORDER BY e.seq
        LIMIT $5
      ) x
    ) p
    ORDER BY p.rn, p.seq
    LIMIT $2
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
         COALESCE(EXTRACT(EPOCH FROM (now() - min(created_at))), 0)::float8 AS lag_seconds,
         (count(*) FILTER (WHERE attempts > 0))::integer AS failing,
         COALESCE(EXTRACT(EPOCH FROM (now() - min(created_at) FILTER (WHERE attempts > 0))), 0)::float8
           AS failing_age_seconds
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
