/**
 * Two outbox relay processes (test/outbox/relay-process.ts) on a real
 * PostgreSQL and a real nats-server: one is stalled mid-run (SIGSTOP, past
 * its lease, then SIGCONT), and PostgreSQL is killed with kill -9 (postmaster
 * and backends) and restarted on the same port and data. Both relay
 * processes must survive, every row must be in the stream exactly once, in
 * per-aggregate order (order checker), and marked published.
 *
 * A fault suite (`npm run test:faults`), not part of `npm test`.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { decodeEnvelope } from '../../src/core/envelope.ts';
import { createPgOutboxStore } from '../../src/outbox/pg-store.ts';
import { checkDelivery, formatReport } from '../../src/testing/checker.ts';
import { type NatsServerHandle, startNatsServer } from '../harness/nats-server.ts';
import { type PostgresServer, startPostgres } from '../harness/postgres.ts';
import { killPostgres, type RestartedPostgres, restartPostgres } from '../harness/postgres-crash.ts';
import { eventsFor } from './fixtures.ts';

const TOPIC = 'relayfault';
const AGGREGATES = 40;
const PER_AGGREGATE = 100;
const TOTAL = AGGREGATES * PER_AGGREGATE;
const LEASE_MS = 3_000;
/** How long PostgreSQL stays down (the fault itself, not a wait for a condition). */
const DB_OUTAGE_MS = 3_000;

interface RelayLine {
  readonly published?: number;
  readonly inFlight?: number;
  readonly held?: number;
  readonly poolErrors?: number;
  readonly closed?: boolean;
}

class RelayProcess {
  readonly child: ChildProcess;
  last: RelayLine = {};
  readonly exited: Promise<number | null>;
  constructor(config: Record<string, unknown>) {
    const script = fileURLToPath(new URL('./relay-process.ts', import.meta.url));
    this.child = spawn(process.execPath, [script, JSON.stringify(config)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
    createInterface({ input: this.child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      try {
        this.last = JSON.parse(line) as RelayLine;
      } catch {}
    });
  }
  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
  signal(signal: NodeJS.Signals): void {
    if (this.child.pid !== undefined) process.kill(this.child.pid, signal);
  }
}

/** Waits for an observable condition, re-checking every 50 ms, with a deadline. */
async function waitFor(what: string, condition: () => Promise<boolean> | boolean, timeoutMs = 60_000) {
  const deadline = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function readStream(url: string): Promise<{ eventId: string }[]> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    const stream = `EVENTBUS_${TOPIC}`;
    const total = (await jsm.streams.info(stream)).state.messages;
    const consumer = await jetstream(nc).consumers.get(stream);
    const out: { eventId: string }[] = [];
    while (out.length < total) {
      const batch = await consumer.fetch({ max_messages: Math.min(2000, total - out.length), expires: 2000 });
      let got = 0;
      for await (const m of batch) {
        got++;
        out.push({ eventId: decodeEnvelope(m.data).eventId });
      }
      if (got === 0) break;
    }
    return out;
  } finally {
    await nc.close();
  }
}

describe('outbox: two relay processes, one stalled, PostgreSQL kill -9 (fault suite)', {
  timeout: 600_000,
}, () => {
  let nats: NatsServerHandle;
  let postgres: PostgresServer;
  let restarted: RestartedPostgres | undefined;
  before(async () => {
    nats = await startNatsServer({ jetstream: true });
    postgres = await startPostgres();
  });
  after(async () => {
    await nats?.stop();
    await restarted?.stop();
    // The harness's own child is the postmaster we killed: its stop() only cleans up.
    await postgres
      ?.stop()
      .catch((error: unknown) => process.stdout.write(`# postgres stop: ${String(error)}\n`));
  });

  it('every row once in order and marked; both relay processes survive and finish', async () => {
    const url = await postgres.createDatabase('relayfault');
    const newPool = () => {
      const pool = new pg.Pool({ connectionString: url, max: 2 });
      pool.on('error', () => {});
      return pool;
    };
    let pool = newPool();
    const store = createPgOutboxStore(pool);
    await store.migrate();
    for (let i = 0; i < PER_AGGREGATE; i++) {
      await store.transaction((tx) =>
        store.add(
          tx,
          Array.from({ length: AGGREGATES }, (_, a) => eventsFor(TOPIC, `agg-${a}`, i, 1)).flat(),
        ),
      );
    }
    const expected = (
      await pool.query<{ id: string; aggregate_id: string; index: number }>(
        "SELECT id, aggregate_id, (envelope->'payload'->>'index')::int AS index FROM eventbus_outbox ORDER BY seq",
      )
    ).rows.map((r) => ({ eventId: r.id, aggregateId: r.aggregate_id, index: Number(r.index) }));
    const published = async (): Promise<number> => {
      try {
        const r = await pool.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM eventbus_outbox WHERE published_at IS NOT NULL',
        );
        return Number(r.rows[0]?.n ?? 0);
      } catch {
        return -1; // the database is down or restarting
      }
    };

    const config = (relayId: string) => ({
      pgUrl: url,
      natsUrl: nats.url,
      relayId,
      leaseMs: LEASE_MS,
      batchSize: 100,
    });
    const a = new RelayProcess(config('relay-a'));
    let b: RelayProcess | undefined;
    try {
      await waitFor('relay-a holding leased rows', () => (a.last.held ?? 0) > 0);
      a.signal('SIGSTOP'); // stalled mid-run, holding leased rows (and, likely, publishes in flight)
      const stalledAt = await published();
      // The second relay starts with the first one's leases in the way.
      b = new RelayProcess(config('relay-b'));
      const second = b;
      // relay-b takes over relay-a's aggregates once the leases lapse.
      // relay-b takes over relay-a's aggregates once their leases lapse; PostgreSQL dies mid-run.
      const target = stalledAt + Math.floor((TOTAL - stalledAt) / 3);
      await waitFor('relay-b publishing past the stall', async () => (await published()) >= target).catch(
        async (error: unknown) => {
          const leases = await pool.query(
            'SELECT claimed_by, count(*)::int AS n, min(claimed_until)::text AS until, now()::text AS now FROM eventbus_outbox WHERE published_at IS NULL GROUP BY claimed_by',
          );
          const activity = await pool.query(
            'SELECT pid, state, wait_event_type, wait_event, left(query, 80) AS query, (now() - state_change)::text AS since FROM pg_stat_activity WHERE datname = current_database()',
          );
          throw new Error(
            `${String(error)}\nleases ${JSON.stringify(leases.rows)}\nactivity ${JSON.stringify(activity.rows, null, 1)}\nb=${JSON.stringify(second.last)}`,
          );
        },
      );
      const killedAt = await published();
      await killPostgres(postgres.pid);
      await new Promise((resolve) => setTimeout(resolve, DB_OUTAGE_MS));
      restarted = await restartPostgres(postgres);
      a.signal('SIGCONT');
      await pool.end().catch(() => {});
      pool = newPool();
      await waitFor('every row marked published', async () => (await published()) === TOTAL, 180_000);
      const aliveBoth = a.alive && second.alive;
      a.signal('SIGTERM');
      second.signal('SIGTERM');
      const codes = await Promise.all([a.exited, second.exited]);
      const stream = await readStream(nats.url);
      const report = checkDelivery(expected, stream);
      const text = `${formatReport(report)} stalledAt=${stalledAt} dbKilledAt=${killedAt} stream=${stream.length} split=${a.last.published}/${second.last.published} poolErrors=${a.last.poolErrors}/${second.last.poolErrors} exit=${codes.join('/')}`;
      process.stdout.write(`# fault relays: ${text}\n`);
      assert.ok(aliveBoth, `both relay processes survived: ${text}`);
      assert.deepEqual(codes, [0, 0], text);
      assert.equal(report.exactlyOnce, TOTAL, text);
      assert.equal(report.lost, 0, text);
      assert.equal(report.outOfOrder, 0, text);
      assert.equal(report.unexpected, 0, text);
    } finally {
      for (const r of [a, b]) {
        if (r?.alive) {
          r.signal('SIGCONT');
          r.signal('SIGKILL');
        }
      }
      await pool.end().catch(() => {});
    }
  });
});
