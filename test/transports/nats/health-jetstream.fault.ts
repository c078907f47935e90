/**
 * health() reflects JetStream now (issue 12): connected is not enough. The
 * reproducible way to lose JetStream with one real nats-server: restart it on
 * the same port without JetStream (the client reconnects, every JetStream
 * request fails, as without quorum). health() must be degraded with a
 * problem naming JetStream while that lasts, and ok again once the server
 * runs with JetStream again. And the real thing: a 3-node cluster that loses
 * two nodes has no JetStream quorum while the client's own node stays up.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createEventBus, type EventBus, type HealthReport } from '../../../src/index.ts';
import { type NatsServerHandle, startNatsCluster, startNatsServer } from '../../harness/nats-server.ts';
import { waitUntil } from './helpers.ts';

describe('nats: health() and JetStream availability', () => {
  let server: NatsServerHandle;
  let bus: EventBus;

  before(async () => {
    server = await startNatsServer({ jetstream: true });
    bus = await createEventBus({
      transport: 'nats',
      clientId: 'health-js',
      metrics: { enabled: false },
      nats: { servers: server.url },
    });
  });

  after(async () => {
    await bus?.close({ timeoutMs: 5_000 });
    await server?.stop();
  });

  it('degraded with a problem naming JetStream while the server runs without it; ok again after', {
    timeout: 90_000,
  }, async () => {
    await bus.publishEnvelopeAndWait('health-js', {
      aggregateId: 'a',
      eventType: 'T',
      eventVersion: 1,
      payload: {},
    });
    assert.equal(bus.health().status, 'ok', JSON.stringify(bus.health()));
    assert.equal(bus.health().problems, undefined);

    await server.kill('SIGTERM');
    const withoutJetStream = await startNatsServer({ port: server.port, jetstream: false });
    let report: HealthReport = bus.health();
    try {
      await waitUntil(
        () => {
          report = bus.health();
          return report.connected && report.problems !== undefined;
        },
        'health() reports the missing JetStream while connected',
        30_000,
        50,
      );
      assert.equal(report.status, 'degraded');
      assert.equal(report.connected, true, 'the connection is up: only JetStream is missing');
      assert.match(report.problems?.join('\n') ?? '', /^JetStream unavailable/);
    } finally {
      await withoutJetStream.stop();
    }

    await server.restart();
    await waitUntil(
      () => {
        report = bus.health();
        return report.status === 'ok';
      },
      'health() is ok again once JetStream answers',
      30_000,
      50,
    );
    assert.equal(report.problems, undefined);
    assert.equal(report.connected, true);
  });

  it('a cluster without quorum (2 of 3 nodes gone): degraded with a problem naming JetStream while connected; ok once the nodes are back', {
    timeout: 120_000,
  }, async () => {
    await using cluster = await startNatsCluster(3);
    const [first, second, third] = cluster.nodes as [NatsServerHandle, NatsServerHandle, NatsServerHandle];
    const clustered = await createEventBus({
      transport: 'nats',
      clientId: 'health-quorum',
      metrics: { enabled: false },
      nats: { servers: first.url },
    });
    try {
      let report: HealthReport = clustered.health();
      await waitUntil(
        () => {
          report = clustered.health();
          return report.status === 'ok';
        },
        'health() ok on the healthy cluster',
        30_000,
        50,
      );
      await second.kill('SIGKILL');
      await third.kill('SIGKILL');
      await waitUntil(
        () => {
          report = clustered.health();
          return report.connected && report.problems !== undefined;
        },
        'health() reports JetStream without quorum while connected to the surviving node',
        60_000,
        50,
      );
      assert.equal(report.status, 'degraded');
      assert.match(report.problems?.join('\n') ?? '', /^JetStream unavailable/);
      await second.restart();
      await third.restart();
      await waitUntil(
        () => {
          report = clustered.health();
          return report.status === 'ok';
        },
        'health() ok again once the cluster has its quorum back',
        60_000,
        50,
      );
      assert.equal(report.problems, undefined);
    } finally {
      await clustered.close({ timeoutMs: 5_000 });
    }
  });
});
