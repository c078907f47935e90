/**
 * The Kafka side (only with KAFKA_BROKERS): which Kafka systems run, an admin
 * client for fresh topics (same partition count for both sides, deleted
 * afterwards with the bench's groups), read-back into the order checker, the
 * "every offset committed" check, and the raw `@platformatic/kafka` client as
 * an informed user writes it: an idempotent acks=all LZ4 producer sending
 * pipelined `send({ messages })` batches (RAW_KAFKA_BATCH records, up to
 * RAW_KAFKA_IN_FLIGHT outstanding; the client numbers each batch's records per
 * partition in call order), and one consumer of a fresh group on every topic,
 * `JSON.parse` + `message.commit()` per message (coalesced by the client).
 */
import { setTimeout as delay } from 'node:timers/promises';
import {
  Admin,
  type BaseOptions,
  Consumer,
  ListOffsetTimestamps,
  type MessageToProduce,
  ProduceAcks,
  Producer,
} from '@platformatic/kafka';
import type { OrderChecker } from '../src/testing/checker.ts';
import { describeKafkaError } from '../src/transports/kafka/errors.ts';
import {
  type KafkaTransportOptions,
  kafkaDefaults,
  resolveKafkaOptions,
} from '../src/transports/kafka/options.ts';
import { KAFKA_SYSTEMS, type SystemName } from './config.ts';
import { type Counter, deadlineFor, within } from './measure.ts';
import type { Client, Publisher } from './systems.ts';
import { decodeRaw, EVENT_TYPE, rawEnvelope, type Workload } from './workload.ts';

export const KAFKA_BROKERS_VAR = 'KAFKA_BROKERS';
/** Records per `send()`: ~650 bytes each before LZ4, spread over every partition of the 4 topics. */
export const RAW_KAFKA_BATCH = 1_000;
/** `send()` calls outstanding at once (queued behind the one produce request in flight). */
export const RAW_KAFKA_IN_FLIGHT = 4;

export interface KafkaPlan {
  readonly brokers: readonly string[] | undefined;
  /** The requested systems that run. */
  readonly systems: readonly SystemName[];
  readonly skipped: readonly SystemName[];
  readonly reason: string | undefined;
}

/** The Kafka systems run only when KAFKA_BROKERS names brokers; a malformed value is an error. */
export function kafkaPlan(
  requested: readonly SystemName[],
  env: Readonly<Record<string, string | undefined>>,
): KafkaPlan {
  const raw = env[KAFKA_BROKERS_VAR]?.trim() ?? '';
  const wanted = requested.filter((s) => KAFKA_SYSTEMS.includes(s));
  if (wanted.length === 0)
    return { brokers: undefined, systems: [...requested], skipped: [], reason: undefined };
  if (raw.length === 0) {
    return {
      brokers: undefined,
      systems: requested.filter((s) => !KAFKA_SYSTEMS.includes(s)),
      skipped: wanted,
      reason: `${KAFKA_BROKERS_VAR} is not set`,
    };
  }
  try {
    const brokers = resolveKafkaOptions({ brokers: raw }, 'bench').brokers;
    return { brokers, systems: [...requested], skipped: [], reason: undefined };
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

const clientOptions = (env: KafkaEnv, clientId: string): BaseOptions => ({
  clientId,
  bootstrapBrokers: [...env.brokers],
  autocreateTopics: false,
});

/** What our bus gets under `kafka:`; BENCH_KAFKA_OPTIONS='{"maxInFlight":4}' overrides options for experiments. */
export function kafkaBusOptions(env: KafkaEnv): KafkaTransportOptions {
  return {
    brokers: [...env.brokers],
    partitions: env.partitions,
    replicationFactor: env.replicationFactor,
    ...(process.env.BENCH_KAFKA_OPTIONS ? (JSON.parse(process.env.BENCH_KAFKA_OPTIONS) as object) : {}),
  };
}

export async function startKafkaEnv(brokers: readonly string[]): Promise<KafkaEnv> {
  const admin = new Admin({
    clientId: 'bench-admin',
    bootstrapBrokers: [...brokers],
    autocreateTopics: false,
  });
  try {
    const metadata = await admin.metadata({ topics: [] });
    const count = metadata.brokers.size;
    return {
      brokers,
      partitions: kafkaDefaults.partitions,
      replicationFactor: kafkaDefaults.replicationFactor,
      cluster: `${metadata.id} (${count} broker${count === 1 ? '' : 's'})`,
      admin,
      close: () => admin.close(),
    };
  } catch (error) {
    await admin.close().catch(() => undefined);
    throw new Error(
      `Expected a Kafka cluster at ${brokers.join(',')} (${KAFKA_BROKERS_VAR}), got ${describeKafkaError(error)}`,
      { cause: error },
    );
  }
}

/** Our bus: one consumer group per topic (see README, Kafka rows); raw: one group for the workload. */
export const oursGroup = (topic: string): string => `${topic}.ours`;
export const rawGroup = (w: Workload): string => `${w.prefix}raw`;
const partitionIndexes = (env: KafkaEnv): number[] => Array.from({ length: env.partitions }, (_, p) => p);

/** Fresh topics; waits (polling metadata) until every partition has a leader. */
export async function createKafkaTopics(env: KafkaEnv, topics: readonly string[]): Promise<void> {
  await env.admin.createTopics({
    topics: [...topics],
    partitions: env.partitions,
    replicas: env.replicationFactor,
  });
  const deadline = Date.now() + 15_000;
  for (;;) {
    const metadata = await env.admin.metadata({ topics: [...topics], forceUpdate: true });
    const ready = topics.every((topic) => {
      const t = metadata.topics.get(topic);
      return (
        t?.partitionsCount === env.partitions && t.partitions.every((p) => p !== undefined && p.leader >= 0)
      );
    });
    if (ready) return;
    if (Date.now() > deadline)
      throw new Error(`Expected leaders for every partition of ${topics.join(', ')} within 15 s`);
    await delay(100);
  }
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

/** [earliest, latest) offsets per topic and partition. */
async function offsetRanges(
  env: KafkaEnv,
  topics: readonly string[],
): Promise<Map<string, { earliest: bigint; latest: bigint }[]>> {
  const list = (timestamp: bigint) =>
    env.admin.listOffsets({
      topics: topics.map((name) => ({
        name,
        partitions: partitionIndexes(env).map((partitionIndex) => ({ partitionIndex, timestamp })),
      })),
    });
  const [earliest, latest] = await Promise.all([
    list(ListOffsetTimestamps.EARLIEST),
    list(ListOffsetTimestamps.LATEST),
  ]);
  const offset = (from: typeof earliest, topic: string, p: number): bigint =>
    from.find((t) => t.name === topic)?.partitions.find((x) => x.partitionIndex === p)?.offset ?? 0n;
  return new Map(
    topics.map((topic) => [
      topic,
      partitionIndexes(env).map((p) => ({
        earliest: offset(earliest, topic, p),
        latest: offset(latest, topic, p),
      })),
    ]),
  );
}

let readBackSeq = 0;

/** Every stored record (a one-member group from the earliest offsets, nothing committed) → checker.observe. */
export async function readBackKafka(
  env: KafkaEnv,
  topics: readonly string[],
  checker: OrderChecker,
): Promise<void> {
  let total = 0;
  for (const ranges of (await offsetRanges(env, topics)).values()) {
    for (const r of ranges) total += Number(r.latest - r.earliest);
  }
  if (total === 0) return;
  const groupId = `${topics[0]}.readback-${++readBackSeq}`;
  const consumer = new Consumer({ ...clientOptions(env, 'bench-readback'), groupId });
  try {
    const stream = await consumer.consume({ topics: [...topics], mode: 'earliest', autocommit: false });
    try {
      let seen = 0;
      const done = new Promise<void>((resolve, reject) => {
        stream.on('data', (m) => {
          const h = new Map<string, string>();
          for (const [name, value] of m.headerEntries) {
            const key = name?.toString('utf8');
            if (key !== undefined) h.set(key, value?.toString('utf8') ?? '');
          }
          const version = Number(h.get('X-Event-Version') ?? Number.NaN);
          checker.observe(h.get('X-Event-ID') ?? '', h.get('X-Aggregate-ID') ?? '', version);
          if (++seen >= total) resolve();
        });
        stream.on('error', reject);
      });
      await within(done, deadlineFor(total)); // records not read back by then count as lost
    } finally {
      await stream.close();
    }
  } finally {
    await consumer.close(true);
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
  const ranges = await offsetRanges(env, topics);
  const byGroup = new Map<string, string[]>();
  for (const topic of topics) byGroup.set(groupOf(topic), [...(byGroup.get(groupOf(topic)) ?? []), topic]);
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const listed = await env.admin.listConsumerGroupOffsets({
      groups: [...byGroup].map(([groupId, names]) => ({
        groupId,
        topics: names.map((name) => ({ name, partitionIndexes: partitionIndexes(env) })),
      })),
    });
    const settled = [...byGroup].every(([groupId, names]) =>
      names.every((name) =>
        (ranges.get(name) ?? []).every((range, partition) => {
          if (range.latest <= range.earliest) return true;
          const committed = listed
            .find((g) => g.groupId === groupId)
            ?.topics.find((t) => t.name === name)
            ?.partitions.find((p) => p.partitionIndex === partition)?.committedOffset;
          return committed !== undefined && committed >= range.latest;
        }),
      ),
    );
    if (settled) return true;
    if (performance.now() > deadline) return false;
    await delay(50);
  }
}

export type RawRecord = MessageToProduce<Buffer, Buffer, Buffer, Buffer>;
const header = (name: string): Buffer => Buffer.from(name);
const [H_ID, H_AGG, H_TYPE, H_VERSION, H_TS] = [
  'X-Event-ID',
  'X-Aggregate-ID',
  'X-Event-Type',
  'X-Event-Version',
  'X-Timestamp',
].map(header) as [Buffer, Buffer, Buffer, Buffer, Buffer];
const EVENT_TYPE_BYTES = Buffer.from(EVENT_TYPE);

/** Message i as a raw client user sends it: key = aggregate id, the envelope JSON, the same X-* headers. */
export function kafkaRecord(w: Workload, i: number): RawRecord {
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

/**
 * Calls `send(from, to)` for [0, batch), [batch, 2·batch) … covering [0, n),
 * in order, with at most `maxInFlight` unsettled at once; resolves when all settled.
 */
export async function pipelined(
  n: number,
  batch: number,
  maxInFlight: number,
  send: (from: number, to: number) => Promise<void>,
): Promise<void> {
  if (!(Number.isSafeInteger(batch) && batch > 0 && Number.isSafeInteger(maxInFlight) && maxInFlight > 0)) {
    throw new Error(`Expected a positive batch and maxInFlight, got ${batch} and ${maxInFlight}`);
  }
  const inFlight = new Set<Promise<void>>();
  for (let from = 0; from < n; from += batch) {
    const p: Promise<void> = send(from, Math.min(n, from + batch)).finally(() => inFlight.delete(p));
    inFlight.add(p);
    if (inFlight.size >= maxInFlight) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
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
  const producer = new Producer({
    ...clientOptions(env, 'bench-raw-pub'),
    idempotent: true,
    acks: ProduceAcks.ALL,
    compression: 'lz4',
  });
  if (init) await producer.initIdempotentProducer({});
  return {
    async sendAll(n) {
      const all = pipelined(n, RAW_KAFKA_BATCH, RAW_KAFKA_IN_FLIGHT, (from, to) => {
        const messages: RawRecord[] = [];
        for (let i = from; i < to; i++) {
          w.expect(checker, i);
          messages.push(kafkaRecord(w, i));
        }
        return new Promise<void>((resolve) => {
          producer.send({ messages }, (error) => {
            for (let i = from; i < to; i++) {
              if (error) checker.failed(w.eventIdOf(i));
              else checker.acknowledged(w.eventIdOf(i));
              results.inc();
            }
            if (error && notes.length < 3)
              notes.push(`send() failed for #${from}..${to - 1}: ${describeKafkaError(error)}`);
            resolve();
          });
        });
      });
      // Bounded: an idempotent producer retries forever by default.
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
          consumer = new Consumer({ ...clientOptions(env, 'bench-raw-sub'), groupId: rawGroup(w) });
          consumer.on('error', (error) => notes.push(`consumer error: ${describeKafkaError(error)}`));
          stream = await consumer.consume({
            topics: [...w.topics],
            mode: 'committed',
            fallbackMode: 'earliest',
            autocommit: false,
          });
          stream.on('data', (m) => {
            const e = decodeRaw(m.value as Buffer);
            onEvent(e.eventId, e.aggregateId, e.eventVersion);
            m.commit(onCommitted);
          });
          stream.on('error', (error) => notes.push(`consumer stream error: ${describeKafkaError(error)}`));
        },
        settled: () => commitsSettled(env, w.topics, () => rawGroup(w)),
        async close() {
          try {
            await stream?.close();
          } finally {
            await consumer?.close(true);
            if (commitErrors > 1) notes.push(`${commitErrors} commits failed`);
          }
        },
      };
    },
    readBack: (w, checker) => readBackKafka(env, w.topics, checker),
  };
}
