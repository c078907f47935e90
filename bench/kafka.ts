/**
 * The Kafka side (only with KAFKA_BROKERS): which Kafka systems run, fresh topics (deleted afterwards
 * with the bench's groups), read-back into the order checker, the "every offset committed" check, and
 * the raw `@platformatic/kafka` client as an informed user writes it: an idempotent acks=all LZ4
 * producer sending pipelined `send({ messages })` batches, and one consumer of a fresh group on every
 * topic, `JSON.parse` + `message.commit()` per message (coalesced by the client).
 */
import { Admin, Consumer, ListOffsetTimestamps, ProduceAcks, Producer } from '@platformatic/kafka';
import type { OrderChecker } from '../src/testing/checker.ts';
import { pollUntil } from '../src/testing/waiters.ts';
import { describeKafkaError } from '../src/transports/kafka/errors.ts';
import type { KafkaTransportOptions } from '../src/transports/kafka/options.ts';
import { kafkaDefaults, resolveKafkaOptions } from '../src/transports/kafka/options.ts';
import { KAFKA_SYSTEMS, type SystemName } from './config.ts';
import { type Counter, deadlineFor, holdsWithin, pipelined, within } from './measure.ts';
import type { Client, Publisher } from './systems.ts';
import { decodeRaw, EVENT_TYPE, rawEnvelope, type Workload } from './workload.ts';

export const KAFKA_BROKERS_VAR = 'KAFKA_BROKERS';
/** Records per `send()`: ~650 bytes each before LZ4, spread over every partition of the 4 topics. */
const RAW_KAFKA_BATCH = 1_000;
/** `send()` calls outstanding at once (queued behind the one produce request in flight). */
const RAW_KAFKA_IN_FLIGHT = 4;

export interface KafkaPlan {
  readonly brokers: readonly string[] | undefined;
  readonly systems: readonly SystemName[]; // the requested systems that run
  readonly skipped: readonly SystemName[];
  readonly reason: string | undefined;
}

/** The Kafka systems run only when KAFKA_BROKERS names brokers; a malformed value is an error. */
export function kafkaPlan(
  requested: readonly SystemName[],
  env: Readonly<Record<string, string | undefined>>,
): KafkaPlan {
  const wanted = requested.filter((s) => KAFKA_SYSTEMS.includes(s));
  const raw = env[KAFKA_BROKERS_VAR]?.trim() ?? '';
  const all = { systems: [...requested], skipped: [], reason: undefined };
  if (wanted.length === 0) return { brokers: undefined, ...all };
  if (raw.length === 0) {
    const systems = requested.filter((s) => !wanted.includes(s));
    return { brokers: undefined, systems, skipped: wanted, reason: `${KAFKA_BROKERS_VAR} is not set` };
  }
  try {
    return { brokers: resolveKafkaOptions({ brokers: raw }, 'bench').brokers, ...all };
  } catch (error) {
    throw new Error(`Expected ${KAFKA_BROKERS_VAR} to list host:port brokers: ${(error as Error).message}`);
  }
}

/** The one stderr line saying that (and why) Kafka systems are skipped. */
export function skipLine(plan: KafkaPlan): string | undefined {
  if (plan.skipped.length === 0) return undefined;
  return `bench: ${plan.reason}: skipping ${plan.skipped.join(', ')} (set ${KAFKA_BROKERS_VAR}=host:9092 to run them)`;
}

export interface KafkaEnv {
  readonly brokers: readonly string[];
  readonly partitions: number;
  readonly replicationFactor: number;
  readonly cluster: string;
  readonly admin: Admin;
  close(): Promise<void>;
}

function clientOptions(brokers: readonly string[], clientId: string) {
  return { clientId, bootstrapBrokers: [...brokers], autocreateTopics: false };
}

/** What our bus gets under `kafka:`; BENCH_KAFKA_OPTIONS='{"maxInFlight":4}' overrides options for experiments. */
export function kafkaBusOptions(env: KafkaEnv): KafkaTransportOptions {
  const { brokers, partitions, replicationFactor } = env;
  const overrides = JSON.parse(process.env.BENCH_KAFKA_OPTIONS || '{}') as object;
  return { brokers: [...brokers], partitions, replicationFactor, ...overrides };
}

export async function startKafkaEnv(brokers: readonly string[]): Promise<KafkaEnv> {
  const admin = new Admin(clientOptions(brokers, 'bench-admin'));
  try {
    const { id, brokers: members } = await admin.metadata({ topics: [] });
    const { partitions, replicationFactor } = kafkaDefaults;
    const cluster = `${id} (${members.size} broker${members.size === 1 ? '' : 's'})`;
    return { brokers, partitions, replicationFactor, cluster, admin, close: () => admin.close() };
  } catch (cause) {
    await admin.close().catch(() => undefined);
    const got = describeKafkaError(cause);
    throw new Error(`Expected a Kafka cluster at ${brokers} (${KAFKA_BROKERS_VAR}), got ${got}`, { cause });
  }
}

/** Our bus: one consumer group per topic (see README, Kafka rows); raw: one group for the workload. */
export const oursGroup = (topic: string): string => `${topic}.ours`;
const rawGroup = (w: Workload): string => `${w.prefix}raw`;

/** Fresh topics, ready once every partition has a leader (creation returns before that). */
export async function createKafkaTopics(env: KafkaEnv, topics: readonly string[]): Promise<void> {
  const { admin, partitions } = env;
  await admin.createTopics({ topics: [...topics], partitions, replicas: env.replicationFactor });
  const led = async (): Promise<boolean> => {
    const { topics: found } = await admin.metadata({ topics: [...topics], forceUpdate: true });
    return topics.every((name) => {
      const t = found.get(name);
      return t?.partitionsCount === partitions && t.partitions.every((p) => p !== undefined && p.leader >= 0);
    });
  };
  const what = `leaders for every partition of ${topics.join(', ')}`;
  await pollUntil(led, { what, timeoutMs: 15_000, intervalMs: 100 });
}

/** Deletes a workload's topics and the bench's groups on them (best effort). */
export async function deleteKafkaTopics(env: KafkaEnv, w: Workload): Promise<void> {
  await deleteGroups(env, [...w.topics.map(oursGroup), rawGroup(w)]);
  await env.admin.deleteTopics({ topics: [...w.topics] }).catch(() => undefined);
}

async function deleteGroups(env: KafkaEnv, candidates: readonly string[]): Promise<void> {
  try {
    const existing = await env.admin.listGroups();
    const groups = candidates.filter((g) => existing.has(g));
    if (groups.length > 0) await env.admin.deleteGroups({ groups });
  } catch {
    // a member that has not left yet keeps its group; it expires with the broker's offsets retention
  }
}

/** The partitions holding records: [earliest, latest) offsets. */
async function storedRanges(env: KafkaEnv, topics: readonly string[]) {
  const indexes = Array.from({ length: env.partitions }, (_, p) => p);
  /** Offset lookup (0 when not listed) for one timestamp. */
  const offsets = async (timestamp: bigint) => {
    const partitions = indexes.map((partitionIndex) => ({ partitionIndex, timestamp }));
    const listed = await env.admin.listOffsets({ topics: topics.map((name) => ({ name, partitions })) });
    return (topic: string, p: number): bigint =>
      listed.find((t) => t.name === topic)?.partitions.find((x) => x.partitionIndex === p)?.offset ?? 0n;
  };
  const { EARLIEST, LATEST } = ListOffsetTimestamps;
  const [earliest, latest] = await Promise.all([offsets(EARLIEST), offsets(LATEST)]);
  const ranges = topics.flatMap((topic) =>
    indexes.map((p) => ({ topic, p, earliest: earliest(topic, p), latest: latest(topic, p) })),
  );
  return ranges.filter((r) => r.latest > r.earliest);
}

/** The stream first, then the consumer (leaving its group) even when closing the stream failed. */
async function closeConsumer(consumer?: Consumer, stream?: { close(): Promise<unknown> }): Promise<void> {
  try {
    await stream?.close();
  } finally {
    await consumer?.close(true);
  }
}

let readBackSeq = 0;

/** Every stored record (a one-member group from the earliest offsets, nothing committed) → checker.observe. */
export async function readBackKafka(env: KafkaEnv, topics: readonly string[], checker: OrderChecker) {
  const total = (await storedRanges(env, topics)).reduce((n, r) => n + Number(r.latest - r.earliest), 0);
  if (total === 0) return;
  const groupId = `${topics[0]}.readback-${++readBackSeq}`;
  const consumer = new Consumer({ ...clientOptions(env.brokers, 'bench-readback'), groupId });
  let stream: Awaited<ReturnType<Consumer['consume']>> | undefined;
  try {
    stream = await consumer.consume({ topics: [...topics], mode: 'earliest', autocommit: false });
    const done = Promise.withResolvers<void>();
    let seen = 0;
    stream.on('data', (m) => {
      const h = new Map(m.headerEntries.map(([name, value]) => [name?.toString(), value?.toString() ?? '']));
      const version = Number(h.get('X-Event-Version') ?? Number.NaN);
      checker.observe(h.get('X-Event-ID') ?? '', h.get('X-Aggregate-ID') ?? '', version);
      if (++seen >= total) done.resolve();
    });
    stream.on('error', done.reject);
    await within(done.promise, deadlineFor(total)); // records not read back by then count as lost
  } finally {
    await closeConsumer(consumer, stream);
    await deleteGroups(env, [groupId]);
  }
}

/** Did every offset get committed? Waits up to 5 s for each partition's committed offset to reach its end. */
export async function commitsSettled(
  env: KafkaEnv,
  topics: readonly string[],
  groupOf: (topic: string) => string,
  timeoutMs = 5_000,
): Promise<boolean> {
  const stored = await storedRanges(env, topics);
  const groups = [...new Set(topics.map(groupOf))];
  return holdsWithin(async () => {
    const listed = await env.admin.listConsumerGroupOffsets({ groups });
    return stored.every(({ topic, p, latest }) => {
      const offset = listed
        .find((g) => g.groupId === groupOf(topic))
        ?.topics.find((t) => t.name === topic)
        ?.partitions.find((x) => x.partitionIndex === p)?.committedOffset;
      return offset !== undefined && offset >= latest;
    });
  }, timeoutMs);
}

// Built once: kafkaRecord runs inside the measured publish.
const [H_ID, H_AGG, H_TYPE, H_VERSION, H_TS, EVENT_TYPE_BYTES] = [
  ...['X-Event-ID', 'X-Aggregate-ID', 'X-Event-Type', 'X-Event-Version', 'X-Timestamp'],
  EVENT_TYPE,
].map((s) => Buffer.from(s)) as [Buffer, Buffer, Buffer, Buffer, Buffer, Buffer];

/** Message i as a raw client user sends it: key = aggregate id, the envelope JSON, the same X-* headers. */
export function kafkaRecord(w: Workload, i: number) {
  const { eventId, aggregateId, eventVersion, timestamp, json } = rawEnvelope(w, i);
  const headers = new Map<Buffer, Buffer>([
    [H_ID, Buffer.from(eventId)],
    [H_AGG, Buffer.from(aggregateId)],
    [H_TYPE, EVENT_TYPE_BYTES],
    [H_VERSION, Buffer.from(String(eventVersion))],
    [H_TS, Buffer.from(timestamp)],
  ]);
  return { topic: w.topicOf(i), key: Buffer.from(aggregateId), value: Buffer.from(json), headers };
}

/** The pipelined idempotent producer (its producer id obtained before the clock starts when `init`). */
export async function rawKafkaPublisher(
  env: KafkaEnv,
  w: Workload,
  checker: OrderChecker,
  results: Counter,
  notes: string[],
  init = true,
): Promise<Publisher> {
  const idempotentLz4 = { idempotent: true, acks: ProduceAcks.ALL, compression: 'lz4' } as const;
  const producer = new Producer({ ...clientOptions(env.brokers, 'bench-raw-pub'), ...idempotentLz4 });
  if (init) await producer.initIdempotentProducer({});
  const send = (from: number, to: number) => {
    const messages: ReturnType<typeof kafkaRecord>[] = [];
    for (let i = from; i < to; i++) {
      w.expect(checker, i);
      messages.push(kafkaRecord(w, i));
    }
    return new Promise<void>((resolve) =>
      producer.send({ messages }, (error) => {
        for (let i = from; i < to; i++) {
          if (error) checker.failed(w.eventIdOf(i));
          else checker.acknowledged(w.eventIdOf(i));
          results.inc();
        }
        if (error && notes.length < 3)
          notes.push(`send() failed for #${from}..${to - 1}: ${describeKafkaError(error)}`);
        resolve();
      }),
    );
  };
  return {
    async sendAll(n) {
      // Bounded: an idempotent producer retries forever by default.
      const all = pipelined(n, RAW_KAFKA_BATCH, RAW_KAFKA_IN_FLIGHT, send);
      if (!(await within(all, deadlineFor(n)))) notes.push(`only ${results.n}/${n} send results`);
    },
    sendOne() {
      throw new Error('Expected no latency runs on Kafka');
    },
    close: () => producer.close(),
  };
}

/** The raw client side of publish / consume / e2e. */
export function rawKafkaClient(env: KafkaEnv): Client {
  return {
    publisher: (w, checker, results, notes) => rawKafkaPublisher(env, w, checker, results, notes),
    async subscriber(w, _n, onEvent, notes) {
      let consumer: Consumer | undefined;
      let stream: Awaited<ReturnType<Consumer['consume']>> | undefined;
      let commitErrors = 0;
      const onCommitted = (error?: Error | null): void => {
        if (error && commitErrors++ === 0) notes.push(`commit failed: ${describeKafkaError(error)}`);
      };
      return {
        async subscribe() {
          // The clock includes `new Consumer` and the group join.
          consumer = new Consumer({ ...clientOptions(env.brokers, 'bench-raw-sub'), groupId: rawGroup(w) });
          consumer.on('error', (error) => notes.push(`consumer error: ${describeKafkaError(error)}`));
          const options = { mode: 'committed', fallbackMode: 'earliest', autocommit: false } as const;
          stream = await consumer.consume({ topics: [...w.topics], ...options });
          stream.on('data', (m) => {
            const e = decodeRaw(m.value as Buffer);
            onEvent(e.eventId, e.aggregateId, e.eventVersion);
            m.commit(onCommitted);
          });
          stream.on('error', (error) => notes.push(`consumer stream error: ${describeKafkaError(error)}`));
        },
        settled: () => commitsSettled(env, w.topics, () => rawGroup(w)),
        close: () =>
          closeConsumer(consumer, stream).finally(() => {
            if (commitErrors > 1) notes.push(`${commitErrors} commits failed`);
          }),
      };
    },
    readBack: (w, checker) => readBackKafka(env, w.topics, checker),
  };
}
