/**
 * The store logic shared by the pg and PGlite adapters: migrations, `add`,
 * the relay's claim/mark/release/renew statements and the inbox. An adapter
 * only supplies a {@link Driver}: how to run a statement, a transaction and
 * LISTEN.
 */
import {
  createEnvelope,
  type Envelope,
  encodedSize,
  encodeEnvelope,
  envelopeHeaders,
} from '../core/envelope.ts';
import { InvalidArgumentError, PayloadTooLargeError } from '../core/errors.ts';
import { createMigrationsTable, MIGRATION_LOCK_KEY, MIGRATIONS_TABLE, migrations } from './schema.ts';
import * as sql from './sql.ts';
import type {
  ClaimedRow,
  OutboxMessage,
  OutboxStats,
  OutboxStore,
  OutboxStoreOptions,
  ProcessOnceOptions,
  ReleaseFailure,
  SqlExecutor,
} from './types.ts';

export interface Driver<Tx> {
  readonly kind: 'pg' | 'pglite';
  /** Runs statements outside any caller transaction (autocommit). */
  readonly db: SqlExecutor;
  /** Runs statements on the caller's transaction handle. */
  executor(tx: Tx): SqlExecutor;
  transaction<T>(fn: (tx: Tx, q: SqlExecutor) => Promise<T>): Promise<T>;
  listen(
    channel: string,
    onNotify: () => void,
    onError: (error: Error) => void,
  ): Promise<() => Promise<void>>;
}

const decoder = new TextDecoder();
/** The bus's topic rule (create-event-bus.ts). */
const TOPIC_PATTERN = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
const DEFAULT_MAX_ENVELOPE_BYTES = 1024 * 1024;

/**
 * Headers the relay's publish adds beyond the envelope's own: Nats-Msg-Id,
 * the NATS header block's framing (`NATS/1.0\r\n` … `\r\n`) and room for a
 * W3C trace context (traceparent + tracestate) injected from an active span.
 */
const TRANSPORT_HEADER_ALLOWANCE = 12 + 256;

/** The size the broker will see: body plus headers, as the bus sends a relayed row. */
function wireSize(encoded: Uint8Array, envelope: Envelope): number {
  const headers = { ...envelopeHeaders(envelope), 'Nats-Msg-Id': envelope.eventId };
  return encodedSize(encoded, headers) + TRANSPORT_HEADER_ALLOWANCE;
}

interface ClaimedRowSql {
  id: string;
  topic: string;
  aggregate_id: string;
  seq: string;
  envelope: string;
  attempts: number;
}

function nonNegativeMs(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidArgumentError(`Expected \`${name}\` to be an integer >= 0 (ms), got ${String(value)}`);
  }
  return value;
}

/** Postgres "no active SQL transaction" (SAVEPOINT outside BEGIN). */
function isNoTransaction(error: unknown): boolean {
  return (
    typeof error === 'object' &&
    error !== null &&
    ((error as { code?: unknown }).code === '25P01' ||
      /can only be used in transaction blocks/.test(String((error as { message?: unknown }).message)))
  );
}

export function createOutboxStore<Tx>(driver: Driver<Tx>, options: OutboxStoreOptions = {}): OutboxStore<Tx> {
  const maxEnvelopeBytes = options.maxEnvelopeBytes ?? DEFAULT_MAX_ENVELOPE_BYTES;
  if (!Number.isSafeInteger(maxEnvelopeBytes) || maxEnvelopeBytes <= 0) {
    throw new InvalidArgumentError(
      `Expected \`maxEnvelopeBytes\` to be a positive integer, got ${String(maxEnvelopeBytes)}`,
    );
  }
  const lockAggregates = options.lockAggregates ?? true;
  const { db } = driver;

  return {
    kind: driver.kind,

    async migrate() {
      return driver.transaction(async (_tx, q) => {
        await q.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})::text`);
        await q.query(createMigrationsTable);
        const done = await q.query<{ version: number }>(`SELECT version FROM ${MIGRATIONS_TABLE}`);
        const have = new Set(done.rows.map((r) => Number(r.version)));
        const applied: string[] = [];
        for (const m of migrations) {
          if (have.has(m.version)) continue;
          for (const statement of m.statements) await q.query(statement);
          await q.query(`INSERT INTO ${MIGRATIONS_TABLE} (version, name) VALUES ($1, $2)`, [
            m.version,
            m.name,
          ]);
          applied.push(`${m.version}_${m.name}`);
        }
        return { applied };
      });
    },

    async add<P>(tx: Tx, messages: readonly OutboxMessage<P>[]): Promise<Envelope<P>[]> {
      if (!Array.isArray(messages)) {
        throw new InvalidArgumentError(
          `Expected outbox.add(tx, messages) to get an array of { topic, envelope }, got ${typeof messages}`,
        );
      }
      if (messages.length === 0) return [];
      const ids: string[] = [];
      const topics: string[] = [];
      const aggregates: string[] = [];
      const types: string[] = [];
      const bodies: string[] = [];
      const envelopes: Envelope<P>[] = [];
      const seen = new Set<string>();
      messages.forEach((message, i) => {
        if (typeof message !== 'object' || message === null) {
          throw new InvalidArgumentError(
            `Expected messages[${i}] to be { topic, envelope }, got ${String(message)}`,
          );
        }
        if (
          typeof message.topic !== 'string' ||
          message.topic.length > 200 ||
          !TOPIC_PATTERN.test(message.topic)
        ) {
          // Rejected here, in the application's transaction: the relay could never publish it.
          throw new InvalidArgumentError(
            `Expected messages[${i}].topic to be dot-separated tokens of [A-Za-z0-9_-] (at most 200 characters), got ${JSON.stringify(message.topic)}`,
          );
        }
        const envelope = createEnvelope<P>(message.envelope);
        if (seen.has(envelope.eventId)) {
          throw new InvalidArgumentError(`Expected distinct eventIds, got ${envelope.eventId} twice`);
        }
        seen.add(envelope.eventId);
        const encoded = encodeEnvelope(envelope as Envelope);
        const size = wireSize(encoded, envelope as Envelope);
        if (size > maxEnvelopeBytes) {
          // Refused in the application's transaction: the broker could never take it,
          // and in the outbox it would block its aggregate for good.
          throw new PayloadTooLargeError(
            size,
            maxEnvelopeBytes,
            `outbox row messages[${i}] (eventId ${envelope.eventId}, aggregate "${envelope.aggregateId}", topic ${message.topic}), envelope body and headers as sent,`,
          );
        }
        ids.push(envelope.eventId);
        topics.push(message.topic);
        aggregates.push(envelope.aggregateId);
        types.push(envelope.eventType);
        bodies.push(decoder.decode(encoded));
        envelopes.push(envelope);
      });
      const q = driver.executor(tx);
      if (lockAggregates) await q.query(sql.lockAggregatesAndNotify, [aggregates]);
      else await q.query(`SELECT pg_notify('${sql.NOTIFY_CHANNEL}', '')::text`);
      await q.query(sql.insertRows, [ids, topics, aggregates, types, bodies]);
      return envelopes;
    },

    transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
      return driver.transaction((tx) => fn(tx));
    },

    async processOnce(
      tx: Tx,
      eventId: string,
      fn: (tx: Tx) => Promise<void> | void,
      opts: ProcessOnceOptions,
    ): Promise<boolean> {
      if (typeof eventId !== 'string' || eventId.length === 0) {
        throw new InvalidArgumentError(
          `Expected eventId to be a non-empty string, got ${JSON.stringify(eventId)}`,
        );
      }
      if (typeof opts?.consumer !== 'string' || opts.consumer.length === 0) {
        throw new InvalidArgumentError(
          `Expected options.consumer to be a non-empty string, got ${JSON.stringify(opts?.consumer)}`,
        );
      }
      const q = driver.executor(tx);
      try {
        await q.query(sql.inboxSavepoint);
      } catch (error) {
        if (isNoTransaction(error)) {
          throw new InvalidArgumentError(
            'Expected processOnce(tx, …) to run inside a transaction (BEGIN … COMMIT or store.transaction)',
            { cause: error },
          );
        }
        throw error;
      }
      try {
        const inserted = await q.query(sql.inboxInsert, [opts.consumer, eventId]);
        if (inserted.affectedRows === 0) {
          await q.query(sql.inboxRelease);
          return false;
        }
        await fn(tx);
        await q.query(sql.inboxRelease);
        return true;
      } catch (error) {
        // Undo the inbox record and fn's writes together, even if the caller then commits.
        await q.query(sql.inboxRollback).catch(() => {});
        throw error;
      }
    },

    async claim(relayId: string, limit: number, leaseMs: number): Promise<ClaimedRow[]> {
      if (limit <= 0) return [];
      const rows = await driver.transaction(async (_tx, q) => {
        await q.query(sql.claimPlannerSettings, [String(Math.max(1_000, leaseMs))]);
        let heads = await q.query<{ aggregate_id: string }>(sql.lockHeadsBySeq, [limit, limit * 2 + 64]);
        if (heads.rows.length < limit) {
          // The oldest rows are mostly behind held heads: find heads per aggregate instead.
          // (Rows locked by the first query stay locked by us; they are found again.)
          heads = await q.query<{ aggregate_id: string }>(sql.lockHeadsByAggregate, [limit]);
        }
        if (heads.rows.length === 0) return [];
        const aggregates = heads.rows.map((r) => r.aggregate_id);
        const perAggregate = Math.ceil(limit / aggregates.length);
        const leased = await q.query<ClaimedRowSql>(sql.leasePrefixes, [
          aggregates,
          limit,
          relayId,
          leaseMs,
          perAggregate,
        ]);
        return leased.rows;
      });
      return rows.map((r) => ({
        id: r.id,
        topic: r.topic,
        aggregateId: r.aggregate_id,
        seq: BigInt(r.seq),
        envelope: r.envelope,
        attempts: Number(r.attempts),
      }));
    },

    async markPublished(ids: readonly string[]): Promise<number> {
      if (ids.length === 0) return 0;
      return (await db.query(sql.markPublished, [ids])).affectedRows;
    },

    async release(relayId: string, ids: readonly string[], failure?: ReleaseFailure): Promise<number> {
      if (ids.length === 0) return 0;
      const result = await db.query(sql.releaseRows, [
        ids,
        relayId,
        failure?.id ?? null,
        failure?.error ?? null,
        Math.max(0, Math.round(failure?.retryDelayMs ?? 0)),
      ]);
      return result.affectedRows;
    },

    async renewLeases(relayId: string, ids: readonly string[], leaseMs: number): Promise<string[]> {
      if (ids.length === 0) return [];
      const result = await db.query<{ id: string }>(sql.renewLeases, [ids, relayId, leaseMs]);
      return result.rows.map((r) => r.id);
    },

    async stats(): Promise<OutboxStats> {
      const result = await db.query<{
        pending: number;
        lag_seconds: number;
        failing: number;
        failing_age_seconds: number;
      }>(sql.outboxStats);
      const row = result.rows[0];
      return {
        pending: Number(row?.pending ?? 0),
        lagSeconds: Number(row?.lag_seconds ?? 0),
        failing: Number(row?.failing ?? 0),
        oldestFailingSeconds: Number(row?.failing_age_seconds ?? 0),
      };
    },

    listen(onNotify: () => void, onError: (error: Error) => void) {
      return driver.listen(sql.NOTIFY_CHANNEL, onNotify, onError);
    },

    async purgePublished(opts: { readonly olderThanMs: number }): Promise<number> {
      const ms = nonNegativeMs('olderThanMs', opts?.olderThanMs);
      return (await db.query(sql.purgePublished, [ms])).affectedRows;
    },

    async purgeInbox(opts: { readonly olderThanMs: number }): Promise<number> {
      const ms = nonNegativeMs('olderThanMs', opts?.olderThanMs);
      return (await db.query(sql.purgeInbox, [ms])).affectedRows;
    },
  };
}
