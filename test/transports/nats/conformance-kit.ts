/**
 * The shared conformance suite (public bus API) against a real, spawned
 * nats-server with JetStream, for both ack policies: at reduced sizes in the
 * fast tier (conformance.test.ts), at the full Watermill sizes in the fault
 * tier (conformance-full.fault.ts).
 */
import { after, before, describe } from 'node:test';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { createEventBus } from '../../../src/index.ts';
import { runConformanceSuite } from '../../../src/testing/index.ts';
import { type NatsServerHandle, startNatsServer } from '../../harness/nats-server.ts';
import { type Inspector, inspector } from './helpers.ts';

export function natsConformance(scale: number): void {
  for (const ackPolicy of ['explicit', 'all'] as const) {
    describe(`nats transport (ackPolicy ${ackPolicy})`, () => {
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
        name: `nats, ackPolicy ${ackPolicy}`,
        scale,
        createBus: (overrides) =>
          createEventBus({
            ...overrides,
            transport: 'nats',
            nats: { servers: server.url, consumer: { ackPolicy } },
            metrics: { enabled: false },
          }),
        // Straight onto the topic's stream with the official client (the suite subscribed first, so it exists).
        injectRaw: async (topic, data, headers = {}) => {
          const h = natsHeaders();
          for (const [k, v] of Object.entries(headers)) h.set(k, v);
          const ack = await inspect.nc.request(topic, data, { timeout: 5_000, headers: h });
          if (ack.headers?.code) throw new Error(`inject into ${topic} failed: ${ack.headers.code}`);
        },
      });
    });
  }
}
