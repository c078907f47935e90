/**
 * The outbox against a real, spawned nats-server (relay-nats.test.ts and
 * relay-nats-restart.fault.ts): the topic, a bus factory with short PubAck
 * timeouts, and a reader of the whole stream.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { createEventBus } from '../../src/bus/create-event-bus.ts';
import { decodeEnvelope } from '../../src/core/envelope.ts';
import type { EventBus, PublishResult } from '../../src/core/types.ts';
import { type NatsServerHandle, startNatsServer } from '../harness/nats-server.ts';
import { eventsFor, type StoreFixture } from './fixtures.ts';

export const TOPIC = 'orders';
const STREAM = 'EVENTBUS_orders';

export interface StreamEntry {
  readonly eventId: string;
  readonly msgId: string;
}

/** Every message of the stream, in stream order (an ordered consumer). */
export async function readStream(url: string): Promise<StreamEntry[]> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    const total = (await jsm.streams.info(STREAM)).state.messages;
    const consumer = await jetstream(nc).consumers.get(STREAM);
    const out: StreamEntry[] = [];
    while (out.length < total) {
      const batch = await consumer.fetch({ max_messages: Math.min(2000, total - out.length), expires: 2000 });
      let got = 0;
      for await (const m of batch) {
        got++;
        out.push({ eventId: decodeEnvelope(m.data).eventId, msgId: m.headers?.get('Nats-Msg-Id') ?? '' });
      }
      if (got === 0) break;
    }
    return out;
  } finally {
    await nc.close();
  }
}

export async function writeEvents(f: StoreFixture, aggregates: number, perAggregate: number): Promise<void> {
  for (let i = 0; i < perAggregate; i++) {
    await f.store.transaction((tx) =>
      f.store.add(
        tx,
        Array.from({ length: aggregates }, (_, a) => eventsFor(TOPIC, `agg-${a}`, i, 1)).flat(),
      ),
    );
  }
}

export interface NatsHarness {
  readonly server: NatsServerHandle;
  readonly results: PublishResult[];
  bus(clientId: string): Promise<EventBus>;
  close(): Promise<void>;
}

export async function withNats<T>(fn: (h: NatsHarness) => Promise<T>): Promise<T> {
  const server = await startNatsServer({ jetstream: true });
  const buses: EventBus[] = [];
  const results: PublishResult[] = [];
  const h: NatsHarness = {
    server,
    results,
    async bus(clientId) {
      const bus = await createEventBus({
        transport: 'nats',
        clientId,
        // Short PubAck timeouts so an outage turns into failed results (and relay retries) quickly.
        nats: { servers: server.url, publishTimeoutMs: 1000, publishRetries: 1 },
        metrics: { enabled: false },
        onPublishResult: (r) => results.push(r),
      });
      buses.push(bus);
      return bus;
    },
    async close() {
      await Promise.all(buses.map((b) => b.close({ timeoutMs: 5000 })));
      await server.stop();
    },
  };
  try {
    return await fn(h);
  } finally {
    await h.close();
  }
}

export const fastBackoff = { initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0.2 };
