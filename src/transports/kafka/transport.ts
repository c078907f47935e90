/** The Kafka transport: the contract of core/transport.ts over publisher, topics and subscriptions. */
import type { Logger } from '../../core/logger.ts';
import type {
  FlowControl,
  MessageKind,
  OutboundMessage,
  PublishCallback,
  Transport,
  TransportContext,
  TransportFeatures,
  TransportHealth,
  TransportSubscribeOptions,
  TransportSubscription,
} from '../../core/transport.ts';
import type { StartFrom } from '../../core/types.ts';
import { raceSignal } from '../../core/waiting.ts';
import type { KafkaCompression, ResolvedKafkaOptions } from './options.ts';
import { KafkaPublisher, type ProducerClient } from './publisher.ts';
import { type ConsumerClient, type ConsumerHooks, KafkaSubscription } from './subscription.ts';
import { type AdminClient, TopicManager } from './topics.ts';

export interface KafkaClients {
  readonly producer: ProducerClient & { isConnected(): boolean; close(): Promise<void> };
  readonly admin: AdminClient & { close(): Promise<void> };
  /** `startFrom`: where the group starts without committed offsets (default: kafka.autoOffsetReset). */
  consumer(topic: string, group: string, hooks: ConsumerHooks, startFrom?: StartFrom): ConsumerClient;
}

export class KafkaTransport implements Transport {
  readonly kind = 'kafka' as const;
  readonly features: TransportFeatures;
  readonly maxPayloadBytes: number;
  readonly #options: ResolvedKafkaOptions;
  readonly #logger: Logger;
  readonly #clients: KafkaClients;
  readonly #topics: TopicManager;
  readonly #publisher: KafkaPublisher;
  readonly #compression: KafkaCompression;
  readonly #subscriptions = new Set<KafkaSubscription>();
  #closing: Promise<void> | undefined;

  constructor(
    options: ResolvedKafkaOptions,
    ctx: TransportContext,
    clients: KafkaClients,
    compression: KafkaCompression,
  ) {
    this.#options = options;
    this.#logger = ctx.logger;
    this.#clients = clients;
    this.#compression = compression;
    this.maxPayloadBytes = options.maxPayloadBytes;
    this.features = {
      persistent: true,
      consumerGroups: true,
      newSubscriberReceivesOldMessages: options.autoOffsetReset === 'earliest',
      // Idempotence de-duplicates the producer's own retries, not a re-send of the same eventId.
      brokerDeduplication: false,
      // A nak holds the partition's commit watermark; the message is read again
      // after a rebalance or restart, not while this assignment lives (commit-tracker.ts).
      nakRedelivers: false,
      nakDelay: false,
    };
    this.#topics = new TopicManager(clients.admin, options, ctx.logger);
    this.#publisher = new KafkaPublisher(clients.producer, options, {
      logger: ctx.logger,
      ensureTopic: (topic) => this.#topics.ensure(topic),
    });
  }

  /** Creates the topic when missing (partitions/replicationFactor from the options). Both kinds alike. */
  ensureTopic(topic: string, _kind: MessageKind): Promise<void> {
    return this.#topics.ensure(topic) ?? Promise.resolve();
  }

  send(message: OutboundMessage, done: PublishCallback): void {
    this.#publisher.send(message, done);
  }

  async subscribe(options: TransportSubscribeOptions, flow: FlowControl): Promise<TransportSubscription> {
    await this.ensureTopic(options.topic, options.kind);
    const o = this.#options;
    if (options.handlerTimeoutMs >= o.revokeTimeoutMs) {
      this.#logger.warn(
        {
          topic: options.topic,
          handlerTimeoutMs: options.handlerTimeoutMs,
          revokeTimeoutMs: o.revokeTimeoutMs,
        },
        'Kafka: a handler may outlive the rebalance drain (revokeTimeoutMs); its message would be delivered again to the next owner',
      );
    }
    if (options.startFrom === 'latest') {
      await this.#clients.admin.recordLatestGroupStart?.(options.topic, options.group);
    }
    const subscription = await KafkaSubscription.start(
      (hooks) => this.#clients.consumer(options.topic, options.group, hooks, options.startFrom),
      {
        topic: options.topic,
        group: options.group,
        kind: options.kind,
        commitIntervalMs: o.commitIntervalMs,
        revokeTimeoutMs: o.revokeTimeoutMs,
        closeTimeoutMs: o.closeTimeoutMs,
      },
      flow,
      this.#logger,
    );
    this.#subscriptions.add(subscription);
    return {
      stop: () => subscription.stop(),
      close: async () => {
        try {
          await subscription.close();
        } finally {
          this.#subscriptions.delete(subscription);
        }
      },
    };
  }

  health(): TransportHealth {
    let consumersConnected = true;
    for (const s of this.#subscriptions) consumersConnected &&= s.isConnected();
    const connected =
      this.#closing === undefined && this.#clients.producer.isConnected() && consumersConnected;
    return {
      connected,
      details: {
        compression: this.#compression,
        pendingPublishes: this.#publisher.pending,
        produceRequestsInFlight: this.#publisher.inFlight,
        subscriptions: [...this.#subscriptions].map((s) => ({ partitions: s.partitions, ...s.stats })),
      },
    };
  }

  /** Waits (up to the deadline) for outstanding sends, closes leftover subscriptions, disconnects. */
  close(deadline: AbortSignal): Promise<void> {
    this.#closing ??= this.#close(deadline);
    return this.#closing;
  }

  async #close(deadline: AbortSignal): Promise<void> {
    await this.#publisher.close(deadline);
    await raceSignal(Promise.allSettled([...this.#subscriptions].map((s) => s.close())), deadline);
    this.#subscriptions.clear();
    const results = await Promise.allSettled([this.#clients.producer.close(), this.#clients.admin.close()]);
    for (const r of results) {
      if (r.status === 'rejected') this.#logger.warn({ err: r.reason }, 'Kafka: closing a client failed');
    }
  }
}
