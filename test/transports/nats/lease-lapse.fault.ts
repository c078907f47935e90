/**
 * A lease renewal answered late (issue 14's loaded consume bench: 43 events
 * out of order with leases lapsing), against a real nats-server: one member
 * process, connected through a TCP proxy, works through a backlog; the proxy
 * holds back what the server sends on the member's lease connection (the
 * renewals' replies) twice (timeline below). The member's leases lapse on its
 * own clock in the second hold, so its pool lets queued messages go unrun;
 * the late replies then say the renewals succeeded. Before the fix the lanes
 * came back to life without a rewind: their pull loops had stopped at the
 * lapse, so they stayed silent for good (9,998 of 20,000 lost in this test);
 * in the loaded bench, messages let go were overtaken by their successors. Now a lapse is final: the lanes are dropped,
 * claimed anew and rewound to their ack floor.
 *
 * Judged by the order checker (lost / out of order / unexpected) and the
 * execution checker (overlaps). A fault suite (`npm run test:faults`).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { EventBus } from '../../../src/index.ts';
import { createOrderChecker, formatExecutionReport, formatReport } from '../../../src/testing/checker.ts';
import { createLoadPublisher, publishLoad } from '../../harness/fault-load.ts';
import { createMembers } from '../../harness/members.ts';
import { type NatsServerHandle, startNatsServer } from '../../harness/nats-server.ts';
import { startTcpProxy } from '../../harness/tcp-proxy.ts';

const EVENTS = 20_000;
/** Few aggregates with 5–10 ms handlers: the backlog lasts well beyond the hold. */
const AGGREGATES = 20;
/** Lease 5 s (the default): a renewal's success counts for 4 s after it was sent; a call gives up after 5 s. */
const LEASE_MS = 5_000;
/**
 * The fault's timeline on the member's lease connection (lease 5 s: a
 * renewal's success counts until it was sent + 4 s; ticks 1 s apart):
 * 1. Renewals sent at P are answered 2.5 s late: still valid (until ≥ P + 3 s).
 * 2. Half a second later the next hold begins; the next renewals, sent at
 *    S ≈ P + 3.5 s, are answered 1.5 s late. The lease lapsed at P + 4 s,
 *    before their answer; the answer itself says valid until S + 4 s.
 * Before the fix the lanes came back to life for those seconds without a
 * rewind. On a very busy machine the steps can blur (a renewal answered after
 * it timed out): then the old code lapses for good too and the test proves
 * less, but never fails for it.
 */
const FIRST_DELAY_MS = 2_500;
const GAP_MS = 500;
const SECOND_DELAY_MS = 1_500;
/** Bound for "every acknowledged event applied": well above AckWait (30 s) plus the run. */
const SETTLE_TIMEOUT_MS = 150_000;

describe('nats lease renewal answered after the lease lapsed (fault suite)', { timeout: 300_000 }, () => {
  let server: NatsServerHandle;
  before(async () => {
    server = await startNatsServer({ jetstream: true });
  });
  after(async () => {
    await server?.stop();
  });

  it('the lanes are dropped and rewound, never revived: 0 lost, 0 out of order, 0 overlaps', async () => {
    const topic = `lapse-${randomUUID().slice(0, 8)}`;
    await using proxy = await startTcpProxy({ port: server.port });
    await using members = createMembers({ checker: createOrderChecker() });
    await members.start('m1', {
      topic,
      bus: {
        transport: 'nats',
        // Pings every 10 s: the held connection is late, not stale (no reconnect muddles the case).
        nats: { servers: `nats://${proxy.address}`, group: { leaseMs: LEASE_MS }, pingIntervalMs: 10_000 },
      },
      subscribe: { group: 'workers' },
      handler: { delayMs: [5, 10] },
    });
    let publisher: EventBus | undefined;
    try {
      publisher = await createLoadPublisher(
        { transport: 'nats', nats: { servers: server.url } },
        members.checker,
      );
      await publishLoad(publisher, topic, members.checker, { events: EVENTS, aggregates: AGGREGATES });
    } finally {
      await publisher?.close({ timeoutMs: 10_000 });
    }
    // The whole backlog is in the stream; the member has only started on it.
    await members.waitUntil(() => members.counts('m1').applied >= 1_000, SETTLE_TIMEOUT_MS, 'progress');
    const leases = (opening: string) => opening.includes('"name":"m1-leases"');
    // Real time on purpose in the three waits: they are the fault's shape, not waits for an outcome.
    const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    const first = proxy.holdReplies(leases);
    await first.firstHeld;
    const appliedAtHold = members.counts('m1').applied;
    await pause(FIRST_DELAY_MS);
    first.release();
    await pause(GAP_MS);
    const second = proxy.holdReplies(leases);
    await second.firstHeld;
    await pause(SECOND_DELAY_MS);
    second.release();
    const appliedAtRelease = members.counts('m1').applied;
    await members.waitUntil(
      () => members.checker.outstanding() === 0,
      SETTLE_TIMEOUT_MS,
      'every acknowledged event applied',
    );
    await members.close('m1');
    const r = members.checker.report();
    const x = members.executions.report();
    const text = `${formatReport(r)} | ${formatExecutionReport(x)}`;
    process.stdout.write(
      `# fault lease lapse: held ${first.chunks} + ${second.chunks} chunks, applied ${appliedAtHold} → ${appliedAtRelease} meanwhile; ${text}\n`,
    );
    assert.ok(appliedAtRelease < EVENTS, 'the hold happened while the backlog was being worked through');
    assert.equal(r.acknowledged, EVENTS, text);
    assert.equal(r.lost, 0, text);
    assert.equal(r.unexpected, 0, text);
    assert.equal(r.outOfOrder, 0, text);
    assert.equal(x.overlaps, 0, text);
    assert.equal(x.unmatched, 0, text);
    // Executions whose settlement did not count: the member's lanes lapsed while they ran (the fault took effect).
    assert.ok(x.fenced > 0, `the member saw its leases lapse: ${text}`);
  });
});
