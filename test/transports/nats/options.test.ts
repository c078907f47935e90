import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../../../src/core/errors.ts';
import { ackWaitFor } from '../../../src/transports/nats/consumer.ts';
import { durableNameFor, streamNameFor, validateTopic } from '../../../src/transports/nats/names.ts';
import { NATS_DEFAULTS, resolveNatsOptions } from '../../../src/transports/nats/options.ts';
import { SequenceSet } from '../../../src/transports/nats/sequence-set.ts';

describe('nats options', () => {
  it('applies the documented defaults', () => {
    const o = resolveNatsOptions(undefined);
    assert.deepEqual(o.servers, ['nats://127.0.0.1:4222']);
    assert.equal(o.streamPrefix, 'EVENTBUS');
    assert.equal(o.duplicateWindowMs, 120_000);
    assert.deepEqual(o.stream, { maxBytes: 1024 ** 3, maxMsgs: 1_000_000, replicas: 1 });
    assert.deepEqual(o.consumer, {
      fetchBatch: 500,
      fetchMaxWaitMs: 100,
      maxAckPending: 10_000,
      maxWaiting: 1_000,
      ackWaitMs: 30_000,
      ackPolicy: 'explicit',
    });
    assert.equal(o.maxPendingPublishes, 10_000);
    assert.equal(o.publishTimeoutMs, 5_000);
    assert.equal(o.publishRetries, 3);
    assert.equal(o.closeTimeoutMs, 30_000);
    assert.equal(o.pingIntervalMs, 2_000);
    assert.equal(o.maxPingOut, 2);
    assert.equal(NATS_DEFAULTS.publishTimeoutMs, 5_000);
  });

  it('rejects bad values with InvalidArgumentError naming the option', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ publishTimeoutMs: -1 }, /Expected `nats.publishTimeoutMs` to be an integer >= 10, got -1/],
      [{ consumer: { fetchBatch: 0 } }, /`nats.consumer.fetchBatch`.*got 0/],
      [{ stream: { replicas: 7 } }, /`nats.stream.replicas` to be an integer from 1 to 5, got 7/],
      [{ servers: [] }, /`nats.servers`/],
      [{ streamPrefix: 'a.b' }, /`nats.streamPrefix`/],
      [{ consumer: 'x' }, /`nats.consumer` to be an object/],
      [{ publishRetries: 1.5 }, /`nats.publishRetries`.*1.5/],
    ];
    for (const [options, pattern] of cases) {
      assert.throws(
        () => resolveNatsOptions(options as never),
        (error: unknown) => error instanceof InvalidArgumentError && pattern.test(error.message),
        JSON.stringify(options),
      );
    }
  });
});

describe('nats names', () => {
  it('sanitizes topics into stream names and groups into durable names', () => {
    assert.equal(streamNameFor('EVENTBUS', 'orders.created'), 'EVENTBUS_orders_created');
    assert.equal(streamNameFor('EVENTBUS', 'orders.created.DLQ'), 'EVENTBUS_orders_created_DLQ');
    assert.equal(durableNameFor('billing service/v2'), 'billing_service_v2');
    assert.ok(streamNameFor('P', 'x'.repeat(500)).length <= 202);
  });

  it('rejects topics that are not plain subjects', () => {
    for (const bad of ['', 'a b', 'a.*', 'a.>', 'a..b', '.a']) {
      assert.throws(() => validateTopic(bad), InvalidArgumentError, bad);
    }
    validateTopic('orders.created');
  });

  it('keeps AckWait above the handler timeout', () => {
    assert.equal(ackWaitFor(30_000, 20_000), 30_000);
    assert.equal(ackWaitFor(30_000, 60_000), 72_000);
    assert.equal(ackWaitFor(100, 0), 1_000);
  });
});

describe('SequenceSet', () => {
  it('merges ranges and answers membership', () => {
    const s = new SequenceSet();
    for (const n of [1, 2, 3, 5, 7, 6, 4]) s.add(n);
    assert.equal(s.ranges, 1);
    assert.ok(s.has(1) && s.has(7) && !s.has(8) && !s.has(0));
    s.add(10);
    assert.equal(s.ranges, 2);
    assert.equal(s.firstMissingAbove(0), 8);
    assert.equal(s.firstMissingAbove(8), 9);
    s.add(9);
    s.add(8);
    assert.equal(s.ranges, 1);
    assert.equal(s.firstMissingAbove(0), 11);
  });

  it('forgets the lowest ranges beyond its bound', () => {
    const s = new SequenceSet(3);
    for (const n of [1, 3, 5, 7, 9]) s.add(n);
    assert.equal(s.ranges, 3);
    assert.ok(!s.has(1) && !s.has(3) && s.has(5) && s.has(9));
  });
});
