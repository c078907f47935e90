/**
 * One outbox relay as its own OS process, for the relay fault suite (not a
 * test file). argv[2]: JSON { pgUrl, natsUrl, relayId, leaseMs, batchSize }.
 * Set up as the outbox README shows (a pg Pool with an error listener, a
 * NATS bus, a relay). Writes a JSON stats line to stdout every 100 ms.
 * SIGTERM → close the relay and the bus, print {"closed":true}, exit 0.
 * End of stdin (the test died) → exit at once.
 */
import pg from 'pg';
import { createEventBus } from '../../src/index.ts';
import { createPgOutboxStore } from '../../src/outbox/pg-store.ts';
import { createOutboxRelay } from '../../src/outbox/relay.ts';

interface RelayProcessConfig {
  readonly pgUrl: string;
  readonly natsUrl: string;
  readonly relayId: string;
  readonly leaseMs: number;
  readonly batchSize: number;
}

const config = JSON.parse(process.argv[2] ?? '{}') as RelayProcessConfig;
const pool = new pg.Pool({ connectionString: config.pgUrl, max: 4, connectionTimeoutMillis: 2_000 });
let poolErrors = 0;
pool.on('error', () => {
  poolErrors++; // idle clients losing their connection: the pool replaces them
});
const bus = await createEventBus({
  transport: 'nats',
  clientId: config.relayId,
  metrics: { enabled: false },
  nats: { servers: config.natsUrl },
});
const relay = createOutboxRelay({
  store: createPgOutboxStore(pool),
  bus,
  relayId: config.relayId,
  leaseMs: config.leaseMs,
  batchSize: config.batchSize,
  pollIntervalMs: 100,
  backoff: { initialMs: 50, maxMs: 500 },
});
await relay.start();
const report = setInterval(() => {
  process.stdout.write(`${JSON.stringify({ ...relay.stats(), poolErrors })}\n`);
}, 100);

process.stdin.on('end', () => process.exit(1));
process.stdin.resume();
process.once('SIGTERM', async () => {
  clearInterval(report);
  await relay.close({ timeoutMs: 10_000 });
  await bus.close({ timeoutMs: 10_000 });
  await pool.end();
  process.stdout.write(`${JSON.stringify({ closed: true, ...relay.stats(), poolErrors })}\n`);
  process.exit(0);
});
