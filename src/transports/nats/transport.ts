/** The NATS JetStream transport: wires connection, streams, publisher and fetch loops together. */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { BusClosedError, InvalidArgumentError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import type {
  FlowControl,
  MessageKind,
  OutboundMessage,
  ParkingLot,
  PublishCallback,
  Transport,
  TransportFeatures,
  TransportHealth,
  TransportSubscribeOptions,
  TransportSubscription,
} from '../../core/transport.ts';
import type { StartFrom } from '../../core/types.ts';
import { partitionOf } from '../../groups/lanes.ts';
import type { GroupMetrics } from '../../metrics/metrics.ts';
import type { NatsConnectionManager } from './connection.ts';
import { ackModeOf, ackWaitFor, type ConsumerSpec, consumerInfo, ensureConsumer } from './consumer.ts';
import { rawStartSequence } from './group-start.ts';
import { JetStreamProbe } from './jetstream-probe.ts';
import { KvLeaseStore } from './kv-lease-store.ts';
import { durableNameFor, validateTopic } from './names.ts';
import type { ResolvedNatsOptions } from './options.ts';
import { natsParkingLot, openParkedBucket } from './parking-lot.ts';
import { NatsPartitionedSubscription } from './partitioned-subscription.ts';
import { partitionSubject, topicOfSubject } from './partitions.ts';
import { PipelinedPublisher } from './publisher.ts';
import { NatsPullSubscription } from './pull-subscription.ts';
import { type StreamHandle, StreamRegistry } from './streams.ts';

const FEATURES: TransportFeatures = Object.freeze({
  persistent: true,
  consumerGroups: true,
  newSubscriberReceivesOldMessages: true,
  brokerDeduplication: true,
  nakRedelivers: true,
  nakDelay: true,
});

/** Added by the publisher (broker de-duplication); never copied into a re-publish. */
const OWNED_HEADERS: readonly string[] = Object.freeze(['Nats-Msg-Id']);

/** Time left for draining the connection after pending publishes were settled. */
const DRAIN_TIMEOUT_MS = 2_000;

export class NatsTransport implements Transport {
  readonly kind = 'nats' as const;
  readonly features: TransportFeatures;
  readonly ownedHeaders = OWNED_HEADERS;
  readonly #conn: NatsConnectionManager;
  readonly #jsm: JetStreamManager;
  readonly #options: ResolvedNatsOptions;
  readonly #logger: Logger;
  readonly #streams: StreamRegistry;
  readonly #publisher: PipelinedPublisher;
  readonly #subscriptions = new Set<NatsPullSubscription | NatsPartitionedSubscription>();
  #store: Promise<KvLeaseStore> | undefined;
  /**
   * Partition leases travel on their own connection, opened with the first
   * group subscription. A renewal is a small request/reply; on the data
   * connection its reply queues behind whatever the pulls are delivering, and
   * a consumer busy with a backlog lapses its own leases (a rewind and
   * duplicates each time: dozens of lapses in one loaded bench run). Alone, a
   * renewal waits only for our event loop.
   */
  #leaseConn: Promise<NatsConnectionManager> | undefined;
  readonly #openLeaseConnection: () => Promise<NatsConnectionManager>;
  /** The park policy's bucket, opened on first use. */
  #parked: Promise<KV> | undefined;
  /** Mixed fleet with the Go SDK: publish on `<topic>`, where Go consumers look. */
  readonly #plainSubjects: boolean;
  readonly #groupMetrics: ((topic: string, group: string) => GroupMetrics) | undefined;
  /** This bus's identity in consumer groups: unique per process and bus. */
  readonly #memberId = memberIdFor();
  /** Running fetch loops per `<stream>/<durable>`. */
  readonly #members = new Map<string, number>();
  /** Whether JetStream answers, for health(). */
  readonly #jetStream: JetStreamProbe;
  #closing: Promise<void> | undefined;

  constructor(
    conn: NatsConnectionManager,
    jsm: JetStreamManager,
    options: ResolvedNatsOptions,
    logger: Logger,
    plainSubjects = false,
    groupMetrics?: (topic: string, group: string) => GroupMetrics,
    openLeaseConnection: () => Promise<NatsConnectionManager> = async () => conn,
  ) {
    this.#openLeaseConnection = openLeaseConnection;
    this.#plainSubjects = plainSubjects;
    this.#groupMetrics = groupMetrics;
    this.#conn = conn;
    this.#jsm = jsm;
    this.#options = options;
    // The window the streams this transport creates get (an existing stream keeps its own: `eventbus doctor`).
    this.features = Object.freeze({ ...FEATURES, duplicateWindowMs: options.duplicateWindowMs });
    this.#logger = logger;
    this.#streams = new StreamRegistry(jsm, options, logger);
    this.#publisher = new PipelinedPublisher(
      conn,
      options,
      logger,
      (subject) => void this.#streams.repair(topicOfSubject(subject)),
      (message) => this.#subjectFor(message),
    );
    this.#jetStream = new JetStreamProbe(jsm, logger, () => conn.connected);
    this.#jetStream.start();
  }

  get maxPayloadBytes(): number {
    return this.#conn.maxPayload;
  }

  async parkingLot(topic: string, group: string): Promise<ParkingLot> {
    this.#parked ??= openParkedBucket(
      this.#conn.nc,
      `${this.#options.streamPrefix}_PARKED`,
      this.#options.stream.replicas,
    );
    this.#parked.catch(() => {
      this.#parked = undefined;
    });
    const kv = await this.#parked;
    return natsParkingLot({
      nc: this.#conn.nc,
      jsm: this.#jsm,
      kv,
      streams: this.#streams,
      topic,
      group,
      durable: durableNameFor(group),
      member: this.#memberId,
    });
  }

  async ensureTopic(topic: string, kind: MessageKind): Promise<void> {
    if (this.#closing !== undefined) throw new BusClosedError('The NATS transport is closed or closing');
    await this.#streams.ensure(topic, kind);
  }

  send(message: OutboundMessage, done: PublishCallback): void {
    this.#publisher.send(message, done);
  }

  /** An envelope with an aggregate goes to its partition when the topic's stream has partitions. */
  #subjectFor(message: OutboundMessage): string {
    if (
      this.#plainSubjects ||
      message.kind !== 'envelope' ||
      message.key === undefined ||
      message.key === ''
    ) {
      return message.topic;
    }
    const partitions = this.#streams.resolved(message.topic)?.partitions ?? 0;
    return partitions === 0
      ? message.topic
      : partitionSubject(message.topic, partitionOf(message.key, partitions));
  }

  async subscribe(options: TransportSubscribeOptions, flow: FlowControl): Promise<TransportSubscription> {
    if (this.#closing !== undefined) throw new BusClosedError('The NATS transport is closed or closing');
    const { topic, group, kind, handlerTimeoutMs } = options;
    if (typeof handlerTimeoutMs !== 'number' || !Number.isFinite(handlerTimeoutMs) || handlerTimeoutMs < 0) {
      throw new InvalidArgumentError(
        `Expected \`handlerTimeoutMs\` to be a number >= 0, got ${String(handlerTimeoutMs)}`,
      );
    }
    validateTopic(topic);
    const durable = durableNameFor(group);
    // Several members of one group share the durable's messages (like members in
    // other processes): per-aggregate order holds only within one member.
    const key = `${this.#streams.nameFor(topic)}/${durable}`;
    const members = (this.#members.get(key) ?? 0) + 1;
    this.#members.set(key, members);
    if (members > 1) {
      this.#logger.warn(
        { topic, group, members },
        `nats: ${members} subscriptions share durable ${key} in this process; they split its messages, so per-aggregate order holds only within each`,
      );
    }
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      const left = (this.#members.get(key) ?? 1) - 1;
      if (left > 0) this.#members.set(key, left);
      else this.#members.delete(key);
    };
    try {
      return await this.#subscribe(topic, kind, handlerTimeoutMs, durable, release, flow, options.startFrom);
    } catch (error) {
      release();
      throw error;
    }
  }

  ackDeadlineMs(handlerTimeoutMs: number): number {
    return ackWaitFor(this.#options.consumer.ackWaitMs, handlerTimeoutMs);
  }

  async #subscribe(
    topic: string,
    kind: MessageKind,
    handlerTimeoutMs: number,
    durable: string,
    release: () => void,
    flow: FlowControl,
    startFrom: StartFrom | undefined,
  ): Promise<TransportSubscription> {
    const stream = await this.#streams.ensure(topic, kind);
    if (kind === 'envelope')
      return this.#subscribePartitioned(stream, durable, handlerTimeoutMs, release, flow, startFrom);
    const spec = this.#consumerSpec(stream, durable, handlerTimeoutMs);
    // Only a durable created now starts at the end; an existing one keeps its position.
    const existing = startFrom === 'latest' ? await consumerInfo(this.#jsm, spec) : undefined;
    const start =
      existing === undefined ? await rawStartSequence(this.#jsm, stream.name, startFrom) : undefined;
    const info = existing ?? (await ensureConsumer(this.#jsm, spec, this.#logger, start));
    const deps = {
      conn: this.#conn,
      jsm: this.#jsm,
      streams: this.#streams,
      options: this.#options,
      logger: this.#logger,
    };
    const subscription = new NatsPullSubscription(
      deps,
      stream,
      spec,
      info.ack_floor.stream_seq,
      ackModeOf(info),
      flow,
    );
    this.#subscriptions.add(subscription);
    subscription.start();
    return {
      stop: async () => {
        await subscription.stop();
        release(); // its fetch loop ended: another may start
      },
      close: async () => {
        await subscription.close();
        this.#subscriptions.delete(subscription);
        release();
      },
    };
  }

  /**
   * Envelope topics: a member of the group's partition leases (one active
   * member per partition, across processes), see partitioned-subscription.ts.
   */
  async #openLeaseStore(): Promise<KvLeaseStore> {
    this.#leaseConn ??= this.#openLeaseConnection();
    const opening = this.#leaseConn;
    opening.catch(() => {
      if (this.#leaseConn === opening) this.#leaseConn = undefined;
    });
    const conn = await opening;
    return KvLeaseStore.open(conn.nc, {
      bucket: `${this.#options.streamPrefix}_GROUPS`,
      replicas: this.#options.stream.replicas,
      ttlMs: Math.max(60_000, 10 * this.#options.group.leaseMs),
    });
  }

  /** The durable's settings: the configured consumer options, AckWait raised above the handler timeout. */
  #consumerSpec(stream: StreamHandle, durable: string, handlerTimeoutMs: number): ConsumerSpec {
    const consumer = this.#options.consumer;
    return {
      stream: stream.name,
      durable,
      ackWaitMs: this.ackDeadlineMs(handlerTimeoutMs),
      maxAckPending: consumer.maxAckPending,
      maxWaiting: consumer.maxWaiting,
      ackPolicy: consumer.ackPolicy,
    };
  }

  async #subscribePartitioned(
    stream: StreamHandle,
    durable: string,
    handlerTimeoutMs: number,
    release: () => void,
    flow: FlowControl,
    startFrom: StartFrom | undefined,
  ): Promise<TransportSubscription> {
    this.#store ??= this.#openLeaseStore();
    this.#store.catch(() => {
      this.#store = undefined;
    });
    const store = await this.#store;
    const base = this.#consumerSpec(stream, durable, handlerTimeoutMs);
    const deps = {
      conn: this.#conn,
      jsm: this.#jsm,
      streams: this.#streams,
      options: this.#options,
      logger: this.#logger,
      store,
      memberId: this.#memberId,
      ...(this.#groupMetrics === undefined ? {} : { metrics: this.#groupMetrics(stream.topic, durable) }),
    };
    const subscription = new NatsPartitionedSubscription(deps, stream, base, flow, startFrom);
    this.#subscriptions.add(subscription);
    await subscription.start();
    return {
      owns: (key) => subscription.owns(key),
      stop: async () => {
        await subscription.stop();
      },
      close: async () => {
        await subscription.close();
        this.#subscriptions.delete(subscription);
        release();
      },
    };
  }

  health(): TransportHealth {
    const publish = this.#publisher.stats();
    const jetStream = this.#jetStream.problem;
    return {
      connected: this.#conn.connected,
      ...(jetStream === undefined ? {} : { problems: [jetStream] }),
      details: {
        server: this.#conn.server,
        pendingPublishes: publish.pending,
        reconnects: this.#conn.reconnects,
        disconnects: this.#conn.disconnects,
        lastError: this.#conn.lastError,
        publish,
        subscriptions: [...this.#subscriptions].map((s) => s.stats()),
      },
    };
  }

  /**
   * Refuses new sends, stops intake, waits for pending PubAcks until `deadline`
   * (at most closeTimeoutMs), fails the rest with TimeoutError, then drains and
   * closes the connection. Idempotent.
   */
  close(deadline: AbortSignal): Promise<void> {
    this.#closing ??= (async () => {
      this.#jetStream.stop();
      this.#publisher.beginClose();
      await Promise.all([...this.#subscriptions].map((s) => s.stop()));
      const limit = AbortSignal.any([deadline, AbortSignal.timeout(this.#options.closeTimeoutMs)]);
      await this.#publisher.waitIdle(limit);
      if (this.#publisher.pending > 0) {
        this.#logger.warn(
          { pending: this.#publisher.pending },
          'nats: closing with publishes still unacknowledged; failing them with TimeoutError',
        );
        this.#publisher.failPending('the transport closed');
      }
      // Repairs helped pending publishes above; none may outlive the connection.
      await this.#streams.stop();
      await Promise.all([...this.#subscriptions].map((s) => s.close()));
      this.#subscriptions.clear();
      this.#publisher.dispose();
      // The subscriptions gave their leases up above: the lease connection is idle now.
      const leases = await this.#leaseConn?.catch(() => undefined);
      if (leases !== undefined && leases !== this.#conn) await leases.shutdown(DRAIN_TIMEOUT_MS);
      await this.#conn.shutdown(DRAIN_TIMEOUT_MS);
    })();
    return this.#closing;
  }
}

let members = 0;

/** `<host>-<pid>-<n>-<random>`: KV-key safe, unique per bus instance. */
function memberIdFor(): string {
  const host = hostname()
    .replace(/[^A-Za-z0-9_-]/g, '_')
    .slice(0, 40);
  return `${host}-${process.pid}-${++members}-${randomBytes(3).toString('hex')}`;
}
