/**
 * Park across a crash (issue 12), members as OS processes on a real
 * nats-server: m1 and m2 split the partitions of group `g`; m1 owns aggregate
 * X's partition and parks X (a poison event); m1 is SIGKILLed; m2 takes the
 * partition over and must keep X parked (X's newer events go to
 * `<topic>.PARKED`, not to the handler), though m2 subscribed before X was
 * parked. The fix is deployed (the poison marker file removed) and the
 * operator runs the real `eventbus dlq requeue --parked` command: m2 replays
 * X's parked events in order, before X's newer ones. Judged by the order
 * checker (time order across members) and the execution checker.
 *
 * A fault suite (`npm run test:faults`), not part of `npm test`.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Kvm } from '@nats-io/kv';
import { partitionOf } from '../../../src/groups/lanes.ts';
import { createEventBus, type EventBus } from '../../../src/index.ts';
import {
  createOrderChecker,
  formatExecutionReport,
  formatReport,
  type OrderChecker,
} from '../../../src/testing/checker.ts';
import { streamNameFor } from '../../../src/transports/nats/names.ts';
import { NATS_DEFAULTS } from '../../../src/transports/nats/options.ts';
import { createMembers } from '../../harness/members.ts';
import { type NatsServerHandle, startNatsServer } from '../../harness/nats-server.ts';
import { type Inspector, inspector, waitUntil } from './helpers.ts';

const LEASE_MS = 2_000;
const PARTITIONS = 16;
const CLI = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));

/** An order checker that also keeps, per aggregate, the indexes applied (in time order). */
function recordingChecker(): OrderChecker & { readonly applied: Map<string, number[]> } {
  const base = createOrderChecker();
  const applied = new Map<string, number[]>();
  return {
    applied,
    expect: (id, key, index) => base.expect(id, key, index),
    acknowledged: (id) => base.acknowledged(id),
    failed: (id) => base.failed(id),
    observe: (id, key, index) => {
      const list = applied.get(key) ?? [];
      list.push(index);
      applied.set(key, list);
      base.observe(id, key, index);
    },
    outstanding: () => base.outstanding(),
    expectedCount: () => base.expectedCount(),
    report: () => base.report(),
  };
}

/** lane → pid of its lease holder, from the group's leases (`{ owner: <host>-<pid>-<n>-<rand> }`). */
async function leaseHolders(inspect: Inspector, topic: string): Promise<Map<string, number>> {
  const kv = await new Kvm(inspect.nc).open(`${NATS_DEFAULTS.streamPrefix}_GROUPS`);
  const prefix = `${streamNameFor(NATS_DEFAULTS.streamPrefix, topic)}.g.p.`;
  const keys: string[] = [];
  for await (const key of await kv.keys(`${prefix}*`)) keys.push(key);
  const out = new Map<string, number>();
  for (const key of keys) {
    const entry = await kv.get(key);
    if (entry === null || entry.operation !== 'PUT') continue;
    const owner = (JSON.parse(entry.string()) as { owner?: string }).owner ?? '';
    const pid = Number(owner.split('-').at(-3));
    if (Number.isSafeInteger(pid)) out.set(key.slice(prefix.length), pid);
  }
  return out;
}

function runCli(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('nats: a parked aggregate stays parked across a member crash and is resumed on the new owner (fault suite)', {
  timeout: 300_000,
}, () => {
  let server: NatsServerHandle;
  let inspect: Inspector;
  let dir: string;
  before(async () => {
    server = await startNatsServer({ jetstream: true });
    inspect = await inspector(server.url);
    dir = mkdtempSync(join(tmpdir(), 'park-takeover-'));
  });
  after(async () => {
    await inspect?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('m1 parks X, m1 is killed, m2 keeps X parked, dlq requeue --parked replays X on m2 in order', async () => {
    const topic = `ptk-${randomUUID().slice(0, 6)}`;
    const poisonFile = join(dir, `${topic}.poison`);
    writeFileSync(poisonFile, 'the bug is not fixed yet');
    const checker = recordingChecker();
    await using members = createMembers({ checker });
    const spec = {
      topic,
      bus: { transport: 'nats', nats: { servers: server.url, group: { leaseMs: LEASE_MS } } },
      subscribe: {
        group: 'g',
        deadLetterPolicy: 'park',
        maxAttempts: 2,
        backoff: { initialMs: 1, maxMs: 1 },
      },
      handler: { delayMs: [0, 1] as const, poisonWhileExists: poisonFile },
    };
    let publisher: EventBus | undefined;
    try {
      publisher = await createEventBus({
        transport: 'nats',
        clientId: `publisher-${topic}`,
        metrics: { enabled: false },
        nats: { servers: server.url },
      });
      const producer = publisher;
      const next = new Map<string, number>();
      const publish = async (aggregateId: string, poison = false): Promise<void> => {
        const index = next.get(aggregateId) ?? 0;
        next.set(aggregateId, index + 1);
        const eventId = randomUUID();
        checker.expect(eventId, aggregateId, index);
        await producer.publishEnvelopeAndWait(topic, {
          eventId,
          aggregateId,
          eventType: 'T',
          eventVersion: 1,
          payload: poison ? { index, poison } : { index },
        });
        checker.acknowledged(eventId);
      };
      const parkedCount = async (): Promise<number> => {
        try {
          const info = await inspect.jsm.streams.info(
            streamNameFor(NATS_DEFAULTS.streamPrefix, `${topic}.PARKED`),
          );
          return info.state.messages;
        } catch {
          return 0;
        }
      };

      await members.start('m1', spec);
      await members.start('m2', spec);
      const pid1 = members.pid('m1');
      const pid2 = members.pid('m2');
      // A settled split: every partition leased, by both members, evenly (no handoff pending).
      let holders = new Map<string, number>();
      await waitUntil(
        async () => {
          holders = await leaseHolders(inspect, topic);
          const lanes = [...holders.values()];
          const of1 = lanes.filter((p) => p === pid1).length;
          const of2 = lanes.filter((p) => p === pid2).length;
          return holders.size === PARTITIONS + 1 && of1 + of2 === holders.size && Math.abs(of1 - of2) <= 1;
        },
        'm1 and m2 split the partitions evenly',
        60_000,
        100,
      );
      let x = '';
      for (let i = 0; x === ''; i++) {
        if (holders.get(`p${partitionOf(`x${i}`, PARTITIONS)}`) === pid1) x = `x${i}`;
      }
      const lane = `p${partitionOf(x, PARTITIONS)}`;

      await publish(x); // x#0 applied on m1
      await publish(x, true); // x#1 poison: DLQ, X parked
      await publish(x); // x#2, x#3: parked
      await publish(x);
      await waitUntil(async () => (await parkedCount()) === 2, `${x}#2 and #3 parked on m1`, 60_000, 50);
      assert.deepEqual(checker.applied.get(x), [0]);

      await members.kill('m1');
      await waitUntil(
        async () => (await leaseHolders(inspect, topic)).get(lane) === pid2,
        `m2 took ${lane} over`,
        60_000,
        100,
      );
      await publish(x); // x#4: m2 must park it
      await waitUntil(async () => (await parkedCount()) === 3, `${x}#4 parked on m2`, 60_000, 50);
      assert.deepEqual(
        checker.applied.get(x),
        [0],
        'after the crash and takeover the aggregate is still parked',
      );

      rmSync(poisonFile); // the fix is deployed
      const cli = await runCli([
        'dlq',
        'requeue',
        topic,
        '--parked',
        '--aggregate',
        x,
        '--servers',
        server.url,
        '--timeout-ms',
        '60000',
      ]);
      assert.equal(cli.code, 0, `${cli.stdout}\n${cli.stderr}`);
      assert.match(
        cli.stdout,
        new RegExp(`^resumed ${x} group=g member=\\S+-${pid2}-\\d+-\\w+ replayed=3$`, 'm'),
      );
      await publish(x); // x#5: after the replay
      await members.waitUntil(() => (checker.applied.get(x)?.length ?? 0) >= 5, 60_000, `${x}#5 applied`);
      assert.deepEqual(checker.applied.get(x), [0, 2, 3, 4, 5]);
      assert.equal(await parkedCount(), 0, 'replayed events were deleted from the parked stream');

      const report = checker.report();
      assert.equal(report.outOfOrder, 0, formatReport(report));
      assert.equal(
        report.lost,
        1,
        `only the poison event (in the DLQ) is unconsumed: ${formatReport(report)}`,
      );
      assert.match(report.examples.lost[0] ?? '', new RegExp(`^${x}#1 `));
      const executions = members.executions.report();
      assert.equal(executions.overlaps, 0, formatExecutionReport(executions));
      process.stdout.write(`# fault park-takeover: ${formatReport(report)}\n`);
    } finally {
      await publisher?.close({ timeoutMs: 10_000 });
    }
  });
});
