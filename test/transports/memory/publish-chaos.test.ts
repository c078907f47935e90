/**
 * Publish-side chaos of the memory transport (src/transports/memory/publish-chaos.ts):
 * each fault on the transport's send contract, then on the real bus (its retries
 * and the broker's de-duplication turn the faults into one stored copy each).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createEventBus } from '../../../src/bus/create-event-bus.ts';
import { decodeEnvelope } from '../../../src/core/envelope.ts';
import {
  InvalidArgumentError,
  PublishRejectedError,
  TimeoutError,
  TransportError,
} from '../../../src/core/errors.ts';
import { silentLogger } from '../../../src/core/logger.ts';
import type { OutboundMessage, PublishOutcome, Transport } from '../../../src/core/transport.ts';
import type { PublishResult } from '../../../src/core/types.ts';
import { createOrderChecker, formatReport } from '../../../src/testing/index.ts';
import {
  createMemoryBroker,
  createMemoryTransport,
  type MemoryBroker,
  type MemoryPublishChaosOptions,
} from '../../../src/transports/memory/index.ts';

const encoder = new TextEncoder();

function message(msgId: string, key = 'k'): OutboundMessage {
  return { topic: 't', kind: 'envelope', data: encoder.encode(msgId), headers: {}, msgId, key };
}

async function transport(broker: MemoryBroker, publish: MemoryPublishChaosOptions): Promise<Transport> {
  return createMemoryTransport({ broker, chaos: { publish } }, { clientId: 'chaos', logger: silentLogger });
}

/** Sends and returns the outcome promise, recording whether the callback ran inside send(). */
function send(t: Transport, m: OutboundMessage): { outcome: Promise<PublishOutcome>; synchronous: boolean } {
  let inside = true;
  let synchronous = false;
  const outcome = new Promise<PublishOutcome>((resolve) =>
    t.send(m, (o) => {
      synchronous = inside;
      resolve(o);
    }),
  );
  inside = false;
  return { outcome, synchronous };
}

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => {
    open = r;
  });
  return { promise, open };
}

const stored = (broker: MemoryBroker) => broker.messages('t').map((m) => new TextDecoder().decode(m.data));

describe('memory transport: publish chaos', () => {
  it("'fail' stores nothing and reports a retryable TransportError (or the given error), never inside send", async () => {
    const broker = createMemoryBroker();
    const t = await transport(broker, {
      fault: (m) =>
        m.msgId === 'a'
          ? { kind: 'fail' }
          : m.msgId === 'b'
            ? { kind: 'fail', error: new PublishRejectedError('stream full') }
            : undefined,
    });
    const a = send(t, message('a'));
    const b = send(t, message('b'));
    const c = send(t, message('c'));
    const [oa, ob, oc] = await Promise.all([a.outcome, b.outcome, c.outcome]);
    assert.equal(a.synchronous || b.synchronous || c.synchronous, false);
    assert.ok(!oa.ok && oa.error instanceof TransportError && oa.error.retryable);
    assert.ok(!ob.ok && ob.error instanceof PublishRejectedError && !ob.error.retryable);
    assert.equal(oc.ok, true);
    assert.deepEqual(stored(broker), ['c']);
    await t.close(AbortSignal.abort());
  });

  it("'lose-ack' stores the message and reports a TimeoutError; the same-id re-send is a duplicate", async () => {
    const broker = createMemoryBroker();
    let lost = 0;
    const t = await transport(broker, { fault: () => (lost++ === 0 ? { kind: 'lose-ack' } : undefined) });
    const first = await send(t, message('a')).outcome;
    assert.ok(!first.ok && first.error instanceof TimeoutError && first.error.retryable);
    assert.deepEqual(stored(broker), ['a'], 'stored although the ack was lost');
    const again = await send(t, message('a')).outcome;
    assert.deepEqual(again, { ok: true, sequence: 1, duplicate: true });
    await t.close(AbortSignal.abort());
  });

  it("'hold-ack' stores at once and acks when released, in release order (acks out of send order)", async () => {
    const broker = createMemoryBroker();
    const gates = new Map([
      ['a', gate()],
      ['b', gate()],
    ]);
    const t = await transport(broker, {
      fault: (m) => ({ kind: 'hold-ack', until: (gates.get(m.msgId) as ReturnType<typeof gate>).promise }),
    });
    const acked: string[] = [];
    const a = send(t, message('a', 'x')).outcome.then((o) => acked.push(`a:${o.ok}`));
    const b = send(t, message('b', 'y')).outcome.then((o) => acked.push(`b:${o.ok}`));
    assert.deepEqual(stored(broker), ['a', 'b'], 'stored in send order before any ack');
    gates.get('b')?.open();
    await b;
    assert.deepEqual(acked, ['b:true']);
    gates.get('a')?.open();
    await a;
    assert.deepEqual(acked, ['b:true', 'a:true']);
    await t.close(AbortSignal.abort());
  });

  it('close waits for held acks until its deadline, then ends them as TimeoutError (outcome unknown)', async () => {
    const broker = createMemoryBroker();
    const release = gate();
    const never = gate();
    const t = await transport(broker, {
      fault: (m) => ({ kind: 'hold-ack', until: m.msgId === 'a' ? release.promise : never.promise }),
    });
    const a = send(t, message('a')).outcome;
    const b = send(t, message('b')).outcome;
    const deadline = new AbortController();
    let closed = false;
    const closing = t.close(deadline.signal).then(() => {
      closed = true;
    });
    release.open();
    assert.equal((await a).ok, true, 'an ack released before the deadline is reported as such');
    assert.equal(closed, false, 'close still waits for the other held ack');
    deadline.abort();
    await closing;
    const ob = await b;
    assert.ok(!ob.ok && ob.error instanceof TimeoutError);
    never.open(); // a late release reports nothing a second time (the callback above ran once)
  });

  it('on the bus: injected failures and lost acks are retried by the bus; each event stored once, in order', async () => {
    const broker = createMemoryBroker();
    const checker = createOrderChecker();
    const results: PublishResult[] = [];
    const bus = await createEventBus({
      transport: 'memory',
      clientId: 'chaos-pub',
      memory: { broker, chaos: { seed: 7, publish: { failRate: 0.2, lostAckRate: 0.2, maxAckDelayMs: 3 } } },
      metrics: { enabled: false },
      onPublishResult: (r) => results.push(r),
    });
    const total = 200;
    for (let i = 0; i < total; i++) {
      const aggregateId = `a${i % 10}`;
      const accepted = await bus.publishEnvelope('chaos-pub', {
        aggregateId,
        eventType: 'T',
        eventVersion: 1,
        payload: i,
      });
      checker.expect(accepted.eventId, aggregateId, Math.floor(i / 10));
    }
    await bus.flush({ timeoutMs: 60_000 });
    await bus.close();
    assert.equal(results.length, total);
    assert.deepEqual(
      results.filter((r) => !r.success),
      [],
    );
    assert.ok(
      results.some((r) => r.attempts > 1),
      'the chaos made the bus retry',
    );
    assert.ok(
      results.some((r) => r.duplicate),
      'a lost ack made a re-send the broker de-duplicated',
    );
    for (const m of broker.messages('chaos-pub')) {
      const e = decodeEnvelope(m.data);
      checker.observe(e.eventId, e.aggregateId, Math.floor((e.payload as number) / 10));
    }
    const report = checker.report();
    assert.equal(report.lost, 0, formatReport(report));
    assert.equal(report.duplicated, 0, formatReport(report));
    assert.equal(report.outOfOrder, 0, formatReport(report));
  });

  it('validates its options', async () => {
    const make = (publish: unknown) =>
      createEventBus({
        transport: 'memory',
        clientId: 'x',
        memory: { broker: createMemoryBroker(), chaos: { publish: publish as MemoryPublishChaosOptions } },
      });
    await assert.rejects(make({ failRate: 1.5 }), InvalidArgumentError);
    await assert.rejects(make({ lostAckRate: -1 }), InvalidArgumentError);
    await assert.rejects(make({ maxAckDelayMs: Number.NaN }), InvalidArgumentError);
    await assert.rejects(make({ fault: 'fail' }), InvalidArgumentError);
    await assert.rejects(make({ failNext: 3 }), /memory\.chaos\.publish\.failNext/);
  });
});
