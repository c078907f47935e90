/**
 * The only file that constructs @platformatic/kafka clients: it maps resolved
 * options to client options and adapts Producer, Consumer and Admin to the
 * small interfaces the rest of the transport is written (and unit-tested)
 * against.
 */

import { setTimeout as sleep } from 'node:timers/promises';
import {
  Admin,
  type BaseOptions,
  Consumer,
  type ConsumerOptions,
  type MessagesStream,
  ProduceAcks,
  Producer,
} from '@platformatic/kafka';
import type { StartFrom } from '../../core/types.ts';
import { subscriptionAwareAssigner } from './assigner.ts';
import { fetchesSettled, trackFetches } from './fetch-tracker.ts';
import { recordLatestGroupStart } from './group-start.ts';
import type { KafkaCompression, ResolvedKafkaOptions } from './options.ts';
import type { ProducerClient } from './publisher.ts';
import type { ConsumerClient, ConsumerHooks, RecordStream, TopicAssignment } from './subscription.ts';
import type { AdminClient } from './topics.ts';

/** How long a created topic may take to get leaders for all its partitions. */
const TOPIC_READY_TIMEOUT_MS = 15_000;
const NO_USER_DATA = Buffer.alloc(0);

type Bytes = Buffer;

function baseOptions(o: ResolvedKafkaOptions): BaseOptions {
  const base: BaseOptions = {
    clientId: o.clientId,
    bootstrapBrokers: [...o.brokers],
    connectTimeout: o.connectTimeoutMs,
    requestTimeout: o.requestTimeoutMs,
    // Broker-side wait (acks=all replication, admin operations), below the client's request timeout.
    timeout: Math.min(o.requestTimeoutMs, 30_000),
    retries: o.retries,
    retryDelay: o.retryDelayMs,
    autocreateTopics: false,
    // Validate every option at construction: without it the client ignores a misspelt one.
    strict: true,
  };
  if (o.tls !== undefined) base.tls = o.tls;
  if (o.sasl !== undefined) base.sasl = o.sasl;
  return base;
}

export interface ProducerHandle extends ProducerClient {
  /** Gets a producer id from the cluster (checks connectivity and the IDEMPOTENT_WRITE permission). */
  init(): Promise<void>;
  isConnected(): boolean;
  close(): Promise<void>;
}

/** An idempotent producer: acks=all, one request in flight per connection, `compression` on every batch. */
export function createProducer(o: ResolvedKafkaOptions, compression: KafkaCompression): ProducerHandle {
  const producer = new Producer<Bytes, Bytes, Bytes, Bytes>({
    ...baseOptions(o),
    // The client treats retries <= 1 on an idempotent producer as "forever"; keep it bounded.
    retries: Math.max(2, o.retries),
    idempotent: true,
    acks: ProduceAcks.ALL,
    compression,
  });
  return {
    send(records, callback) {
      producer.send({ messages: records }, callback);
    },
    partitionCount(topic) {
      return producer.currentMetadata?.topics.get(topic)?.partitionsCount;
    },
    async init() {
      await producer.initIdempotentProducer({});
    },
    isConnected() {
      return producer.isConnected();
    },
    close() {
      return producer.close(true);
    },
  };
}

export interface AdminHandle extends AdminClient {
  close(): Promise<void>;
}

export function createAdmin(o: ResolvedKafkaOptions): AdminHandle {
  const admin = new Admin(baseOptions(o));
  return {
    async createTopic(topic, partitions, replicationFactor) {
      await admin.createTopics({ topics: [topic], partitions, replicas: replicationFactor });
      // Creation returns before every partition has a leader; publishing or joining right away would fail.
      const deadline = Date.now() + TOPIC_READY_TIMEOUT_MS;
      for (;;) {
        try {
          const metadata = await admin.metadata({ topics: [topic], forceUpdate: true });
          const t = metadata.topics.get(topic);
          if (
            t !== undefined &&
            t.partitionsCount > 0 &&
            t.partitions.every((p) => p !== undefined && p.leader >= 0)
          ) {
            return;
          }
        } catch (error) {
          if (Date.now() > deadline) throw error;
        }
        if (Date.now() > deadline) return; // created; leaders will come, clients retry on stale metadata
        await sleep(100);
      }
    },
    listTopics() {
      return admin.listTopics();
    },
    recordLatestGroupStart(topic, group) {
      return recordLatestGroupStart(admin, topic, group);
    },
    close() {
      return admin.close();
    },
  };
}

function adaptStream(stream: MessagesStream<Bytes, Bytes, Bytes, Bytes>): RecordStream {
  return {
    onRecord(listener) {
      stream.on('data', listener);
    },
    onError(listener) {
      stream.on('error', listener);
    },
    onClose(listener) {
      stream.on('close', listener);
    },
    pause() {
      stream.pause();
    },
    resume() {
      stream.resume();
    },
    rewind(topic, partition, offset) {
      // The client's own read positions (`topic:partition` keys): after a join it replaces them
      // with the group's committed offsets, but keeps them where the group has none (-1), and
      // seeds missing ones from the reset policy (listOffsets).
      const key = `${topic}:${partition}`;
      if (offset === undefined) stream.offsetsToFetch.delete(key);
      else stream.offsetsToFetch.set(key, offset);
    },
    close() {
      return stream.close();
    },
  };
}

/**
 * A classic-protocol group member for one topic: manual commits only,
 * reading from the committed offsets (`startFrom`, by default
 * `autoOffsetReset`, when there is none),
 * with `hooks.beforeJoin` as the `protocolsMetadata` callback the client
 * awaits before every JoinGroup.
 */
export function createConsumer(
  o: ResolvedKafkaOptions,
  topic: string,
  group: string,
  hooks: ConsumerHooks,
  startFrom: StartFrom = o.autoOffsetReset,
): ConsumerClient {
  const options: ConsumerOptions<Bytes, Bytes, Bytes, Bytes> = {
    ...baseOptions(o),
    groupId: group,
    autocommit: false,
    sessionTimeout: o.sessionTimeoutMs,
    heartbeatInterval: o.heartbeatIntervalMs,
    rebalanceTimeout: o.rebalanceTimeoutMs,
    maxWaitTime: o.fetchMaxWaitMs,
    maxBytes: o.fetchMaxBytes,
    maxBytesPerPartition: o.fetchMaxBytesPerPartition,
    // The client's default deals the leader's topics to every member; ours are one topic each.
    partitionAssigner: subscriptionAwareAssigner,
    protocolsMetadata: async () => {
      try {
        await hooks.beforeJoin();
      } catch (error) {
        hooks.onError(error);
      }
      return NO_USER_DATA;
    },
  };
  const consumer = new Consumer<Bytes, Bytes, Bytes, Bytes>(options);
  consumer.on('consumer:group:join', (payload) => {
    const assignments = payload.assignments ?? consumer.assignments ?? [];
    hooks.onJoin(payload.generationId ?? consumer.generationId, assignments as TopicAssignment[]);
  });
  // The client emits 'error' when a rejoin fails; without a listener that would crash the process.
  consumer.on('error', (error) => hooks.onError(error));
  const untrack = trackFetches(consumer);
  return {
    get generationId() {
      return consumer.generationId;
    },
    get assignments() {
      return consumer.assignments;
    },
    async consume() {
      const stream = await consumer.consume({
        topics: [topic],
        mode: 'committed',
        // Committed offsets win: only a group (partition) without one starts here.
        fallbackMode: startFrom,
        autocommit: false,
        maxWaitTime: o.fetchMaxWaitMs,
        maxBytes: o.fetchMaxBytes,
        maxBytesPerPartition: o.fetchMaxBytesPerPartition,
      });
      return adaptStream(stream);
    },
    async commit(commits) {
      await consumer.commit({
        offsets: commits.map((c) => ({
          topic: c.topic,
          partition: c.partition,
          offset: c.offset,
          leaderEpoch: c.leaderEpoch,
        })),
      });
    },
    fetchesSettled(signal) {
      return fetchesSettled(consumer, signal);
    },
    async rejoin() {
      await consumer.joinGroup({});
    },
    isActive() {
      return consumer.isActive();
    },
    isConnected() {
      return consumer.isConnected();
    },
    async close() {
      try {
        await consumer.close(true);
      } finally {
        untrack();
      }
    },
  };
}
