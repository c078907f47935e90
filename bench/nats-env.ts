/**
 * The NATS side of the bench: one freshly spawned nats-server (the test
 * harness), an inspector connection for stream management and verification,
 * fresh file-storage streams per scenario (created here, untimed, with the
 * configuration our transport would create), and read-back of what a stream
 * stored, fed to the order checker.
 */
import {
  AckPolicy,
  DiscardPolicy,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { partitionOf } from '../src/groups/lanes.ts';
import type { OrderChecker } from '../src/testing/checker.ts';
import { NATS_DEFAULTS } from '../src/transports/nats/options.ts';
import {
  partitionDescription,
  partitionSubject,
  partitionWildcard,
} from '../src/transports/nats/partitions.ts';
import { type NatsServerHandle, startNatsServer } from '../test/harness/nats-server.ts';

export { streamNameFor } from '../src/transports/nats/names.ts';

import { streamNameFor } from '../src/transports/nats/names.ts';

export const STREAM_PREFIX = NATS_DEFAULTS.streamPrefix;

export interface NatsEnv {
  readonly server: NatsServerHandle;
  readonly url: string;
  /** Inspector connection: stream management and verification only, never measured. */
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  /** nats-server version string as the server reports it. */
  readonly version: string;
  close(): Promise<void>;
}

export async function startNatsEnv(): Promise<NatsEnv> {
  const server = await startNatsServer({ jetstream: true });
  try {
    const nc = await connect({ servers: server.url, name: 'bench-inspector' });
    const jsm = await jetstreamManager(nc);
    return {
      server,
      url: server.url,
      nc,
      jsm,
      version: nc.info?.version ?? 'unknown',
      async close() {
        await nc.close();
        await server.stop();
      },
    };
  } catch (error) {
    await server.stop();
    throw error;
  }
}

/** A raw client connection (what a user of the official client opens). */
export function rawConnect(env: NatsEnv, name: string): Promise<NatsConnection> {
  return connect({ servers: env.url, name });
}

/** Partitions of the bench's streams: our transport's default for envelope topics. */
export const BENCH_PARTITIONS = NATS_DEFAULTS.partitions;

/**
 * The subject our bus stores message `aggregateId` of `topic` under
 * (`<topic>._P_.<n>`): preloads put messages where our publisher would.
 */
export function partitionedSubject(topic: string, aggregateId: string): string {
  return partitionSubject(topic, partitionOf(aggregateId, BENCH_PARTITIONS));
}

/**
 * Creates the stream of each topic with the configuration our transport uses
 * for envelope topics (file storage, limits, 2-minute de-duplication window,
 * the topic and its partition subjects, the partition count in the
 * description), so our bus adopts it (publishing to `<topic>._P_.<n>`, one
 * pull loop per partition) and the raw client gets an identical one (it
 * publishes to `<topic>` and reads the whole stream with one consumer).
 */
export async function createStreams(env: NatsEnv, topics: readonly string[]): Promise<void> {
  for (const topic of topics) {
    await env.jsm.streams.add({
      name: streamNameFor(STREAM_PREFIX, topic),
      subjects: [topic, partitionWildcard(topic)],
      description: partitionDescription(BENCH_PARTITIONS),
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      max_bytes: NATS_DEFAULTS.stream.maxBytes * 4,
      max_msgs: -1,
      num_replicas: 1,
      duplicate_window: NATS_DEFAULTS.duplicateWindowMs * 1_000_000,
    });
  }
}

/** Deletes the topics' streams (frees disk and server memory between scenarios). */
export async function deleteStreams(env: NatsEnv, topics: readonly string[]): Promise<void> {
  for (const topic of topics) {
    try {
      await env.jsm.streams.delete(streamNameFor(STREAM_PREFIX, topic));
    } catch {
      // already gone
    }
  }
}

/** Messages stored per topic. */
export async function storedCounts(env: NatsEnv, topics: readonly string[]): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const topic of topics) {
    const info = await env.jsm.streams.info(streamNameFor(STREAM_PREFIX, topic));
    counts.set(topic, info.state.messages);
  }
  return counts;
}

/**
 * Reads every stored message back (ordered consumer, no acks, untimed) and
 * reports it to the checker as consumed: lost / duplicated / out of order then
 * describe what the broker stored, in stream order.
 */
export async function readBack(
  env: NatsEnv,
  topics: readonly string[],
  checker: OrderChecker,
): Promise<void> {
  const js = jetstream(env.nc);
  for (const topic of topics) {
    const stream = streamNameFor(STREAM_PREFIX, topic);
    const total = (await env.jsm.streams.info(stream)).state.messages;
    if (total === 0) continue;
    const consumer = await js.consumers.get(stream);
    const messages = await consumer.consume({ max_messages: 5_000 });
    let seen = 0;
    for await (const m of messages) {
      const h = m.headers;
      checker.observe(
        h?.get('X-Event-ID') ?? '',
        h?.get('X-Aggregate-ID') ?? '',
        Number(h?.get('X-Event-Version') ?? Number.NaN),
      );
      if (++seen >= total) break;
    }
    await messages.close();
  }
}

/**
 * Untimed check after a consumption run: did every ack reach the broker?
 * Waits up to `timeoutMs` until, on every stream, the consumers of `durable`
 * (the durable itself, or our partition lanes' `<durable>_<lane>_<epoch>_<gen>`)
 * have nothing left to deliver and nothing awaiting an ack.
 */
export async function acksSettled(
  env: NatsEnv,
  topics: readonly string[],
  durable: string,
  timeoutMs = 5_000,
): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (const topic of topics) {
    const stream = streamNameFor(STREAM_PREFIX, topic);
    for (;;) {
      const consumers = (await env.jsm.consumers.list(stream).next()).filter(
        (c) => c.name === durable || c.name.startsWith(`${durable}_`),
      );
      if (consumers.length > 0 && consumers.every((c) => c.num_ack_pending === 0 && c.num_pending === 0)) {
        break;
      }
      if (performance.now() > deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  return true;
}

/** The durable explicit-ack consumer a raw `consume()` user creates. */
export async function addRawConsumer(jsm: JetStreamManager, topic: string, durable: string): Promise<void> {
  await jsm.consumers.add(streamNameFor(STREAM_PREFIX, topic), {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
  });
}
