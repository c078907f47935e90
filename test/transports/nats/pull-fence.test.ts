/**
 * The fence against a real nats-server: the number it hands the ledger is the
 * consumer's count of deliveries, redeliveries included (what the ledger's
 * tail arithmetic assumes, see pull-ledger.ts), and reads asked for while one
 * is under way are coalesced into one more.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AckPolicy, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { PullFence } from '../../../src/transports/nats/pull-fence.ts';
import type { PullLedger } from '../../../src/transports/nats/pull-ledger.ts';
import { type NatsServerHandle, startNatsServer } from '../../harness/nats-server.ts';
import { captureLogger } from './helpers.ts';

let server: NatsServerHandle;
let nc: NatsConnection;

before(async () => {
  server = await startNatsServer();
  nc = await connect({ servers: server.url });
});
after(async () => {
  await nc?.close();
  await server?.stop();
});

/** A ledger stand-in that records each settle() the fence makes. */
function recordingLedger(generation: number) {
  const settled: Array<{ delivered: number; generation: number }> = [];
  const waiters: Array<() => void> = [];
  const ledger = {
    generation,
    settle(delivered: number, _sentAt: number, answeredFor: number) {
      settled.push({ delivered, generation: answeredFor });
      for (const wake of waiters.splice(0)) wake();
    },
  };
  const settledCount = (n: number): Promise<void> =>
    settled.length >= n
      ? Promise.resolve()
      : new Promise((resolve) => waiters.push(() => resolve(settledCount(n))));
  return { ledger: ledger as unknown as PullLedger, settled, settledCount };
}

/** A fence on durable `d` of `stream`. */
function fenceOn(jsm: JetStreamManager, stream: string): PullFence {
  return new PullFence({
    jsm,
    logger: captureLogger(),
    stream,
    durable: 'd',
    topic: stream.toLowerCase(),
    connected: () => !nc.isClosed(),
  });
}

describe('nats pull fence (real nats-server)', () => {
  it("hands the ledger the consumer's delivered sequence: every delivery, redeliveries too", async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'FENCE', subjects: ['fence'] });
    await jsm.consumers.add('FENCE', { durable_name: 'd', ack_policy: AckPolicy.Explicit });
    const js = jetstream(nc);
    for (let i = 0; i < 5; i++) await js.publish('fence', `m${i}`);
    const consumer = await js.consumers.get('FENCE', 'd');
    // All five first, so that the only message left to deliver is the nak'ed one.
    const first = await consumer.fetch({ max_messages: 5, expires: 2_000 });
    let nakked = false;
    for await (const m of first) {
      if (!nakked) {
        m.nak(); // delivered again below: a sixth delivery of five messages
        nakked = true;
      } else m.ack();
    }
    const again = await consumer.fetch({ max_messages: 1, expires: 2_000 });
    for await (const m of again) {
      assert.equal(m.info.deliveryCount, 2, 'the redelivery');
      m.ack();
    }

    const fence = fenceOn(jsm, 'FENCE');
    const { ledger, settled, settledCount } = recordingLedger(7);
    fence.request(ledger);
    await settledCount(1);
    assert.deepEqual(settled, [{ delivered: 6, generation: 7 }]);
  });

  it('requests made while a read is under way become one more read, not one each', async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'FENCE2', subjects: ['fence2'] });
    await jsm.consumers.add('FENCE2', { durable_name: 'd', ack_policy: AckPolicy.Explicit });
    let reads = 0;
    const counting = {
      consumers: {
        info: (stream: string, durable: string) => {
          reads++;
          return jsm.consumers.info(stream, durable);
        },
      },
    } as unknown as JetStreamManager;
    const fence = fenceOn(counting, 'FENCE2');
    const { ledger, settled, settledCount } = recordingLedger(1);
    fence.request(ledger);
    fence.request(ledger);
    fence.request(ledger);
    await settledCount(2);
    // The read after the second one would start in its finally(), a microtask away.
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(reads, 2);
    assert.deepEqual(
      settled.map((s) => s.delivered),
      [0, 0],
    );
    fence.close();
    fence.request(ledger);
    assert.equal(reads, 2, 'a closed fence reads nothing');
  });
});
