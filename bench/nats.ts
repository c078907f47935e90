/**
 * The NATS side: one freshly spawned nats-server (the test harness), an
 * inspector connection for streams and verification (never measured), fresh
 * streams laid out like our transport's, read-back into the order checker,
 * the ack check, and the raw official client used the way its docs recommend
 * for throughput: `js.publish()` with a window of concurrent promises (msgID
 * + the same headers as ours), `consumer.consume()` on one durable
 * explicit-ack consumer per stream (no filter) with one `m.ack()` per message.
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
import { streamNameFor } from '../src/transports/nats/names.ts';
import { NATS_DEFAULTS } from '../src/transports/nats/options.ts';
import {
  partitionDescription,
  partitionSubject,
  partitionWildcard,
} from '../src/transports/nats/partitions.ts';
import { type NatsServerHandle, startNatsServer } from '../test/harness/nats-server.ts';
import { type Counter, holdsWithin, type OnEvent, pipelined } from './measure.ts';
import type { Client, Publisher } from './systems.ts';
import { decodeRaw, rawMessage, type Workload } from './workload.ts';

export const RAW_DURABLE = 'bench-raw';
/** consume() batch: the 500 our transport pulls per request (the client's default is 100). */
export const RAW_CONSUME_BATCH = 500;
/** Windows of concurrent js.publish promises the publish scenario sweeps; the row reports the best. */
export const RAW_PUBLISH_WINDOWS = [100, 1_000, 5_000] as const;
/** The raw e2e / latency publisher's window when the publish scenario did not pick one. */
export const RAW_DEFAULT_WINDOW = 1_000;
const PARTITIONS = NATS_DEFAULTS.partitions;

export const streamOf = (topic: string): string => streamNameFor(NATS_DEFAULTS.streamPrefix, topic);

export interface NatsEnv {
  readonly server: NatsServerHandle;
  readonly url: string;
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  readonly version: string;
  close(): Promise<void>;
}

export async function startNatsEnv(): Promise<NatsEnv> {
  const server = await startNatsServer({ jetstream: true });
  try {
    const nc = await connect({ servers: server.url, name: 'bench-inspector' });
    return {
      server,
      url: server.url,
      nc,
      jsm: await jetstreamManager(nc),
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

/**
 * Streams configured as our transport configures envelope topics (file
 * storage, limits, 2-minute de-duplication, `<topic>` and `<topic>._P_.*`,
 * the partition count in the description): our bus adopts them, the raw
 * client gets identical ones.
 */
export async function createStreams(env: NatsEnv, topics: readonly string[]): Promise<void> {
  for (const topic of topics) {
    await env.jsm.streams.add({
      name: streamOf(topic),
      subjects: [topic, partitionWildcard(topic)],
      description: partitionDescription(PARTITIONS),
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

export async function deleteStreams(env: NatsEnv, topics: readonly string[]): Promise<void> {
  for (const topic of topics) await env.jsm.streams.delete(streamOf(topic)).catch(() => undefined);
}

/** Every stored message (ordered consumer, untimed) → checker.observe, in stream order. */
export async function readBack(
  env: NatsEnv,
  topics: readonly string[],
  checker: OrderChecker,
): Promise<void> {
  const js = jetstream(env.nc);
  for (const topic of topics) {
    const total = (await env.jsm.streams.info(streamOf(topic))).state.messages;
    if (total === 0) continue;
    const messages = await (await js.consumers.get(streamOf(topic))).consume({ max_messages: 5_000 });
    let seen = 0;
    for await (const m of messages) {
      const h = m.headers;
      const version = Number(h?.get('X-Event-Version') ?? Number.NaN);
      checker.observe(h?.get('X-Event-ID') ?? '', h?.get('X-Aggregate-ID') ?? '', version);
      if (++seen >= total) break;
    }
    await messages.close();
  }
}

/**
 * Did every ack reach the broker? Waits up to `timeoutMs` until every consumer
 * named `durable` or `<durable>_…` (our partition lanes) has nothing pending
 * and nothing awaiting an ack.
 */
export async function acksSettled(
  env: NatsEnv,
  topics: readonly string[],
  durable: string,
  timeoutMs = 5_000,
): Promise<boolean> {
  const settled = async (topic: string): Promise<boolean> => {
    const consumers = (await env.jsm.consumers.list(streamOf(topic)).next()).filter(
      (c) => c.name === durable || c.name.startsWith(`${durable}_`),
    );
    return consumers.length > 0 && consumers.every((c) => c.num_ack_pending === 0 && c.num_pending === 0);
  };
  return holdsWithin(async () => {
    for (const topic of topics) if (!(await settled(topic))) return false;
    return true;
  }, timeoutMs);
}

/**
 * js.publish with at most `window` promises in flight (a new one as soon as
 * one settles); `partitioned`: on the partition subject our publisher would
 * use (preloads). Every PubAck or error → checker and `results`.
 */
export async function rawPublisher(
  env: NatsEnv,
  w: Workload,
  checker: OrderChecker,
  results: Counter,
  notes: string[],
  window: number = RAW_DEFAULT_WINDOW,
  partitioned = false,
): Promise<Publisher> {
  const nc = await connect({ servers: env.url, name: 'bench-raw-pub' });
  const js = jetstream(nc);
  const send = (i: number): Promise<void> => {
    const m = rawMessage(w, i);
    w.expect(checker, i);
    const subject = partitioned
      ? partitionSubject(m.subject, partitionOf(w.aggregateOf(i), PARTITIONS))
      : m.subject;
    return js.publish(subject, m.data, { msgID: m.msgID, headers: m.headers }).then(
      () => {
        checker.acknowledged(m.msgID);
        results.inc();
      },
      (error: unknown) => {
        checker.failed(m.msgID);
        if (notes.length < 3) notes.push(`js.publish failed at #${i}: ${(error as Error).message}`);
        results.inc();
      },
    );
  };
  return {
    sendAll: (n) => pipelined(n, 1, window, send),
    sendOne(i) {
      void send(i);
      return undefined;
    },
    close: () => nc.close(),
  };
}

/** The raw client side of every scenario: windowed js.publish, consume() + ack per message. */
export function rawNatsClient(env: NatsEnv): Client {
  return {
    publisher: (w, checker, results, notes, window) => rawPublisher(env, w, checker, results, notes, window),
    async subscriber(w: Workload, n: number, onEvent: OnEvent, notes: string[]) {
      const nc = await connect({ servers: env.url, name: 'bench-raw-sub' });
      const loops: Promise<void>[] = [];
      return {
        async subscribe() {
          const js = jetstream(nc);
          const jsm = await jetstreamManager(nc);
          const counts = w.countsPerTopic(n);
          // One durable per stream, created concurrently (as the raw user would), each loop starting when ready.
          await Promise.all(
            w.topics.map(async (topic) => {
              await jsm.consumers.add(streamOf(topic), {
                durable_name: RAW_DURABLE,
                ack_policy: AckPolicy.Explicit,
              });
              const consumer = await js.consumers.get(streamOf(topic), RAW_DURABLE);
              const messages = await consumer.consume({ max_messages: RAW_CONSUME_BATCH });
              const expected = counts.get(topic) ?? 0;
              const loop = async (): Promise<void> => {
                let seen = 0;
                if (expected > 0) {
                  for await (const m of messages) {
                    const e = decodeRaw(m.data);
                    // Delivery count 1: parsing m.info per message is work a raw user does not do.
                    onEvent(e.eventId, e.aggregateId, e.eventVersion, 1);
                    m.ack();
                    if (++seen >= expected) break;
                  }
                }
                await messages.close();
              };
              loops.push(
                loop().catch(
                  (error: unknown) => void notes.push(`consume loop: ${(error as Error).message}`),
                ),
              );
            }),
          );
        },
        settled: () => acksSettled(env, w.topics, RAW_DURABLE),
        async close() {
          await nc.close();
          await Promise.all(loops);
        },
      };
    },
    readBack: (w, checker) => readBack(env, w.topics, checker),
  };
}
