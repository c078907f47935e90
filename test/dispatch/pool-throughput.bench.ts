/**
 * Micro-benchmark of the actor pool alone (no transport): 200,000 no-op tasks
 * over 1,000 keys through the default pool (64 actors × 64 inbox), fed by an
 * intake loop that respects freeCapacity()/waitForCapacity() like a transport.
 * Not a *.test.ts file: run it by hand.
 *
 *   ./node_modules/.bin/node test/dispatch/pool-throughput.bench.ts [--prom] [total] [rounds]
 *
 * --prom uses real prom-client metrics (a private registry) instead of no-ops.
 */

import { Registry } from 'prom-client';
import { silentLogger } from '../../src/core/logger.ts';
import type { InboundMessage } from '../../src/core/transport.ts';
import { createActorPool } from '../../src/dispatch/actor-pool.ts';
import { resolvePoolOptions } from '../../src/dispatch/options.ts';
import type { PoolTask } from '../../src/dispatch/types.ts';
import { createBusMetrics, noopMetrics } from '../../src/metrics/metrics.ts';

const args = process.argv.slice(2);
const prom = args.includes('--prom');
const [totalArg, roundsArg] = args.filter((a) => !a.startsWith('--'));
const total = Number(totalArg ?? 200_000);
const keyCount = 1_000;
const rounds = Number(roundsArg ?? 5);
const metrics = prom
  ? createBusMetrics('memory', 'bench', new Registry()).forPool('bench', 'g')
  : noopMetrics.forPool('bench', 'g');

const keys = Array.from({ length: keyCount }, (_, i) => `aggregate-${i}`);
const resolved = Promise.resolve();
let acked = 0;
const message: InboundMessage = {
  topic: 'bench',
  data: new Uint8Array(),
  headers: {},
  key: undefined,
  deliveryCount: 1,
  sequence: undefined,
  ack() {
    acked++;
  },
  nak() {},
  term() {},
  working() {},
};
const run = (): Promise<void> => resolved;
// Tasks are built up front so the numbers measure the pool, not the fixture.
const tasks: PoolTask[] = Array.from({ length: total }, (_, i) => ({
  key: keys[i % keyCount],
  message,
  run,
}));

async function once(): Promise<number> {
  acked = 0;
  const pool = createActorPool(
    resolvePoolOptions(
      'bench',
      'g',
      'envelope',
      {},
      {
        deadLetter: () => Promise.resolve(),
        metrics,
        logger: silentLogger,
      },
    ),
  );
  const never = new AbortController().signal;
  const started = performance.now();
  let next = 0;
  while (next < total) {
    let free = pool.freeCapacity();
    if (free === 0) {
      await pool.waitForCapacity(never);
      free = pool.freeCapacity();
    }
    for (const end = Math.min(total, next + free); next < end; next++) pool.submit(tasks[next] as PoolTask);
  }
  await pool.drain(never);
  const seconds = (performance.now() - started) / 1000;
  if (acked !== total) throw new Error(`acked ${acked} of ${total}`);
  return total / seconds;
}

const results: number[] = [];
for (let i = 0; i < rounds; i++) results.push(await once());
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
console.log(
  `pool throughput, ${fmt(total)} no-op tasks over ${keyCount} keys, 64 actors x 64 inbox, ${prom ? 'prom-client' : 'no-op'} metrics:`,
);
console.log(`  rounds: ${results.map(fmt).join(', ')} msgs/s`);
console.log(
  `  best ${fmt(Math.max(...results))} msgs/s, median ${fmt(results.sort((a, b) => a - b)[Math.floor(results.length / 2)] ?? 0)} msgs/s`,
);
