/**
 * Scale-out row (issue 9): consumption of one backlog by a partitioned
 * consumer group of 1, 2 and 3 member PROCESSES with an I/O-bound handler
 * (2 ms, 4 actors per member, so one member is bound by waiting, not CPU),
 * side by side in one run on one nats-server. Every run is judged by the
 * order and execution checkers (0 lost / out of order / overlaps, or exit 1).
 *
 *   node bench/scale-out.ts [--events 6000] [--members 1,2,3] [--out bench/results]
 */

import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { createOrderChecker, formatExecutionReport, formatReport } from '../src/testing/checker.ts';
import { createLoadPublisher, publishLoad } from '../test/harness/fault-load.ts';
import { createMembers } from '../test/harness/members.ts';
import { startNatsServer } from '../test/harness/nats-server.ts';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '20000' },
    members: { type: 'string', default: '1,2,3' },
    out: { type: 'string', default: 'bench/results' },
  },
});
const EVENTS = Number(values.events);
const COUNTS = (values.members ?? '1,2,3').split(',').map(Number);
const AGGREGATES = 200;

interface Row {
  members: number;
  events: number;
  seconds: number;
  perSecond: number;
  ratioToOne: number;
  /** Rate between 25 % and 75 % applied: without process start-up and rebalancing. */
  steadyPerSecond: number;
  steadyRatioToOne: number;
  verdict: string;
  perMember: Record<string, number>;
}

const server = await startNatsServer({ jetstream: true });
const rows: Row[] = [];
let failed = false;
try {
  for (const n of COUNTS) {
    const topic = `scale-${n}-${randomUUID().slice(0, 8)}`;
    await using members = createMembers({ checker: createOrderChecker() });
    const publisher = await createLoadPublisher(
      { transport: 'nats', nats: { servers: server.url } },
      members.checker,
    );
    await publishLoad(publisher, topic, members.checker, { events: EVENTS, aggregates: AGGREGATES });
    await publisher.close();
    const names = Array.from({ length: n }, (_, i) => `m${i + 1}`);
    const started = performance.now();
    await Promise.all(
      names.map((name) =>
        members.start(name, {
          topic,
          bus: { transport: 'nats', nats: { servers: server.url } },
          subscribe: { group: 'scale', actors: 4 },
          handler: { delayMs: [2, 2] },
        }),
      ),
    );
    // Steady state: the rate between 25 % and 75 % of the backlog applied (after the
    // members started and the group balanced, before the tail), sampled every 100 ms.
    let at25 = 0;
    let at75 = 0;
    const sampler = setInterval(() => {
      const applied = members.counts().applied;
      if (at25 === 0 && applied >= EVENTS / 4) at25 = performance.now();
      if (at75 === 0 && applied >= (3 * EVENTS) / 4) at75 = performance.now();
    }, 100);
    try {
      await members.waitUntil(() => members.checker.outstanding() === 0, 300_000, 'backlog applied');
    } finally {
      clearInterval(sampler);
    }
    const seconds = (performance.now() - started) / 1000;
    const steadyPerSecond = at75 > at25 ? EVENTS / 2 / ((at75 - at25) / 1000) : Number.NaN;
    await Promise.all(names.map((name) => members.close(name)));
    const r = members.checker.report();
    const x = members.executions.report();
    const ok = r.lost === 0 && r.outOfOrder === 0 && r.unexpected === 0 && x.overlaps === 0;
    failed ||= !ok;
    const perSecond = EVENTS / seconds;
    rows.push({
      members: n,
      events: EVENTS,
      seconds,
      perSecond,
      ratioToOne: rows[0] ? perSecond / rows[0].perSecond : 1,
      steadyPerSecond,
      steadyRatioToOne: rows[0] ? steadyPerSecond / rows[0].steadyPerSecond : 1,
      verdict: ok ? 'ok' : `${formatReport(r)} | ${formatExecutionReport(x)}`,
      perMember: Object.fromEntries(names.map((name) => [name, members.counts(name).applied])),
    });
    const row = rows.at(-1) as Row;
    process.stdout.write(
      `scale-out ${n} member(s): ${EVENTS} events in ${seconds.toFixed(2)} s = ${perSecond.toFixed(0)}/s (${row.ratioToOne.toFixed(2)}× one member); steady ${steadyPerSecond.toFixed(0)}/s (${row.steadyRatioToOne.toFixed(2)}×) ${row.verdict} ${JSON.stringify(row.perMember)}\n`,
    );
  }
} finally {
  await server.stop();
}
await mkdir(values.out ?? 'bench/results', { recursive: true });
const file = `${values.out}/scale-out-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
await writeFile(
  file,
  `${JSON.stringify({ handlerMs: 2, actorsPerMember: 4, aggregates: AGGREGATES, rows }, null, 2)}\n`,
);
process.stdout.write(`written ${file}\n`);
process.exitCode = failed ? 1 : 0;
