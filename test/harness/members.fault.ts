/**
 * The fault kit's member processes against a real nats-server, with small
 * loads: lifecycle (ready, SIGSTOP/SIGCONT, graceful close, SIGKILL, crash
 * and restart as a new incarnation) and the reports reaching the checkers.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';
import type { EventBus } from '../../src/index.ts';
import { createOrderChecker, type OrderChecker } from '../../src/testing/checker.ts';
import { createLoadPublisher, publishLoad } from './fault-load.ts';
import { createMembers, type MemberSpec } from './members.ts';
import { type NatsServerHandle, startNatsServer } from './nats-server.ts';
import { processAlive, threadStates } from './proc-state.ts';

describe('fault kit: member processes', { timeout: 120_000 }, () => {
  let server: NatsServerHandle;
  let checker: OrderChecker;
  /** Publisher buses of the current test, closed after it whatever its outcome. */
  const publishers: EventBus[] = [];
  before(async () => {
    server = await startNatsServer({ jetstream: true });
  });
  afterEach(async () => {
    await Promise.all(publishers.splice(0).map((p) => p.close({ timeoutMs: 5_000 })));
  });
  after(async () => {
    await server?.stop();
  });

  const spec = (topic: string, extra: Partial<MemberSpec> = {}): MemberSpec => ({
    topic,
    // A short AckWait: what a crashed member had pulled comes back within the test's bounds.
    bus: { transport: 'nats', nats: { servers: server.url, consumer: { ackWaitMs: 2_000 } } },
    subscribe: { group: 'kit', handlerTimeoutMs: 1_000 },
    handler: { delayMs: [0, 2] },
    ...extra,
  });

  async function publish(topic: string, events: number, prefix = 'agg-'): Promise<void> {
    if (publishers.length === 0) {
      publishers.push(
        await createLoadPublisher({ transport: 'nats', nats: { servers: server.url } }, checker),
      );
    }
    await publishLoad(publishers[0] as EventBus, topic, checker, { events, aggregates: 20, prefix });
  }

  it('reports every execution; SIGSTOP/SIGCONT really stop and resume it; SIGTERM closes it with exit 0', async () => {
    checker = createOrderChecker();
    const topic = `kit-${randomUUID().slice(0, 8)}`;
    await using members = createMembers({ checker });
    await members.start('m1', spec(topic));
    const pid = members.pid('m1') as number;
    await publish(topic, 400);
    await members.waitUntil(() => checker.outstanding() === 0, 30_000, 'the first 400 applied');

    await members.stop('m1');
    assert.ok(
      threadStates(pid)?.every((s) => s === 'T' || s === 't'),
      'every thread stopped',
    );
    await publish(topic, 200, 'more-');
    await members.continue('m1');
    assert.ok(
      threadStates(pid)?.every((s) => s !== 'T' && s !== 't'),
      'every thread runs again',
    );
    await members.waitUntil(() => checker.outstanding() === 0, 30_000, 'all 600 applied');

    await members.close('m1');
    assert.equal(members.running('m1'), false);
    const r = checker.report();
    const x = members.executions.report();
    assert.equal(r.ok, 600, members.summary());
    assert.equal(r.outOfOrder, 0, members.summary());
    assert.equal(members.counts('m1').applied, x.applied);
    assert.equal(x.started, x.finished);
    assert.equal(x.overlaps, 0);
    assert.equal(members.held(), 0);
  });

  it('a member that crashes mid-handler leaves an unfinished execution; its restart (a new incarnation) finishes the work', async () => {
    checker = createOrderChecker();
    const topic = `kit-crash-${randomUUID().slice(0, 8)}`;
    await using members = createMembers({ checker });
    await members.start('m1', spec(topic, { handler: { delayMs: [0, 2], crashAtExecution: 50 } }));
    const firstPid = members.pid('m1') as number;
    await publish(topic, 400);
    await members.waitUntil(() => !members.running('m1'), 30_000, 'the crash');
    assert.equal(processAlive(firstPid), false);
    await members.start('m1', spec(topic));
    await members.waitUntil(
      () => checker.outstanding() === 0,
      30_000,
      'everything applied after the restart',
    );
    const x = members.executions.report();
    // The execution it crashed in, and whatever its other actors were running then.
    assert.ok(x.unfinished >= 1, members.summary());
    assert.equal(checker.report().lost, 0, members.summary());
    assert.equal(members.counts('m1').started, x.started);
  });

  it('kill() SIGKILLs by PID and restart() brings up a new process; dispose leaves no process behind', async () => {
    checker = createOrderChecker();
    const topic = `kit-kill-${randomUUID().slice(0, 8)}`;
    let pids: number[];
    {
      await using members = createMembers({ checker });
      await members.start('m1', spec(topic));
      await members.start('m2', spec(topic));
      const first = members.pid('m1') as number;
      await members.kill('m1');
      assert.equal(processAlive(first), false);
      await members.restart('m1');
      const second = members.pid('m1') as number;
      assert.notEqual(second, first);
      await members.stop('m2'); // a stopped member must be killed on dispose too
      pids = [second, members.pid('m2') as number];
    }
    assert.deepEqual(
      pids.map((pid) => processAlive(pid)),
      [false, false],
    );
  });

  it('a member that dies without being asked to fails every wait at once, with its story', async () => {
    checker = createOrderChecker();
    await using members = createMembers({ checker });
    await members.start('m1', spec(`kit-die-${randomUUID().slice(0, 8)}`));
    const waiting = members.waitUntil(() => false, 60_000, 'something that never happens');
    process.kill(members.pid('m1') as number, 'SIGKILL'); // from outside the harness
    await assert.rejects(waiting, /exited unexpectedly: m1#1: exited \(SIGKILL\)/);
  });

  it('a member that cannot start rejects start() with its error', async () => {
    checker = createOrderChecker();
    await using members = createMembers({ checker });
    await assert.rejects(
      members.start('bad', { topic: 'never', bus: { transport: 'carrier-pigeon' } }),
      /exited before it was ready.*transport/s,
    );
  });
});
