import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Transport, TransportSubscription } from '../../../src/core/transport.ts';
import { type NatsClusterHandle, startNatsCluster } from '../../harness/nats-server.ts';
import { FakeFlow, message, openTransport, publishUntilStored, waitUntil } from './helpers.ts';

describe('nats transport on a 3-node JetStream cluster', () => {
  let cluster: NatsClusterHandle;
  let transport: Transport;
  let subscription: TransportSubscription | undefined;

  before(async () => {
    cluster = await startNatsCluster(3);
    transport = await openTransport(cluster.urls, {
      stream: { replicas: 3 },
      // Raft elections on 2.9 take 4-9 s: 2 s × 6 attempts ride them out.
      publishTimeoutMs: 2_000,
      publishRetries: 5,
      consumer: { ackWaitMs: 100 },
    });
  });

  after(async () => {
    await subscription?.close();
    await transport?.close(AbortSignal.timeout(5_000));
    await cluster?.stop();
  });

  it('R3 stream: losing the stream leader loses nothing (same-id retries, consumption continues)', async () => {
    await transport.ensureTopic('cluster.topic', 'envelope');
    const flow = new FakeFlow(10_000);
    flow.onDeliver = (m) => m.ack();
    subscription = await transport.subscribe(
      { topic: 'cluster.topic', group: 'g', kind: 'envelope', handlerTimeoutMs: 0 },
      flow,
    );
    const batch = (prefix: string) =>
      Array.from({ length: 1_000 }, (_, i) => message('cluster.topic', `${prefix}${i}`, `${prefix}-${i}`));
    await publishUntilStored(transport, batch('before'));

    const leader = await cluster.streamLeader('EVENTBUS_cluster_topic');
    await leader.kill('SIGKILL');
    const { failuresByCode, sampleErrors, rounds } = await publishUntilStored(transport, batch('after'));
    console.log(
      `cluster: killed stream leader ${leader.serverName}; publishes after: failures ${JSON.stringify(failuresByCode)}, ` +
        `rounds ${rounds} ${JSON.stringify(sampleErrors)}`,
    );

    await waitUntil(
      () => new Set(flow.delivered.map((m) => m.sequence)).size === 2_000,
      'all 2,000 delivered after the leader change',
      30_000,
      20,
    );
    // Every stored message was delivered once per sequence: compare their ids.
    const bySequence = new Map(flow.delivered.map((m) => [m.sequence, m.headers['Nats-Msg-Id']]));
    const ids = new Set(bySequence.values());
    assert.equal(ids.size, 2_000, 'each msgId stored exactly once');
    for (let i = 0; i < 1_000; i++) assert.ok(ids.has(`before-${i}`) && ids.has(`after-${i}`));
  });
});
