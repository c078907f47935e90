import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { InvalidArgumentError, TransportError } from '../../../src/core/errors.ts';
import type { Transport } from '../../../src/core/transport.ts';
import { resolveNatsOptions } from '../../../src/transports/nats/options.ts';
import { StreamRegistry } from '../../../src/transports/nats/streams.ts';
import { type NatsServerHandle, startNatsServer } from '../../harness/nats-server.ts';
import { captureLogger, type Inspector, inspector, openTransport } from './helpers.ts';

describe('nats ensureTopic', () => {
  let server: NatsServerHandle;
  let transport: Transport;
  let inspect: Inspector;
  const logger = captureLogger();

  before(async () => {
    server = await startNatsServer({ jetstream: true });
    transport = await openTransport(server.url, {}, logger);
    inspect = await inspector(server.url);
  });

  after(async () => {
    await transport?.close(AbortSignal.timeout(5_000));
    await inspect?.close();
    await server?.stop();
  });

  it('creates a file stream for envelope topics and a memory stream for raw topics', async () => {
    await transport.ensureTopic('orders.created', 'envelope');
    await transport.ensureTopic('metrics.raw', 'raw');
    const envelope = await inspect.jsm.streams.info('EVENTBUS_orders_created');
    const raw = await inspect.jsm.streams.info('EVENTBUS_metrics_raw');
    assert.equal(envelope.config.storage, 'file');
    assert.equal(raw.config.storage, 'memory');
    assert.deepEqual(envelope.config.subjects, ['orders.created', 'orders.created._P_.*']);
    assert.deepEqual((await inspect.jsm.streams.info('EVENTBUS_metrics_raw')).config.subjects, [
      'metrics.raw',
    ]);
    assert.equal(envelope.config.max_bytes, 1024 ** 3);
    assert.equal(envelope.config.max_msgs, 1_000_000);
    assert.equal(envelope.config.duplicate_window, 120_000 * 1_000_000);
    assert.equal(envelope.config.num_replicas, 1);
  });

  it('dead-letter topics are ordinary envelope topics', async () => {
    await transport.ensureTopic('orders.created.DLQ', 'envelope');
    await transport.ensureTopic('orders.created.PARKED', 'envelope');
    assert.equal((await inspect.jsm.streams.info('EVENTBUS_orders_created_DLQ')).config.storage, 'file');
    assert.equal((await inspect.jsm.streams.info('EVENTBUS_orders_created_PARKED')).config.storage, 'file');
  });

  it('uses an existing stream with other storage as is, with a warning', async () => {
    await inspect.jsm.streams.add({
      name: 'EVENTBUS_legacy_topic',
      subjects: ['legacy.topic'],
      storage: 'memory' as never,
    });
    const warningsBefore = logger.entries.filter((e) => e.level === 'warn').length;
    await transport.ensureTopic('legacy.topic', 'envelope');
    const warnings = logger.entries.filter((e) => e.level === 'warn').slice(warningsBefore);
    const storage = warnings.filter((w) => /uses memory storage/.test(w.msg));
    assert.equal(storage.length, 1);
    assert.match(storage[0]?.msg ?? '', /EVENTBUS_legacy_topic uses memory storage.*using it as is/);
    assert.ok(
      warnings.some((w) => /no partition subjects.*ONE active member/.test(w.msg)),
      'a stream without partitions is named as such',
    );
    assert.equal((await inspect.jsm.streams.info('EVENTBUS_legacy_topic')).config.storage, 'memory');
  });

  it('is cached: concurrent and repeated calls create the stream once', async () => {
    const creations = () => logger.entries.filter((e) => e.msg === 'nats: created stream').length;
    const before = creations();
    await Promise.all(Array.from({ length: 20 }, () => transport.ensureTopic('cached.topic', 'envelope')));
    await transport.ensureTopic('cached.topic', 'envelope');
    assert.equal(creations() - before, 1);
  });

  it('rejects invalid topics and name collisions loudly', async () => {
    await assert.rejects(transport.ensureTopic('bad topic', 'envelope'), InvalidArgumentError);
    await assert.rejects(transport.ensureTopic('wild.*', 'envelope'), InvalidArgumentError);
    await transport.ensureTopic('a.b', 'envelope');
    // "a_b" sanitizes to the same stream name as "a.b".
    await assert.rejects(transport.ensureTopic('a_b', 'envelope'), (error: unknown) => {
      assert.ok(error instanceof TransportError);
      assert.match(error.message, /EVENTBUS_a_b exists but does not capture subject "a_b"/);
      return true;
    });
  });

  it('a topic and a dotted topic below it coexist; the partition token is reserved in topic names', async () => {
    // Stream `orders.x` captures orders.x and orders.x._P_.*; `orders.x.eu` captures its own: no overlap.
    await transport.ensureTopic('orders.x', 'envelope');
    await transport.ensureTopic('orders.x.eu', 'envelope');
    assert.deepEqual((await inspect.jsm.streams.info('EVENTBUS_orders_x_eu')).config.subjects, [
      'orders.x.eu',
      'orders.x.eu._P_.*',
    ]);
    await assert.rejects(transport.ensureTopic('orders.x._P_.3', 'envelope'), (error: unknown) => {
      assert.ok(error instanceof InvalidArgumentError);
      assert.match(error.message, /without a "_P_" token/);
      return true;
    });
  });

  describe('repair of a stream that is gone', () => {
    const registryWithGoneStream = async (topic: string) => {
      const registry = new StreamRegistry(inspect.jsm, resolveNatsOptions({ servers: server.url }), logger);
      const handle = await registry.ensure(topic, 'raw');
      await inspect.jsm.streams.delete(handle.name);
      return { registry, name: handle.name };
    };
    const exists = async (name: string): Promise<boolean> =>
      inspect.jsm.streams.info(name).then(
        () => true,
        () => false,
      );

    it('recreates a deleted stream it ensured before', async () => {
      const { registry, name } = await registryWithGoneStream('repair.me');
      await registry.repair('repair.me');
      assert.equal(await exists(name), true);
      await registry.stop();
    });

    it('stop() ends a repair waiting for its pause and waits for it: nothing is recreated, nothing starts after', async () => {
      const { registry, name } = await registryWithGoneStream('repair.stopped');
      const warningsBefore = logger.entries.filter((e) => e.level === 'warn').length;
      const repairing = registry.repair('repair.stopped');
      await registry.stop();
      await repairing;
      await registry.repair('repair.stopped');
      assert.equal(await exists(name), false);
      assert.equal(logger.entries.filter((e) => e.level === 'warn').length, warningsBefore);
    });
  });
});
