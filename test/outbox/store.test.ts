/**
 * Store-level tests: schema, `add` inside the caller's transaction, the claim
 * protocol (head-only, SKIP LOCKED, leases, backoff) and the inbox. Every
 * body runs against PGlite and a spawned PostgreSQL.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createEnvelope, encodeEnvelope } from '../../src/core/envelope.ts';
import { PayloadTooLargeError, ValidationError } from '../../src/core/errors.ts';
import { eventsFor, stopPostgres, storeFactories, waitUntil, withStore } from './fixtures.ts';

after(stopPostgres);

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

for (const factory of storeFactories) {
  describe(`outbox store (${factory.kind})`, () => {
    test('migrate is idempotent, also when run concurrently on an empty database', () =>
      withStore(factory, async (f) => {
        assert.deepEqual(await f.store.migrate(), { applied: [] });
        await f.query('DROP TABLE eventbus_outbox, eventbus_inbox, eventbus_migrations');
        const other = f.openStore();
        const results = await Promise.all([f.store.migrate(), other.migrate(), f.store.migrate()]);
        assert.deepEqual(
          results.map((r) => r.applied.length).sort(),
          [0, 0, 1],
          'exactly one migrate call applies the schema',
        );
        const versions = await f.query<{ version: number }>('SELECT version FROM eventbus_migrations');
        assert.deepEqual(
          versions.map((v) => Number(v.version)),
          [1],
        );
        assert.deepEqual(await f.store.migrate(), { applied: [] });
      }));

    test('add fills eventId (UUIDv7) and timestamp, stores the envelope, keeps insert order', () =>
      withStore(factory, async (f) => {
        // Byte payloads must be UTF-8 JSON: they travel inline, as the Go SDK's json.RawMessage.
        const bytes = Buffer.from('{"name":"a.txt","size":4}');
        const envelopes = await f.store.transaction((tx) =>
          f.store.add<unknown>(tx, [
            ...eventsFor('orders', 'order-1', 0, 3),
            {
              topic: 'files',
              envelope: { aggregateId: 'file-1', eventType: 'Uploaded', eventVersion: 2, payload: bytes },
            },
          ]),
        );
        assert.equal(envelopes.length, 4);
        for (const e of envelopes) {
          assert.match(e.eventId, UUID_V7);
          assert.ok(!Number.isNaN(Date.parse(e.timestamp)));
        }
        const rows = await f.query<{ id: string; topic: string; aggregate_id: string; event_type: string }>(
          'SELECT id, topic, aggregate_id, event_type FROM eventbus_outbox ORDER BY seq',
        );
        assert.deepEqual(
          rows.map((r) => r.id),
          envelopes.map((e) => e.eventId),
        );
        assert.deepEqual(rows[3], {
          id: envelopes[3]?.eventId,
          topic: 'files',
          aggregate_id: 'file-1',
          event_type: 'Uploaded',
        });
        const claimed = await f.store.claim('r1', 10, 30_000);
        const file = claimed.find((r) => r.aggregateId === 'file-1');
        assert.ok(file);
        const decoded = JSON.parse(file.envelope) as { payload: unknown; event_version: number };
        assert.deepEqual(decoded.payload, { name: 'a.txt', size: 4 });
        assert.equal(decoded.event_version, 2);
      }));

    test('add keeps a given eventId and rejects invalid input before inserting anything', () =>
      withStore(factory, async (f) => {
        const given = '0190c0de-0000-7000-8000-000000000001';
        const [e] = await f.store.transaction((tx) =>
          f.store.add(tx, [
            {
              topic: 't',
              envelope: { eventId: given, aggregateId: 'a', eventType: 'x', eventVersion: 0, payload: null },
            },
          ]),
        );
        assert.equal(e?.eventId, given);

        await assert.rejects(
          f.store.transaction((tx) =>
            f.store.add<unknown>(tx, [
              ...eventsFor('t', 'a', 0, 1),
              { topic: 't', envelope: { aggregateId: '', eventType: 'x', eventVersion: 1, payload: 1 } },
            ]),
          ),
          (err: unknown) => err instanceof ValidationError && err.field === 'aggregateId',
        );
        await assert.rejects(
          f.store.transaction((tx) =>
            f.store.add<unknown>(tx, [
              {
                topic: 't',
                envelope: {
                  aggregateId: 'a',
                  eventType: 'x',
                  eventVersion: 1,
                  payload: new Uint8Array([0, 255]),
                },
              },
            ]),
          ),
          (err: unknown) => err instanceof ValidationError && err.field === 'payload',
          'bytes that are not UTF-8 JSON have no inline form on the wire',
        );
        await assert.rejects(
          f.store.transaction((tx) =>
            f.store.add(tx, [
              {
                topic: 't',
                envelope: {
                  aggregateId: 'a',
                  eventType: 'x',
                  eventVersion: 1,
                  payload: 'x'.repeat(1024 * 1024),
                },
              },
            ]),
          ),
          PayloadTooLargeError,
        );
        await assert.rejects(
          f.store.transaction((tx) =>
            f.store.add(tx, [
              {
                topic: 'no spaces',
                envelope: { aggregateId: 'a', eventType: 'x', eventVersion: 1, payload: 1 },
              },
            ]),
          ),
          { code: 'EVENTBUS_INVALID_ARGUMENT' },
        );
        const [{ n }] = (await f.query<{ n: number }>('SELECT count(*)::int AS n FROM eventbus_outbox')) as [
          { n: number },
        ];
        assert.equal(n, 1, 'only the first, valid transaction left a row');
      }));

    test('add() counts the headers the relay sends: a body just under the limit is refused, naming the row', () =>
      withStore(factory, async (f) => {
        const limit = 1024 * 1024;
        const input = (payload: string) => ({
          eventId: '0190a5c0-0000-7000-8000-00000000b16b',
          aggregateId: 'big-aggregate',
          eventType: 'Big',
          eventVersion: 1,
          timestamp: '2026-01-01T00:00:00.000Z',
          payload,
        });
        // A payload whose encoded body alone is 50 bytes under the limit.
        const bodyBytes = (p: string) => encodeEnvelope(createEnvelope(input(p))).byteLength;
        const payload = 'x'.repeat(limit - 50 - bodyBytes(''));
        assert.equal(bodyBytes(payload), limit - 50);
        await assert.rejects(
          f.store.transaction((tx) =>
            f.store.add(tx, [
              {
                topic: 'ok',
                envelope: { aggregateId: 'small', eventType: 'x', eventVersion: 1, payload: 'small' },
              },
              { topic: 'big-topic', envelope: input(payload) },
            ]),
          ),
          (error: unknown) =>
            error instanceof PayloadTooLargeError &&
            error.size > limit &&
            error.limit === limit &&
            /messages\[1\]/.test(error.message) &&
            error.message.includes('0190a5c0-0000-7000-8000-00000000b16b') &&
            error.message.includes('big-topic'),
        );
        const [{ n }] = (await f.query<{ n: number }>('SELECT count(*)::int AS n FROM eventbus_outbox')) as [
          { n: number },
        ];
        assert.equal(n, 0, 'the whole add() was refused in the transaction');
      }));

    test('a rolled-back transaction leaves nothing to claim', () =>
      withStore(factory, async (f) => {
        await assert.rejects(
          f.store.transaction(async (tx) => {
            await f.store.add(tx, eventsFor('t', 'a', 0, 5));
            throw new Error('business rule failed');
          }),
          /business rule failed/,
        );
        assert.deepEqual(await f.store.stats(), {
          pending: 0,
          lagSeconds: 0,
          failing: 0,
          oldestFailingSeconds: 0,
        });
        assert.deepEqual(await f.store.claim('r1', 100, 30_000), []);
      }));

    test('claims whole aggregate prefixes in seq order; a second relay gets nothing of them', () =>
      withStore(factory, async (f) => {
        await f.store.transaction((tx) =>
          f.store.add(tx, [...eventsFor('t', 'A', 0, 3), ...eventsFor('t', 'B', 0, 2)]),
        );
        await f.store.transaction((tx) => f.store.add(tx, eventsFor('t', 'A', 3, 1)));
        const r1 = await f.store.claim('r1', 10, 30_000);
        const indexes = (agg: string) =>
          r1.filter((r) => r.aggregateId === agg).map((r) => JSON.parse(r.envelope).payload.index);
        assert.deepEqual(indexes('A'), [0, 1, 2, 3]);
        assert.deepEqual(indexes('B'), [0, 1]);
        assert.deepEqual(await f.store.claim('r2', 10, 30_000), []);
        // A new event of a held aggregate is not claimable by anyone else either.
        await f.store.transaction((tx) => f.store.add(tx, eventsFor('t', 'A', 4, 1)));
        assert.deepEqual(await f.store.claim('r2', 10, 30_000), []);
      }));

    test('claim limit is breadth first and always includes every claimed head', () =>
      withStore(factory, async (f) => {
        await f.store.transaction((tx) =>
          f.store.add(tx, [
            ...eventsFor('t', 'A', 0, 5),
            ...eventsFor('t', 'B', 0, 5),
            ...eventsFor('t', 'C', 0, 5),
          ]),
        );
        const rows = await f.store.claim('r1', 7, 30_000);
        assert.equal(rows.length, 7);
        const per = new Map<string, number[]>();
        for (const r of rows)
          per.set(r.aggregateId, [...(per.get(r.aggregateId) ?? []), JSON.parse(r.envelope).payload.index]);
        for (const [agg, idx] of per)
          assert.deepEqual(idx, [...idx.keys()], `${agg} is a prefix from its head`);
        assert.deepEqual([...per.keys()].sort(), ['A', 'B', 'C']);
      }));

    test('a failed head holds back its aggregate until due; other aggregates flow', () =>
      withStore(factory, async (f) => {
        await f.store.transaction((tx) =>
          f.store.add(tx, [...eventsFor('t', 'A', 0, 3), ...eventsFor('t', 'B', 0, 1)]),
        );
        const rows = await f.store.claim('r1', 10, 30_000);
        const a = rows.filter((r) => r.aggregateId === 'A');
        const b = rows.filter((r) => r.aggregateId === 'B');
        assert.equal(a.length, 3);
        // A#0 failed: release A (with backoff) and B (plain).
        const failedId = a[0]?.id as string;
        assert.equal(
          await f.store.release(
            'r1',
            a.map((r) => r.id),
            { id: failedId, error: 'EVENTBUS_TIMEOUT: no ack', retryDelayMs: 60_000 },
          ),
          3,
        );
        assert.equal(
          await f.store.release(
            'r1',
            b.map((r) => r.id),
          ),
          1,
        );
        const stats = await f.store.stats();
        assert.equal(stats.failing, 1, 'the failed row counts as failing (the metric beside the lag)');
        assert.equal(stats.pending, 4);
        assert.ok(stats.oldestFailingSeconds >= 0 && stats.oldestFailingSeconds <= stats.lagSeconds);
        const again = await f.store.claim('r2', 10, 30_000);
        assert.deepEqual(
          again.map((r) => r.aggregateId),
          ['B'],
          'A#1 and A#2 stay behind the failed A#0',
        );
        const [row] = await f.query<{
          attempts: number;
          last_error: string;
          due_in: number;
          claimed_by: string | null;
        }>(
          `SELECT attempts, last_error, claimed_by, EXTRACT(EPOCH FROM next_attempt_at - now())::float8 AS due_in
           FROM eventbus_outbox WHERE id = $1`,
          [failedId],
        );
        assert.equal(row?.attempts, 1);
        assert.equal(row?.last_error, 'EVENTBUS_TIMEOUT: no ack');
        assert.equal(row?.claimed_by, null);
        assert.ok((row?.due_in ?? 0) > 50, 'retry scheduled about a minute ahead');
        // Once due, the whole aggregate comes back in order, attempts kept.
        await f.query('UPDATE eventbus_outbox SET next_attempt_at = now() WHERE id = $1', [failedId]);
        const retried = await f.store.claim('r2', 10, 30_000);
        assert.deepEqual(
          retried.map((r) => [r.id, r.attempts]),
          a.map((r, i) => [r.id, i === 0 ? 1 : 0]),
        );
      }));

    test('an expired lease is reclaimable; the old holder can no longer renew or release it', () =>
      withStore(factory, async (f) => {
        await f.store.transaction((tx) => f.store.add(tx, eventsFor('t', 'A', 0, 2)));
        const first = await f.store.claim('crashed', 10, 200);
        assert.equal(first.length, 2);
        assert.deepEqual(await f.store.claim('r2', 10, 30_000), []);
        let second: Awaited<ReturnType<typeof f.store.claim>> = [];
        await waitUntil(
          async () => {
            second = await f.store.claim('r2', 10, 30_000);
            return second.length > 0;
          },
          {
            what: 'the expired lease to become claimable',
          },
        );
        assert.deepEqual(
          second.map((r) => r.id),
          first.map((r) => r.id),
        );
        assert.deepEqual(
          await f.store.renewLeases(
            'crashed',
            first.map((r) => r.id),
            30_000,
          ),
          [],
        );
        assert.equal(
          await f.store.release(
            'crashed',
            first.map((r) => r.id),
          ),
          0,
        );
        assert.deepEqual(
          (
            await f.store.renewLeases(
              'r2',
              second.map((r) => r.id),
              30_000,
            )
          ).sort(),
          second.map((r) => r.id).sort(),
        );
      }));

    test('concurrent claimers never share a row or an aggregate', () =>
      withStore(factory, async (f) => {
        const aggregates = 60;
        for (let a = 0; a < aggregates; a++)
          await f.store.transaction((tx) => f.store.add(tx, eventsFor('t', `agg-${a}`, 0, 4)));
        const stores = Array.from({ length: 6 }, () => f.openStore());
        const owner = new Map<string, string>();
        const claimedIds = new Set<string>();
        // Rounds of concurrent claims; between rounds each relay reports its rows published,
        // which makes the next row of those aggregates claimable (by anyone).
        for (let round = 0; round < 20 && claimedIds.size < aggregates * 4; round++) {
          const claims = await Promise.all(
            stores.map((s, i) =>
              s.claim(`relay-${i}`, 25, 30_000).then((rows) => ({ relay: `relay-${i}`, rows })),
            ),
          );
          const roundOwner = new Map<string, string>();
          for (const { relay, rows } of claims) {
            for (const r of rows) {
              assert.ok(!claimedIds.has(r.id), `row ${r.id} claimed twice`);
              claimedIds.add(r.id);
              const prev = roundOwner.get(r.aggregateId);
              assert.ok(
                prev === undefined || prev === relay,
                `${r.aggregateId} held by ${prev} and ${relay} at once`,
              );
              roundOwner.set(r.aggregateId, relay);
              owner.set(r.aggregateId, relay);
            }
          }
          await Promise.all(claims.map(({ rows }, i) => stores[i]?.markPublished(rows.map((r) => r.id))));
        }
        assert.equal(claimedIds.size, aggregates * 4, 'all rows claimed, none twice');
      }));

    test('markPublished only marks unpublished rows; stats report pending and lag', () =>
      withStore(factory, async (f) => {
        await f.store.transaction((tx) => f.store.add(tx, eventsFor('t', 'A', 0, 3)));
        await f.query(`UPDATE eventbus_outbox SET created_at = now() - interval '90 seconds'`);
        const stats = await f.store.stats();
        assert.equal(stats.pending, 3);
        assert.ok(stats.lagSeconds >= 90 && stats.lagSeconds < 120, `lag ${stats.lagSeconds}`);
        const rows = await f.store.claim('r1', 10, 30_000);
        assert.equal(await f.store.markPublished(rows.map((r) => r.id)), 3);
        assert.equal(await f.store.markPublished(rows.map((r) => r.id)), 0);
        assert.deepEqual(await f.store.stats(), {
          pending: 0,
          lagSeconds: 0,
          failing: 0,
          oldestFailingSeconds: 0,
        });
        assert.equal(await f.store.purgePublished({ olderThanMs: 60_000 }), 0);
        assert.equal(await f.store.purgePublished({ olderThanMs: 0 }), 3);
      }));

    test('processOnce: runs once per (consumer, eventId), atomically with its writes', () =>
      withStore(factory, async (f) => {
        await f.query('CREATE TABLE effects (event_id text, consumer text)');
        const apply = (eventId: string, consumer: string) =>
          f.store.transaction((tx) =>
            f.store.processOnce(
              tx,
              eventId,
              async () => {
                await (tx as { query(t: string, p: unknown[]): Promise<unknown> }).query(
                  'INSERT INTO effects VALUES ($1, $2)',
                  [eventId, consumer],
                );
              },
              { consumer },
            ),
          );
        assert.equal(await apply('e1', 'projector'), true);
        assert.equal(await apply('e1', 'projector'), false);
        assert.equal(await apply('e1', 'mailer'), true, 'another consumer processes it too');
        // fn fails: neither its writes nor the inbox record stay, even if the caller commits.
        const failed = await f.store.transaction(async (tx) => {
          await assert.rejects(
            f.store.processOnce(
              tx,
              'e2',
              async () => {
                await (tx as { query(t: string, p: unknown[]): Promise<unknown> }).query(
                  'INSERT INTO effects VALUES ($1, $2)',
                  ['e2', 'projector'],
                );
                throw new Error('handler failed');
              },
              { consumer: 'projector' },
            ),
            /handler failed/,
          );
          return 'committed';
        });
        assert.equal(failed, 'committed');
        assert.equal(await apply('e2', 'projector'), true, 'retried after the failure');
        const effects = await f.query<{ event_id: string; consumer: string }>(
          'SELECT * FROM effects ORDER BY event_id, consumer',
        );
        assert.deepEqual(effects, [
          { event_id: 'e1', consumer: 'mailer' },
          { event_id: 'e1', consumer: 'projector' },
          { event_id: 'e2', consumer: 'projector' },
        ]);
        assert.equal(await f.store.purgeInbox({ olderThanMs: 60_000 }), 0);
      }));

    test('processOnce under concurrent redelivery: the side effect happens once', () =>
      withStore(factory, async (f) => {
        await f.query('CREATE TABLE effects (event_id text)');
        const stores = Array.from({ length: 4 }, () => f.openStore());
        const outcomes = await Promise.all(
          Array.from({ length: 12 }, (_, i) => {
            const s = stores[i % stores.length] as typeof f.store;
            return s.transaction((tx) =>
              s.processOnce(
                tx,
                'evt-1',
                async () => {
                  await (tx as { query(t: string, p: unknown[]): Promise<unknown> }).query(
                    'INSERT INTO effects VALUES ($1)',
                    ['evt-1'],
                  );
                },
                { consumer: 'projector' },
              ),
            );
          }),
        );
        assert.equal(outcomes.filter(Boolean).length, 1);
        const [{ n }] = (await f.query<{ n: number }>('SELECT count(*)::int AS n FROM effects')) as [
          { n: number },
        ];
        assert.equal(n, 1);
      }));

    test('processOnce outside a transaction is refused', () =>
      withStore(factory, async (f) => {
        // An autocommit handle (no BEGIN): the inbox record could not be atomic with fn's writes.
        await assert.rejects(
          f.store.processOnce(
            {
              query: (t: string, p?: unknown[]) =>
                f.query(t, p).then((rows) => ({ rows, rowCount: 0, affectedRows: 0 })),
            },
            'e1',
            () => {},
            { consumer: 'c' },
          ),
          { code: 'EVENTBUS_INVALID_ARGUMENT' },
        );
      }));
  });
}

describe('outbox store (postgres): concurrent writers of one aggregate', () => {
  const factory = storeFactories.find((f) => f.kind === 'postgres');
  test('add serialises transactions per aggregate, so seq order is commit order', { skip: !factory }, () =>
    withStore(factory as (typeof storeFactories)[number], async (f) => {
      let releaseFirst!: () => void;
      const gate = new Promise<void>((r) => {
        releaseFirst = r;
      });
      let firstAdded!: () => void;
      const added = new Promise<void>((r) => {
        firstAdded = r;
      });
      const order: string[] = [];
      const first = f.store.transaction(async (tx) => {
        await f.store.add(tx, eventsFor('t', 'A', 0, 1));
        firstAdded();
        await gate;
        order.push('first committed');
      });
      await added;
      const second = f.store
        .transaction((tx) => f.store.add(tx, eventsFor('t', 'A', 1, 1)))
        .then(() => order.push('second committed'));
      // The second transaction waits on the aggregate's advisory lock while the first is open.
      await waitUntil(
        async () =>
          (
            await f.query<{ n: number }>(
              "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
            )
          )[0]?.n === 1,
        { what: 'the second writer to wait for the aggregate lock' },
      );
      // Another aggregate is not held up.
      await f.store.transaction((tx) => f.store.add(tx, eventsFor('t', 'B', 0, 1)));
      releaseFirst();
      await Promise.all([first, second]);
      assert.deepEqual(order, ['first committed', 'second committed']);
      const rows = await f.query<{ index: number }>(
        "SELECT (envelope->'payload'->>'index')::int AS index FROM eventbus_outbox WHERE aggregate_id = 'A' ORDER BY seq",
      );
      assert.deepEqual(
        rows.map((r) => r.index),
        [0, 1],
      );
    }),
  );
});
