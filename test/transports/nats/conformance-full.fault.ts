/**
 * The shared conformance suite against a real nats-server at the full
 * Watermill sizes (100,000 messages through a blocked pool, 10,000 through a
 * publisher close, ...): long-running, so in the fault tier. The fast tier
 * runs the same suite at reduced sizes (conformance.test.ts).
 */
import { after, before, describe } from 'node:test';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { createEventBus } from '../../../src/index.ts';
import { runConformanceSuite } from '../../../src/testing/index.ts';
import { type NatsServerHandle, startNatsServer } from '../../harness/nats-server.ts';
import { type Inspector, inspector } from './helpers.ts';

describe('nats transport, full conformance sizes (ackPolicy explicit)', () => {
  let server: NatsServerHandle;
  let inspect: Inspector;

  before(async () => {
    server = await startNatsServer({ jetstream: true });
    inspect = await inspector(server.url);
  });

  after(async () => {
    await inspect?.close();
    await server?.stop();
  });

  runConformanceSuite({
    name: 'nats full sizes, ackPolicy explicit',
    features: {
      persistent: true,
      consumerGroups: true,
      newSubscriberReceivesOldMessages: true,
      brokerDeduplication: true,
    },
    createBus: (overrides) =>
      createEventBus({
        ...overrides,
        transport: 'nats',
        nats: { servers: server.url },
        metrics: { enabled: false },
      }),
    injectRaw: async (topic, data, headers = {}) => {
      const h = natsHeaders();
      for (const [k, v] of Object.entries(headers)) h.set(k, v);
      const ack = await inspect.nc.request(topic, data, { timeout: 5_000, headers: h });
      if (ack.headers?.code) throw new Error(`inject into ${topic} failed: ${ack.headers.code}`);
    },
    scale: 1,
    timeoutMs: 480_000,
  });
});
