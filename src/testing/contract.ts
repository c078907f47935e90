/**
 * The transport contract suite (in the spirit of Watermill's universal Pub/Sub
 * tests): checks a transport against the seam (core/transport.ts) directly,
 * without the bus, so a transport written outside this package learns what it
 * owes the bus before the bus-level conformance suite runs on it.
 *
 * Scenarios apply as the transport's declared `features` say, and each
 * declared feature is checked: a transport that declares what it cannot do
 * fails here. Waiting is event-driven (every delivery re-checks), and
 * "nothing more arrives" is proven by a marker published afterwards, never by
 * waiting a while.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { silentLogger } from '../core/logger.ts';
import type {
  InboundMessage,
  Transport,
  TransportContext,
  TransportFactory,
  TransportSubscription,
} from '../core/transport.ts';
import { createOrderChecker, formatReport } from './checker.ts';
import {
  bodyOf,
  ContractIntake,
  outbound,
  sendAndWait,
  uniqueContractTopic,
  untilAcross,
} from './contract-kit.ts';

export interface TransportContractOptions {
  /** Shown in the suite's name. Default: the factory's kind. */
  readonly name?: string;
  /** Per-scenario timeout. Default 60 s. */
  readonly timeoutMs?: number;
  /** The context every transport is created with. Default: a silent logger. */
  readonly context?: Partial<TransportContext>;
}

/**
 * Registers the contract scenarios with node:test. `factory.create` is called
 * once per transport a scenario needs (members of a group are separate
 * transports), so every call must reach the same broker.
 */
export function runTransportContract(
  factory: TransportFactory,
  options: TransportContractOptions = {},
): void {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const wait = timeoutMs / 2;
  let clients = 0;
  const open = async (t: TestContext): Promise<Transport> => {
    const transport = await factory.create({
      clientId: `contract${++clients}`,
      logger: silentLogger,
      ...options.context,
    });
    t.after(() => transport.close(AbortSignal.timeout(5_000)));
    return transport;
  };
  const subscribe = async (
    t: TestContext,
    transport: Transport,
    topic: string,
    group: string,
    intake: ContractIntake,
  ): Promise<TransportSubscription> => {
    const subscription = await transport.subscribe(
      { topic, group, kind: 'envelope', handlerTimeoutMs: 30_000 },
      intake,
    );
    t.after(async () => {
      await subscription.stop();
      await subscription.close();
    });
    return subscription;
  };
  const ack = (): 'ack' => 'ack';

  describe(`transport contract: ${options.name ?? factory.kind}`, { timeout: timeoutMs }, () => {
    it('declares its kind, every feature and its limits', async (t) => {
      const transport = await open(t);
      assert.equal(transport.kind, factory.kind, 'Transport.kind is the factory kind');
      for (const name of [
        'persistent',
        'consumerGroups',
        'newSubscriberReceivesOldMessages',
        'brokerDeduplication',
        'nakRedelivers',
        'nakDelay',
      ] as const) {
        assert.equal(typeof transport.features[name], 'boolean', `features.${name} is declared`);
      }
      const window = transport.features.duplicateWindowMs;
      if (window !== undefined) {
        assert.ok(transport.features.brokerDeduplication, 'duplicateWindowMs only with brokerDeduplication');
        assert.ok(Number.isFinite(window) && window > 0, `duplicateWindowMs is positive, got ${window}`);
      }
      assert.ok(transport.maxPayloadBytes > 0, 'maxPayloadBytes is positive');
      assert.equal(transport.health().connected, true, 'connected once created');
    });

    it('send reports one outcome per message, never synchronously; delivery keeps body, headers and key', async (t) => {
      const transport = await open(t);
      const topic = uniqueContractTopic('roundtrip');
      await transport.ensureTopic(topic, 'envelope');
      const intake = new ContractIntake(ack);
      await subscribe(t, transport, topic, 'g', intake);
      const sent = Array.from({ length: 20 }, (_, i) => outbound(topic, `k${i % 3}`, `m${i}`));
      const outcomes = await Promise.all(sent.map((m) => sendAndWait(transport, m)));
      for (const outcome of outcomes) {
        assert.equal(outcome.ok, true, `send failed: ${outcome.ok ? '' : outcome.error.message}`);
        assert.equal(outcome.synchronous, false, 'the callback must not run inside send()');
      }
      await intake.until(
        () => sent.every((m) => intake.bodies().includes(new TextDecoder().decode(m.data))),
        () => `${intake.delivered.length}/20 delivered`,
        wait,
      );
      for (const message of sent) {
        const got = intake.delivered.find((d) => d.headers['X-Event-ID'] === message.msgId);
        assert.ok(got, `delivered ${message.msgId}`);
        assert.equal(got.topic, topic);
        assert.deepEqual(new Uint8Array(got.data), new Uint8Array(message.data));
        assert.equal(got.headers['X-Contract'], message.headers['X-Contract']);
        // The key is optional on delivery (NATS carries it in the envelope, not on the wire).
        if (got.key !== undefined) assert.equal(got.key, message.key);
        assert.ok(got.deliveryCount >= 1, 'deliveryCount starts at 1');
      }
    });

    it('keeps per-key order for pipelined sends (4 keys × 50)', async (t) => {
      const transport = await open(t);
      const topic = uniqueContractTopic('order');
      await transport.ensureTopic(topic, 'envelope');
      const checker = createOrderChecker();
      const intake = new ContractIntake((m) => {
        const [key, index] = bodyOf(m).split(':');
        checker.observe(m.headers['X-Event-ID'] ?? '', key ?? '', Number(index));
        return 'ack';
      }, 16);
      await subscribe(t, transport, topic, 'g', intake);
      const sends: Array<Promise<unknown>> = [];
      for (let i = 0; i < 50; i++) {
        for (let k = 0; k < 4; k++) {
          const message = outbound(topic, `key-${k}`, `key-${k}:${i}`);
          checker.expect(message.msgId, `key-${k}`, i);
          sends.push(
            sendAndWait(transport, message).then((o) =>
              o.ok ? checker.acknowledged(message.msgId) : checker.failed(message.msgId),
            ),
          );
        }
      }
      await Promise.all(sends);
      await intake.until(
        () => checker.outstanding() === 0,
        () => formatReport(checker.report()),
        wait,
      );
      const report = checker.report();
      assert.equal(report.lost + report.outOfOrder + report.unexpected, 0, formatReport(report));
    });

    it('a nak-ed message is delivered again (while running, or after a restart: features.nakRedelivers)', async (t) => {
      const transport = await open(t);
      const topic = uniqueContractTopic('nak');
      await transport.ensureTopic(topic, 'envelope');
      let naked = 0;
      const intake = new ContractIntake((m) => (bodyOf(m) === 'again' && naked++ === 0 ? 'nak' : 'ack'));
      const first = await subscribe(t, transport, topic, 'g', intake);
      assert.equal((await sendAndWait(transport, outbound(topic, 'k', 'again'))).ok, true);
      const copies = (): InboundMessage[] => intake.delivered.filter((m) => bodyOf(m) === 'again');
      if (transport.features.nakRedelivers) {
        await intake.until(
          () => copies().length >= 2,
          () => `delivered ${intake.bodies().join(',')}: the nak-ed message never came back`,
          wait,
        );
        assert.ok((copies()[1]?.deliveryCount ?? 0) >= 2, 'a redelivery counts deliveries');
        return;
      }
      if (!transport.features.persistent) return t.skip('neither redelivery nor persistence declared');
      await intake.until(
        () => naked > 0,
        () => 'never delivered',
        wait,
      );
      await first.stop();
      await first.close();
      const restarted = new ContractIntake(ack);
      await subscribe(t, await open(t), topic, 'g', restarted);
      await restarted.until(
        () => restarted.bodies().includes('again'),
        () => 'the nak-ed message was not read again by the next member of its group',
        wait,
      );
    });

    it('an acked message is never delivered to its group again', async (t) => {
      const transport = await open(t);
      if (!transport.features.persistent) return t.skip('not persistent');
      const topic = uniqueContractTopic('acked');
      await transport.ensureTopic(topic, 'envelope');
      const intake = new ContractIntake(ack);
      const first = await subscribe(t, transport, topic, 'g', intake);
      for (let i = 0; i < 10; i++) await sendAndWait(transport, outbound(topic, 'k', `old-${i}`));
      await intake.until(
        () => intake.delivered.length >= 10,
        () => `${intake.delivered.length}/10`,
        wait,
      );
      await first.stop();
      await first.close();
      const next = new ContractIntake(ack);
      await subscribe(t, await open(t), topic, 'g', next);
      await sendAndWait(transport, outbound(topic, 'k', 'marker'));
      await next.until(
        () => next.bodies().includes('marker'),
        () => `marker not delivered (${next.bodies().join(',')})`,
        wait,
      );
      assert.deepEqual(next.bodies(), ['marker'], 'acked messages came back');
    });

    it('nothing is delivered after stop() resolves; held messages can still be settled', async (t) => {
      const transport = await open(t);
      const topic = uniqueContractTopic('stop');
      await transport.ensureTopic(topic, 'envelope');
      const stopping = new ContractIntake(() => 'hold', 4);
      const witness = new ContractIntake(ack);
      const sub = await subscribe(t, transport, topic, 'stopping', stopping);
      await subscribe(t, transport, topic, 'witness', witness);
      for (let i = 0; i < 4; i++) await sendAndWait(transport, outbound(topic, `k${i}`, `before-${i}`));
      await stopping.until(
        () => stopping.delivered.length >= 4,
        () => `${stopping.delivered.length}/4 held`,
        wait,
      );
      await sub.stop();
      stopping.stopped = true;
      for (const m of [...stopping.delivered]) stopping.settle(m, 'nak');
      for (let i = 0; i < 4; i++) await sendAndWait(transport, outbound(topic, `k${i}`, `after-${i}`));
      await witness.until(
        () => [0, 1, 2, 3].every((i) => witness.bodies().includes(`after-${i}`)),
        () => `witness got ${witness.bodies().join(',')}`,
        wait,
      );
      assert.deepEqual(stopping.late.map(bodyOf), [], 'delivered after stop()');
      await sub.close();
    });

    it('consumer groups: every group gets every message, members of a group share them', async (t) => {
      const a = await open(t);
      if (!a.features.consumerGroups) return t.skip('no consumer groups');
      const b1 = await open(t);
      const b2 = await open(t);
      const topic = uniqueContractTopic('groups');
      await a.ensureTopic(topic, 'envelope');
      const one = new ContractIntake(ack);
      const twoA = new ContractIntake(ack);
      const twoB = new ContractIntake(ack);
      await subscribe(t, a, topic, 'one', one);
      await subscribe(t, b1, topic, 'two', twoA);
      await subscribe(t, b2, topic, 'two', twoB);
      const bodies = Array.from({ length: 40 }, (_, i) => `m${i}`);
      await Promise.all(bodies.map((body, i) => sendAndWait(a, outbound(topic, `k${i % 8}`, body))));
      const union = (): Set<string> => new Set([...twoA.bodies(), ...twoB.bodies()]);
      const all = (): boolean => bodies.every((x) => one.bodies().includes(x) && union().has(x));
      const progress = (): string =>
        `group one ${new Set(one.bodies()).size}/40, group two ${union().size}/40 (members ${twoA.delivered.length} + ${twoB.delivered.length}, errors ${[...twoA.errors, ...twoB.errors].map((e) => e.message).join('; ')})`;
      await untilAcross([one, twoA, twoB], all, progress, wait);
    });

    it('a new group receives messages published before it subscribed (features.newSubscriberReceivesOldMessages)', async (t) => {
      const transport = await open(t);
      if (!transport.features.newSubscriberReceivesOldMessages) return t.skip('not declared');
      const topic = uniqueContractTopic('old');
      await transport.ensureTopic(topic, 'envelope');
      for (let i = 0; i < 5; i++) await sendAndWait(transport, outbound(topic, 'k', `old-${i}`));
      const intake = new ContractIntake(ack);
      await subscribe(t, transport, topic, 'late-group', intake);
      await intake.until(
        () => [0, 1, 2, 3, 4].every((i) => intake.bodies().includes(`old-${i}`)),
        () => `got ${intake.bodies().join(',')}`,
        wait,
      );
    });

    it('a re-send with the same msgId is stored once (features.brokerDeduplication)', async (t) => {
      const transport = await open(t);
      if (!transport.features.brokerDeduplication) return t.skip('not declared');
      const topic = uniqueContractTopic('dedup');
      await transport.ensureTopic(topic, 'envelope');
      const intake = new ContractIntake(ack);
      await subscribe(t, transport, topic, 'g', intake);
      const message = outbound(topic, 'k', 'once');
      assert.equal((await sendAndWait(transport, message)).ok, true);
      assert.equal((await sendAndWait(transport, message)).ok, true, 'a duplicate is not an error');
      await sendAndWait(transport, outbound(topic, 'k', 'marker'));
      await intake.until(
        () => intake.bodies().includes('marker'),
        () => `got ${intake.bodies().join(',')}`,
        wait,
      );
      assert.deepEqual(intake.bodies(), ['once', 'marker']);
    });

    it('close() settles outstanding sends and may be called twice', async (t) => {
      const transport = await factory.create({ clientId: `contract${++clients}`, logger: silentLogger });
      const topic = uniqueContractTopic('close');
      await transport.ensureTopic(topic, 'envelope');
      const outcomes = Array.from({ length: 10 }, (_, i) =>
        sendAndWait(transport, outbound(topic, 'k', `c${i}`)),
      );
      await transport.close(AbortSignal.timeout(10_000));
      // Every callback came (success, or an error with an unknown outcome): none is left hanging.
      assert.equal((await Promise.all(outcomes)).length, 10);
      await transport.close(AbortSignal.timeout(1_000));
      t.diagnostic(`closed ${transport.kind}`);
    });
  });
}
