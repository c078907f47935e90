import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TransportError } from '../../../src/core/errors.ts';
import type { Transport, TransportSubscription } from '../../../src/core/transport.ts';
import { type NatsServerHandle, startNatsServer } from '../../harness/nats-server.ts';
import {
  captureLogger,
  FakeFlow,
  type Inspector,
  inspector,
  message,
  openTransport,
  pipeline,
  sendAsync,
  subscriptionStats,
  waitUntil,
} from './helpers.ts';

const decoder = new TextDecoder();

describe('nats subscribe (pull loop of one durable consumer: raw topics; envelope topics run one per partition)', () => {
  let server: NatsServerHandle;
  let transport: Transport;
  let inspect: Inspector;
  const subscriptions: TransportSubscription[] = [];
  const logger = captureLogger();

  before(async () => {
    server = await startNatsServer({ jetstream: true });
    // AckWait 100 ms is raised to handlerTimeoutMs + 1 s: 1 s with handlerTimeoutMs 0.
    transport = await openTransport(server.url, { consumer: { ackWaitMs: 100 } }, logger);
    inspect = await inspector(server.url);
  });

  after(async () => {
    for (const s of subscriptions) await s.close();
    await transport?.close(AbortSignal.timeout(5_000));
    await inspect?.close();
    await server?.stop();
  });

  async function publish(topic: string, count: number, prefix = 'm'): Promise<void> {
    await transport.ensureTopic(topic, 'raw');
    const result = await pipeline(
      transport,
      Array.from({ length: count }, (_, i) => message(topic, `${prefix}${i}`)),
    );
    assert.deepEqual(
      result.outcomes.filter((o) => !o.ok),
      [],
    );
  }

  async function subscribe(
    topic: string,
    flow: FakeFlow,
    group = 'g1',
    handlerTimeoutMs = 0,
  ): Promise<TransportSubscription> {
    const sub = await transport.subscribe({ topic, group, kind: 'raw', handlerTimeoutMs }, flow);
    subscriptions.push(sub);
    return sub;
  }

  async function consumerState(topic: string, group = 'g1') {
    return inspect.jsm.consumers.info(`EVENTBUS_${topic.replaceAll('.', '_')}`, group);
  }

  it('delivers in stream order as InboundMessage (headers record, sequence, deliveryCount)', async () => {
    await publish('order.topic', 2_000);
    const flow = new FakeFlow(10_000);
    flow.onDeliver = (m) => m.ack();
    const sub = await subscribe('order.topic', flow);
    await waitUntil(() => flow.delivered.length >= 2_000, '2,000 deliveries');
    flow.delivered.forEach((m, i) => {
      assert.equal(m.sequence, i + 1);
      assert.equal(decoder.decode(m.data), `m${i}`);
      assert.equal(m.topic, 'order.topic');
      assert.equal(m.key, undefined);
      assert.equal(m.deliveryCount, 1);
      assert.equal(m.headers['Nats-Msg-Id'], m.headers['X-Event-ID']);
    });
    await sub.stop();
    await waitUntil(
      async () => (await consumerState('order.topic')).ack_floor.stream_seq === 2_000,
      'all acked',
    );
    assert.equal(flow.errors.length, 0);
  });

  it('pulls never exceed free capacity: 0 → nothing delivered; raising it resumes', async () => {
    await publish('capacity.topic', 1_000);
    const flow = new FakeFlow(0);
    const sub = await subscribe('capacity.topic', flow);
    await waitUntil(() => flow.waits > 0, 'the loop waits for capacity');
    assert.equal(flow.delivered.length, 0);
    assert.equal(subscriptionStats(transport, 'capacity.topic').pulls, 0);

    flow.setCapacity(7);
    await waitUntil(() => flow.delivered.length === 7 && flow.waits > 1, '7 deliveries, then waiting again');
    const state = await consumerState('capacity.topic');
    assert.equal(state.num_ack_pending, 7, 'the broker handed out only what was asked for');
    assert.equal(state.num_pending, 993);

    // A dispatcher that finishes each message a little later (capacity comes back in bursts).
    flow.onDeliver = (m) => {
      setImmediate(() => {
        m.ack();
        flow.release(1);
      });
    };
    for (const m of flow.delivered) m.ack();
    flow.release(7);
    await waitUntil(() => flow.delivered.length === 1_000, 'all 1,000 delivered', 20_000, 5);
    assert.ok(flow.lowestCapacity >= 0, `capacity went to ${flow.lowestCapacity}`);
    assert.deepEqual(
      flow.delivered.map((m) => m.sequence),
      Array.from({ length: 1_000 }, (_, i) => i + 1),
    );
    await sub.stop();
  });

  it('pull sizes adapt: an empty consumer is asked for little, a backlog brings the full batch back', async () => {
    await transport.ensureTopic('adapt.topic', 'raw');
    // What the loop asks for, read off the wire by a second connection.
    const asked: number[] = [];
    const spy = inspect.nc.subscribe('$JS.API.CONSUMER.MSG.NEXT.*.g1_adapt', {
      callback: (_error, msg) => {
        asked.push((JSON.parse(decoder.decode(msg.data)) as { batch: number }).batch);
      },
    });
    await inspect.nc.flush();
    const flow = new FakeFlow(10_000);
    flow.onDeliver = (m) => {
      m.ack();
      flow.release(1);
    };
    const sub = await transport.subscribe(
      { topic: 'adapt.topic', group: 'g1_adapt', kind: 'raw', handlerTimeoutMs: 0 },
      flow,
    );
    subscriptions.push(sub);
    // Nothing to deliver: after the first (full) pull expires, the loop asks for the minimum.
    await waitUntil(() => asked.length >= 3, 'three pulls on the empty consumer');
    assert.equal(asked[0], 500, `first pull: ${asked.join(',')}`);
    assert.ok(
      asked.slice(1).every((b) => b === 32),
      `later pulls on an empty consumer: ${asked.join(',')}`,
    );
    // A backlog: filled pulls double the size back up to fetchBatch, every message delivered in order.
    const before = asked.length;
    await publish('adapt.topic', 3_000, 'b');
    await waitUntil(() => flow.delivered.length === 3_000, 'the backlog delivered');
    assert.ok(
      asked.slice(before).includes(500),
      `pulls after the backlog arrived: ${asked.slice(before).join(',')}`,
    );
    assert.deepEqual(
      flow.delivered.map((m) => m.sequence),
      Array.from({ length: 3_000 }, (_, i) => i + 1),
    );
    spy.unsubscribe();
    await sub.stop();
  });

  it('a trickle: the next pull is sent before the last one expires, yet never for more than is free', async () => {
    await transport.ensureTopic('trickle.topic', 'raw');
    const flow = new FakeFlow(40); // never released: 40 deliveries fill it for good
    const sub = await subscribe('trickle.topic', flow);
    // About 200 msg/s for 0.6 s: each 100 ms pull gets ~20 and is followed up
    // 25 ms before its expiry while the server may still hand it ~5 more.
    const outcomes: Promise<unknown>[] = [];
    for (let i = 0; i < 120; i++) {
      outcomes.push(sendAsync(transport, message('trickle.topic', `t${i}`)));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await Promise.all(outcomes);
    await waitUntil(
      () => flow.delivered.length === 40 && flow.waits > 0,
      '40 deliveries, then waiting for capacity',
    );
    assert.ok(
      flow.lowestCapacity >= 0,
      `pulls asked for more than was free: capacity went to ${flow.lowestCapacity}`,
    );
    assert.equal(flow.delivered.length, 40);
    assert.equal((await consumerState('trickle.topic')).num_ack_pending, 40, 'the broker handed out only 40');
    await sub.stop();
  });

  it('nak → redelivered (immediately, or after the delay)', async () => {
    await publish('nak.topic', 1);
    const flow = new FakeFlow(100);
    let nakAt = 0;
    flow.onDeliver = (m) => {
      if (m.deliveryCount === 1) m.nak();
      else if (m.deliveryCount === 2) {
        nakAt = performance.now();
        m.nak(300);
      } else m.ack();
      m.nak(); // idempotent: ignored after the first settlement
    };
    // AckWait 31 s: on a busy machine a 1 s AckWait can lapse before a nak
    // arrives, and the broker's own redelivery would count as one more.
    // Pulls of 5 s: no pull of ours expires during the test. nats-server 2.9.10
    // mishandles a redelivery that comes due while an expired pull is still
    // queued: it takes the redelivery (counting it) but, finding no live pull,
    // steps its stream cursor back, so it re-sends its last message as a first
    // delivery (traced here with 100 ms pulls: delivery counts 1, 2, 1, 4).
    const own = await openTransport(
      server.url,
      { consumer: { ackWaitMs: 100, fetchMaxWaitMs: 5_000 } },
      logger,
    );
    try {
      const sub = await own.subscribe(
        { topic: 'nak.topic', group: 'g1', kind: 'raw', handlerTimeoutMs: 30_000 },
        flow,
      );
      await waitUntil(
        () => flow.delivered.length === 3,
        `two redeliveries (got deliveryCounts ${JSON.stringify(flow.delivered.map((m) => m.deliveryCount))}, errors ${flow.errors.map((e) => e.message).join('; ')})`,
      );
      const third = flow.delivered[2];
      assert.ok(third !== undefined);
      assert.equal(third.sequence, 1);
      assert.equal(third.deliveryCount, 3);
      assert.ok(performance.now() - nakAt >= 250, 'nak(300) was honoured');
      await sub.stop();
    } finally {
      // Closes the subscription too.
      await own.close(AbortSignal.timeout(5_000));
    }
  });

  it('term → not redelivered (the broker settles it)', async () => {
    await publish('term.topic', 2);
    const flow = new FakeFlow(100);
    flow.onDeliver = (m) => (m.sequence === 1 ? m.term('poison') : m.ack());
    const sub = await subscribe('term.topic', flow);
    await waitUntil(async () => {
      const s = await consumerState('term.topic');
      return s.ack_floor.stream_seq === 2 && s.num_ack_pending === 0;
    }, 'the broker settled both');
    assert.equal(flow.delivered.length, 2);
    assert.equal((await consumerState('term.topic')).num_redelivered, 0);
    await sub.stop();
  });

  it('a redelivery of a message still in flight is absorbed, and the ack reaches the live delivery', async () => {
    await publish('slow.topic', 1);
    const flow = new FakeFlow(100);
    const sub = await subscribe('slow.topic', flow);
    await waitUntil(() => flow.delivered.length === 1, 'first delivery');
    // AckWait is 1 s: the broker redelivers while our "handler" still holds it.
    await waitUntil(
      () => subscriptionStats(transport, 'slow.topic').skippedInFlight >= 1,
      'a redelivery',
      10_000,
    );
    assert.equal(flow.delivered.length, 1);
    flow.delivered[0]?.ack();
    await waitUntil(async () => (await consumerState('slow.topic')).num_ack_pending === 0, 'acked');
    assert.equal(flow.delivered.length, 1);
    await sub.stop();
  });

  it('a deleted consumer is recreated (reported) and flows again without redelivering acked messages', async () => {
    await publish('delete.topic', 10, 'a');
    const flow = new FakeFlow(1_000);
    flow.onDeliver = (m) => m.ack();
    const sub = await subscribe('delete.topic', flow);
    await waitUntil(
      async () => (await consumerState('delete.topic')).ack_floor.stream_seq === 10,
      'first 10 acked',
    );
    await inspect.jsm.consumers.delete('EVENTBUS_delete_topic', 'g1');
    await publish('delete.topic', 10, 'b');
    await waitUntil(() => flow.delivered.length >= 20, 'the next 10 after recreation', 20_000);
    assert.deepEqual(
      flow.delivered.map((m) => m.sequence),
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    assert.ok(
      flow.errors.some((e) => e instanceof TransportError && /was deleted; recreated it/.test(e.message)),
    );
    assert.equal(subscriptionStats(transport, 'delete.topic').recreated, 1);
    await sub.stop();
  });

  it('a deleted stream is recreated and consumption starts over on the new stream', async () => {
    await publish('gone.topic', 3, 'old');
    const flow = new FakeFlow(1_000);
    flow.onDeliver = (m) => m.ack();
    const sub = await subscribe('gone.topic', flow);
    await waitUntil(() => flow.delivered.length === 3, 'first 3');
    await inspect.jsm.streams.delete('EVENTBUS_gone_topic');
    await waitUntil(
      () => flow.errors.some((e) => /stream EVENTBUS_gone_topic was deleted/.test(e.message)),
      'recreation',
    );
    await publish('gone.topic', 2, 'new');
    await waitUntil(() => flow.delivered.length === 5, 'the new stream flows', 20_000);
    assert.deepEqual(
      flow.delivered.slice(3).map((m) => [m.sequence, decoder.decode(m.data)]),
      [
        [1, 'new0'],
        [2, 'new1'],
      ],
    );
    await sub.stop();
  });

  it('two subscriptions of one group in one process share the messages (with a warning)', async () => {
    await publish('twice.topic', 100);
    const a = new FakeFlow(1_000);
    const b = new FakeFlow(1_000);
    a.onDeliver = (m) => m.ack();
    b.onDeliver = (m) => m.ack();
    await subscribe('twice.topic', a, 'same');
    await subscribe('twice.topic', b, 'same');
    await waitUntil(() => a.delivered.length + b.delivered.length === 100, 'all 100 between them');
    const sequences = [...a.delivered, ...b.delivered].map((m) => m.sequence);
    assert.equal(new Set(sequences).size, 100);
    assert.ok(logger.entries.some((e) => e.level === 'warn' && /2 subscriptions share durable/.test(e.msg)));
  });

  it('naks after stop() reach the broker in stream order, so the next member gets them in order', async () => {
    await publish('handover.topic', 10);
    const first = new FakeFlow(10);
    const sub = await subscribe('handover.topic', first, 'handover');
    await waitUntil(() => first.delivered.length === 10, '10 in flight');
    await sub.stop();
    // Actors finish in any order at shutdown; the bus naks what did not finish.
    for (const m of [...first.delivered].reverse()) m.nak();
    await sub.close();
    const next = new FakeFlow(100);
    next.onDeliver = (m) => m.ack();
    await subscribe('handover.topic', next, 'handover');
    await waitUntil(() => next.delivered.length === 10, 'the next member gets all 10');
    assert.deepEqual(
      next.delivered.map((m) => m.sequence),
      Array.from({ length: 10 }, (_, i) => i + 1),
    );
  });

  it('after stop() nothing more is delivered; what arrives is handed back to the group', async () => {
    await transport.ensureTopic('stop.topic', 'raw');
    const flow = new FakeFlow(1_000);
    flow.onDeliver = (m) => m.ack();
    const sub = await subscribe('stop.topic', flow, 'stoppers');
    await sub.stop();
    await publish('stop.topic', 5);
    const other = new FakeFlow(1_000);
    other.onDeliver = (m) => m.ack();
    await subscribe('stop.topic', other, 'stoppers');
    await waitUntil(() => other.delivered.length === 5, 'another member gets all 5');
    assert.equal(flow.delivered.length, 0);
    await sub.close();
  });
});
