/**
 * Topic preparation: creates a missing topic with the configured partition
 * count and replication factor, once per topic per transport (cached;
 * concurrent calls share one attempt; a failed attempt is retried on the
 * next call).
 *
 * Existing topics are the common case (every subscribe and every fresh
 * producer asks), so the topic list is read first and only a missing topic is
 * created: a CreateTopics on a fresh client cost ~260 ms even for an existing
 * topic (the first attempt reaches a non-controller broker and the client
 * retries after `retryDelayMs`), paid before the first publish and in every
 * subscribe.
 *
 * "Already exists" is success. Any other refusal (invalid replication factor,
 * policy violation, missing ACL) is a TransportError naming the topic and the
 * broker's reason, unless the topic turns out to exist anyway (a user allowed
 * to write to a topic but not to create topics).
 */
import { TransportError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { brokerErrorIds, describeKafkaError } from './errors.ts';

/** The part of the client's Admin used here (client.ts adapts the real one; fakes in tests). */
export interface AdminClient {
  /** Creates the topic and waits until its partitions have leaders. */
  createTopic(topic: string, partitions: number, replicationFactor: number): Promise<void>;
  listTopics(): Promise<string[]>;
  /** startFrom 'latest': commits the topic's end offsets for a group that has none (see group-start.ts). */
  recordLatestGroupStart?(topic: string, group: string): Promise<boolean>;
}

export interface TopicSettings {
  readonly partitions: number;
  readonly replicationFactor: number;
}

export class TopicManager {
  readonly #admin: AdminClient;
  readonly #settings: TopicSettings;
  readonly #logger: Logger;
  readonly #ready = new Set<string>();
  readonly #pending = new Map<string, Promise<void>>();
  /** One topic listing shared by concurrent ensure() calls. */
  #listing: Promise<readonly string[]> | undefined;

  constructor(admin: AdminClient, settings: TopicSettings, logger: Logger) {
    this.#admin = admin;
    this.#settings = settings;
    this.#logger = logger;
  }

  /** Undefined when the topic is known to exist (no promise on the hot path), else the attempt. */
  ensure(topic: string): Promise<void> | undefined {
    if (this.#ready.has(topic)) return undefined;
    let pending = this.#pending.get(topic);
    if (pending === undefined) {
      pending = this.#create(topic).finally(() => this.#pending.delete(topic));
      this.#pending.set(topic, pending);
    }
    return pending;
  }

  /** The cluster's topic names (one request shared by concurrent callers); empty when listing fails. */
  #listTopics(): Promise<readonly string[]> {
    this.#listing ??= this.#admin
      .listTopics()
      .catch((error: unknown) => {
        this.#logger.debug({ err: error }, 'Kafka: listing topics failed; creating instead');
        return [];
      })
      .finally(() => {
        this.#listing = undefined;
      });
    return this.#listing;
  }

  async #create(topic: string): Promise<void> {
    if ((await this.#listTopics()).includes(topic)) {
      this.#ready.add(topic);
      return;
    }
    const { partitions, replicationFactor } = this.#settings;
    try {
      await this.#admin.createTopic(topic, partitions, replicationFactor);
      this.#logger.info({ topic, partitions, replicationFactor }, 'Kafka: topic created');
    } catch (error) {
      const ids = brokerErrorIds(error);
      if (!ids.includes('TOPIC_ALREADY_EXISTS')) {
        let exists = false;
        try {
          exists = (await this.#admin.listTopics()).includes(topic);
        } catch {
          exists = false;
        }
        if (!exists) {
          throw new TransportError(
            `Expected Kafka to create topic "${topic}" with ${partitions} partitions and replication factor ${replicationFactor}, the broker refused: ${describeKafkaError(error)}`,
            // A broker answer (an error id) is a refusal; no answer at all may be transient.
            { cause: error, retryable: ids.length === 0 },
          );
        }
        this.#logger.debug({ topic, err: error }, 'Kafka: topic exists although it could not be created');
      }
    }
    this.#ready.add(topic);
  }
}
