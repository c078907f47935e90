/**
 * The Kafka side of the bench: which Kafka systems run (KAFKA_BROKERS), an
 * admin client for fresh topics (created untimed, the same partition count
 * for both sides, deleted afterwards with the bench's consumer groups),
 * read-back of what the topics stored, fed to the order checker, and the
 * "every offset committed" check after a consumption run.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { Admin, type BaseOptions, Consumer, ListOffsetTimestamps } from '@platformatic/kafka';
import type { OrderChecker } from '../src/testing/checker.ts';
import { describeKafkaError } from '../src/transports/kafka/errors.ts';
import {
  type KafkaTransportOptions,
  kafkaDefaults,
  resolveKafkaOptions,
} from '../src/transports/kafka/options.ts';
import { KAFKA_SYSTEMS, type SystemName } from './config.ts';
import { deadlineFor, within } from './measure.ts';
import type { Workload } from './workload.ts';

export const KAFKA_BROKERS_VAR = 'KAFKA_BROKERS';

/** How long created topics may take to get a leader for every partition. */
const TOPIC_READY_TIMEOUT_MS = 15_000;

export interface KafkaPlan {
  /** Brokers from KAFKA_BROKERS (validated); undefined when it is unset or empty, or no Kafka system was requested. */
  readonly brokers: readonly string[] | undefined;
  /** The requested systems that run. */
  readonly systems: readonly SystemName[];
  /** Requested Kafka systems that do not run, and why. */
  readonly skipped: readonly SystemName[];
  readonly reason: string | undefined;
}

/**
 * Which of the requested systems run: the Kafka ones only when KAFKA_BROKERS
 * names brokers (`host:port`, comma-separated). Throws on a malformed value
 * (only when a Kafka system was requested).
 */
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
  let brokers: readonly string[];
  try {
    brokers = resolveKafkaOptions({ brokers: raw }, 'bench').brokers;
  } catch (error) {
    throw new Error(`Expected ${KAFKA_BROKERS_VAR} to list host:port brokers: ${(error as Error).message}`);
  }
  return { brokers, systems: [...requested], skipped: [], reason: undefined };
}

/** The one stderr line saying that (and why) Kafka systems are skipped; undefined when none are. */
export function skipLine(plan: KafkaPlan): string | undefined {
  if (plan.skipped.length === 0) return undefined;
  return `bench: ${plan.reason}: skipping ${plan.skipped.join(', ')} (set ${KAFKA_BROKERS_VAR}=host:9092 to run them)`;
}

export interface KafkaEnv {
  readonly brokers: readonly string[];
  /** Partitions of every bench topic (both sides), the transport's default. */
  readonly partitions: number;
  readonly replicationFactor: number;
  /** Cluster id and broker count as the metadata reports them. */
  readonly cluster: string;
  /** Topic and group management, offsets and verification only, never measured. */
  readonly admin: Admin;
  close(): Promise<void>;
}

/** Client options of the bench's own Kafka clients (raw side, admin, read-back): the client's defaults. */
export function clientOptions(env: KafkaEnv, clientId: string): BaseOptions {
  return { clientId, bootstrapBrokers: [...env.brokers], autocreateTopics: false };
}

/** What our bus gets under `kafka:` (topics exist already; the partition count only matters if not). */
export function kafkaBusOptions(env: KafkaEnv): KafkaTransportOptions {
  return {
    brokers: [...env.brokers],
    partitions: env.partitions,
    replicationFactor: env.replicationFactor,
    // Experiments: BENCH_KAFKA_OPTIONS='{"maxInFlight":4}' overrides transport options of our side.
    ...(process.env.BENCH_KAFKA_OPTIONS ? (JSON.parse(process.env.BENCH_KAFKA_OPTIONS) as object) : {}),
  };
}

/** Connects an admin client and checks the cluster answers (a clear error up front, not in a run). */
export async function startKafkaEnv(brokers: readonly string[]): Promise<KafkaEnv> {
  const admin = new Admin({
    clientId: 'bench-admin',
    bootstrapBrokers: [...brokers],
    autocreateTopics: false,
  });
  try {
    const metadata = await admin.metadata({ topics: [] });
    return {
      brokers,
      partitions: kafkaDefaults.partitions,
      replicationFactor: kafkaDefaults.replicationFactor,
      cluster: `${metadata.id} (${metadata.brokers.size} broker${metadata.brokers.size === 1 ? '' : 's'})`,
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

/** Our bus's consumer group for a topic: one group per topic (see bench/README.md, Kafka). */
export function oursGroup(topic: string): string {
  return `${topic}.ours`;
}

/** The raw consumer's group: one member reading every topic of the workload. */
export function rawGroup(w: Workload): string {
  return `${w.prefix}raw`;
}

const partitionIndexes = (env: KafkaEnv): number[] => Array.from({ length: env.partitions }, (_, p) => p);

/**
 * Creates fresh topics (unique names) with the bench's partition count and
 * waits until every partition has a leader: Kafka answers CreateTopics before
 * that, and a run starting earlier would time its first metadata retries.
 * Polls the metadata (as src/transports/kafka/client.ts does): there is no
 * event to wait for.
 */
export async function createKafkaTopics(env: KafkaEnv, topics: readonly string[]): Promise<void> {
  await env.admin.createTopics({
    topics: [...topics],
    partitions: env.partitions,
    replicas: env.replicationFactor,
  });
  const deadline = Date.now() + TOPIC_READY_TIMEOUT_MS;
  for (;;) {
    const metadata = await env.admin.metadata({ topics: [...topics], forceUpdate: true });
    const ready = topics.every((topic) => {
      const t = metadata.topics.get(topic);
      return (
        t !== undefined &&
        t.partitionsCount === env.partitions &&
        t.partitions.every((p) => p !== undefined && p.leader >= 0)
      );
    });
    if (ready) return;
    if (Date.now() > deadline) {
      throw new Error(`Expected leaders for every partition of ${topics.join(', ')} within 15 s`);
    }
    await delay(100);
  }
}

/**
 * Deletes a workload's topics and the bench's consumer groups on them (ours
 * per topic, raw); best effort, like the NATS side's stream deletion.
 */
export async function deleteKafkaTopics(env: KafkaEnv, w: Workload): Promise<void> {
  await deleteGroups(env, [...w.topics.map(oursGroup), rawGroup(w)]);
  try {
    await env.admin.deleteTopics({ topics: [...w.topics] });
  } catch {
    // already gone, or the broker does not allow deletion (delete.topic.enable=false)
  }
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

/** [earliest, latest) offsets per topic and partition: what the topics hold. */
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
  const out = new Map<string, { earliest: bigint; latest: bigint }[]>();
  for (const topic of topics) {
    const from = earliest.find((t) => t.name === topic)?.partitions ?? [];
    const to = latest.find((t) => t.name === topic)?.partitions ?? [];
    out.set(
      topic,
      partitionIndexes(env).map((p) => ({
        earliest: from.find((x) => x.partitionIndex === p)?.offset ?? 0n,
        latest: to.find((x) => x.partitionIndex === p)?.offset ?? 0n,
      })),
    );
  }
  return out;
}

let readBackSeq = 0;

/**
 * Reads every stored record of the topics back (a one-member group reading
 * from the earliest offsets, nothing committed, untimed) and reports it to
 * the checker as consumed, from the record headers: lost / duplicated / out
 * of order then describe what the broker stored, in partition order.
 */
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
            // A null header name or value arrives as undefined (the default deserializers pass it on).
            const key = name?.toString('utf8');
            if (key !== undefined) h.set(key, value?.toString('utf8') ?? '');
          }
          checker.observe(
            h.get('X-Event-ID') ?? '',
            h.get('X-Aggregate-ID') ?? '',
            Number(h.get('X-Event-Version') ?? Number.NaN),
          );
          if (++seen >= total) resolve();
        });
        stream.on('error', reject);
      });
      // Bounded: records not read back by the deadline count as lost.
      await within(done, deadlineFor(total));
    } finally {
      await stream.close();
    }
  } finally {
    await consumer.close(true);
    await deleteGroups(env, [groupId]);
  }
}

/**
 * Untimed check after a consumption run: did every offset get committed?
 * Waits up to `timeoutMs` until each partition's committed offset (of the
 * group `groupOf(topic)`) reached its end offset. The Kafka counterpart of
 * the NATS ack-floor check.
 */
export async function commitsSettled(
  env: KafkaEnv,
  topics: readonly string[],
  groupOf: (topic: string) => string,
  timeoutMs = 5_000,
): Promise<boolean> {
  const ranges = await offsetRanges(env, topics);
  const byGroup = new Map<string, string[]>();
  for (const topic of topics) {
    const group = groupOf(topic);
    byGroup.set(group, [...(byGroup.get(group) ?? []), topic]);
  }
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const listed = await env.admin.listConsumerGroupOffsets({
      groups: [...byGroup].map(([groupId, names]) => ({
        groupId,
        topics: names.map((name) => ({ name, partitionIndexes: partitionIndexes(env) })),
      })),
    });
    const settled = [...byGroup].every(([groupId, names]) => {
      const group = listed.find((g) => g.groupId === groupId);
      return names.every((name) =>
        (ranges.get(name) ?? []).every((range, partition) => {
          if (range.latest <= range.earliest) return true; // nothing to consume, nothing to commit
          const committed = group?.topics
            .find((t) => t.name === name)
            ?.partitions.find((p) => p.partitionIndex === partition)?.committedOffset;
          return committed !== undefined && committed >= range.latest;
        }),
      );
    });
    if (settled) return true;
    if (performance.now() > deadline) return false;
    await delay(50);
  }
}
