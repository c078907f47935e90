import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Transport, TransportSubscription } from '../../../src/core/transport.ts';
import { type NatsServerHandle, startNatsServer } from '../../harness/nats-server.ts';
import {
  FakeFlow,
  groupConsumers,
  type Inspector,
  inspector,
  message,
  openTransport,
  pipeline,
  publishStats,
  publishUntilStored,
  subscriptionStats,
  waitUntil,
} from './helpers.ts';

describe('nats transport across server failures', () => {
  let server: NatsServerHandle;
  let transport: Transport;
  let inspect: Inspector;
  const subscriptions: TransportSubscription[] = [];

  before(async () => {
    server = await startNatsServer({ jetstream: true });
    transport = await openTransport(server.url, {
      publishTimeoutMs: 1_000,
      publishRetries: 2,
      consumer: { ackWaitMs: 100 }, // raised to 1 s (handlerTimeoutMs 0 + 1 s margin)
    });
  });

  after(async () => {
    for (const s of subscriptions) await s.close();
    await transport?.close(AbortSignal.timeout(5_000));
    await inspect?.close();
    await server?.stop();
  });

  async function freshInspector(): Promise<Inspector> {
    await inspect?.close();
    inspect = await inspector(server.url);
    return inspect;
  }

  async function restartServer(): Promise<void> {
    await server.kill('SIGKILL');
    await server.restart();
  }

  for (const publishRetries of [2, 0]) {
    it(`kill -9 + restart mid-publish (publishRetries ${publishRetries}): one done per send; same-id retries store each message exactly once`, async () => {
      const sender = await openTransport(server.url, { publishTimeoutMs: 1_000, publishRetries });
      try {
        const topic = `crash.r${publishRetries}`;
        await sender.ensureTopic(topic, 'envelope');
        const total = 5_000;
        const messages = Array.from({ length: total }, (_, i) => message(topic, `c${i}`, `${topic}-${i}`));
        let crash: Promise<void> | undefined;
        const { firstRound, rounds, failuresByCode, retriedDuplicates } = await publishUntilStored(
          sender,
          messages,
          500,
          (done) => {
            if (done === 1_500) crash = restartServer();
          },
        );
        await crash;
        assert.equal(firstRound.synchronous, 0);
        assert.ok(
          firstRound.calls.every((c) => c === 1),
          'exactly one done per send',
        );
        if (publishRetries === 0)
          assert.ok((failuresByCode.EVENTBUS_TIMEOUT ?? 0) > 0, 'some sends timed out');
        console.log(
          `kill -9 mid-publish, publishRetries ${publishRetries}: first-round failures ${JSON.stringify(failuresByCode)}, ` +
            `rounds ${rounds}, transport resends ${publishStats(sender).resends}, retries answered duplicate ${retriedDuplicates}`,
        );
        const ids = await (await freshInspector()).msgIds(`EVENTBUS_crash_r${publishRetries}`);
        assert.equal(ids.length, total, 'stored exactly once each');
        assert.equal(new Set(ids).size, total);
        assert.ok((sender.health().details?.reconnects as number) >= 1);
      } finally {
        await sender.close(AbortSignal.timeout(5_000));
      }
    });
  }

  it('a stalled server: publishes are resent with the same Nats-Msg-Id and stored once', async () => {
    await transport.ensureTopic('stall.topic', 'envelope');
    const messages = Array.from({ length: 100 }, (_, i) => message('stall.topic', `s${i}`, `stall-${i}`));
    const resendsBefore = publishStats(transport).resends;
    await server.kill('SIGSTOP');
    let result: ReturnType<typeof pipeline>;
    try {
      result = pipeline(transport, messages, 1_000);
      // publishTimeoutMs is 1 s and stale-connection detection ~4-6 s: resends happen on the live socket.
      // Under heavy machine load stale detection may win the race; either way the
      // resends (on the live socket, or buffered for the reconnect) carry the same ids.
      await waitUntil(
        () => publishStats(transport).resends - resendsBefore >= 100 || !transport.health().connected,
        'every message was resent (or the stall was detected)',
        30_000,
      );
      assert.ok(
        publishStats(transport).resends - resendsBefore > 0,
        'publishes were resent during the stall',
      );
    } finally {
      await server.kill('SIGCONT');
    }
    const { outcomes } = await result;
    assert.deepEqual(
      outcomes.filter((o) => !o.ok),
      [],
    );
    const ids = await (await freshInspector()).msgIds('EVENTBUS_stall_topic');
    assert.equal(ids.length, 100);
    assert.equal(new Set(ids).size, 100);
  });

  it('a subscription keeps flowing after kill -9 + restart (re-pulls after reconnect)', async () => {
    await transport.ensureTopic('survive.topic', 'envelope');
    const flow = new FakeFlow(10_000);
    flow.onDeliver = (m) => m.ack();
    subscriptions.push(
      await transport.subscribe(
        { topic: 'survive.topic', group: 'g', kind: 'envelope', handlerTimeoutMs: 0 },
        flow,
      ),
    );
    await publishUntilStored(
      transport,
      Array.from({ length: 10 }, (_, i) => message('survive.topic', `a${i}`)),
    );
    await waitUntil(() => flow.delivered.length >= 10, 'first 10');
    await restartServer();
    await publishUntilStored(
      transport,
      Array.from({ length: 10 }, (_, i) => message('survive.topic', `b${i}`)),
    );
    await waitUntil(
      () => new Set(flow.delivered.map((m) => m.sequence)).size === 20,
      'all 20 after the restart',
      20_000,
    );
  });

  it('consumption survives a stalled server (SIGSTOP past stale detection); pulls stay within capacity', async () => {
    await transport.ensureTopic('stall.consume', 'envelope');
    await publishUntilStored(
      transport,
      Array.from({ length: 200 }, (_, i) => message('stall.consume', `a${i}`)),
    );
    const flow = new FakeFlow(50);
    flow.onDeliver = (m) =>
      setImmediate(() => {
        m.ack();
        flow.release(1);
      });
    subscriptions.push(
      await transport.subscribe(
        { topic: 'stall.consume', group: 'g', kind: 'envelope', handlerTimeoutMs: 0 },
        flow,
      ),
    );
    await waitUntil(() => flow.delivered.length >= 200, 'first 200');
    await server.kill('SIGSTOP');
    try {
      // pingInterval 2 s × maxPingOut 2: the client gives up on the connection within ~6 s.
      await waitUntil(() => !transport.health().connected, 'stale connection detected', 15_000, 50);
    } finally {
      await server.kill('SIGCONT');
    }
    await publishUntilStored(
      transport,
      Array.from({ length: 200 }, (_, i) => message('stall.consume', `b${i}`)),
    );
    await waitUntil(() => new Set(flow.delivered.map((m) => m.sequence)).size === 400, 'all 400', 20_000);
    assert.ok(flow.lowestCapacity >= 0, `capacity went to ${flow.lowestCapacity}`);
  });

  it('a raw (memory) stream lost in a restart is recreated when a publish finds it missing', async () => {
    await transport.ensureTopic('memory.topic', 'raw');
    const raw = (i: number) => ({ ...message('memory.topic', `r${i}`), kind: 'raw' as const });
    assert.deepEqual(
      (await pipeline(transport, [raw(0)])).outcomes.filter((o) => !o.ok),
      [],
    );
    await server.restart(); // graceful: memory streams are gone afterwards
    await waitUntil(() => transport.health().connected, 'reconnected');
    // No ensureTopic() again: the 503 answer makes the transport recreate the stream,
    // and the sweep's same-id resend then lands in it.
    const { outcomes } = await pipeline(transport, [raw(1)]);
    assert.deepEqual(
      outcomes.filter((o) => !o.ok),
      [],
    );
    const info = await (await freshInspector()).jsm.streams.info('EVENTBUS_memory_topic');
    assert.equal(info.config.storage, 'memory');
    assert.equal(info.state.messages, 1);
  });

  it('acks lost in a crash: the redeliveries are acked again and skipped, not delivered twice', async () => {
    await transport.ensureTopic('lostack.topic', 'envelope');
    await publishUntilStored(
      transport,
      Array.from({ length: 20 }, (_, i) => message('lostack.topic', `l${i}`)),
    );
    const flow = new FakeFlow(10_000);
    subscriptions.push(
      await transport.subscribe(
        { topic: 'lostack.topic', group: 'g', kind: 'envelope', handlerTimeoutMs: 0 },
        flow,
      ),
    );
    await waitUntil(() => flow.delivered.length === 20, '20 deliveries');
    // The server cannot read these acks (stopped), then dies: they are lost for sure.
    await server.kill('SIGSTOP');
    for (const m of flow.delivered) m.ack();
    await restartServer();
    // The partition's consumer after the rewind that followed the reconnect.
    const floor = async () => {
      const lanes = await groupConsumers((await freshInspector()).jsm, 'EVENTBUS_lostack_topic', 'g');
      return Math.max(0, ...lanes.map((info) => info.ack_floor.stream_seq));
    };
    await waitUntil(async () => (await floor()) === 20, 'the broker has all 20 acks', 20_000, 100);
    assert.equal(flow.delivered.length, 20, 'nothing delivered twice');
    assert.ok(subscriptionStats(transport, 'lostack.topic').skippedAcked >= 1);
  });
});
