/**
 * A stream per topic: envelope topics on file storage, raw topics in memory.
 * Dead-letter and parked topics (`*.DLQ`, `*.PARKED`) are always created as
 * envelope topics (file storage), whoever touches them first: a raw
 * subscription to a dead-letter topic before its first dead letter must not
 * leave the dead letters in memory, lost on a server restart.
 * Existing streams are used as they are (a storage mismatch is warned about);
 * results are cached per topic.
 */
import {
  DiscardPolicy,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
  type StreamInfo,
} from '@nats-io/jetstream';
import { InvalidArgumentError, TransportError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import type { MessageKind } from '../../core/transport.ts';
import { pause } from '../../core/waiting.ts';
import { ApiCodes, apiErrorCode, wrapApiError } from './errors.ts';
import { streamNameFor, validateTopic } from './names.ts';
import type { ResolvedNatsOptions } from './options.ts';
import {
  partitionDescription,
  partitionWildcard,
  recordedPartitions,
  validatePartitionToken,
} from './partitions.ts';

/** Topics whose messages exist nowhere else: always on file storage. */
export function mustBeDurable(topic: string): boolean {
  return topic.endsWith('.DLQ') || topic.endsWith('.PARKED');
}

export interface StreamHandle {
  readonly topic: string;
  readonly name: string;
  readonly kind: MessageKind;
  /** The stream's creation time: a different value later means it was deleted and recreated. */
  readonly created: string;
  /**
   * Partitions recorded with the stream; 0 for a stream without partition
   * subjects (raw topics, streams of older versions or of other publishers).
   */
  readonly partitions: number;
}

const NANOS_PER_MS = 1_000_000;
/** Pause before recreating a stream that a publish found missing (see repair()). */
const REPAIR_DELAY_MS = 1_000;

export class StreamRegistry {
  readonly #jsm: JetStreamManager;
  readonly #options: ResolvedNatsOptions;
  readonly #logger: Logger;
  readonly #cache = new Map<string, Promise<StreamHandle>>();
  /** Settled handles, for the synchronous publish path. */
  readonly #resolved = new Map<string, StreamHandle>();
  /** Aborted by stop(): repairs waiting for their pause end, none start. */
  readonly #stopping = new AbortController();
  /** The running repair per topic (at most one each). */
  readonly #repairs = new Map<string, Promise<void>>();

  constructor(jsm: JetStreamManager, options: ResolvedNatsOptions, logger: Logger) {
    this.#jsm = jsm;
    this.#options = options;
    this.#logger = logger;
  }

  nameFor(topic: string): string {
    return streamNameFor(this.#options.streamPrefix, topic);
  }

  /** The handle of a topic ensured before, synchronously. */
  resolved(topic: string): StreamHandle | undefined {
    return this.#resolved.get(topic);
  }

  /** Creates (or adopts) the topic's stream once; later calls share the result. */
  ensure(topic: string, kind: MessageKind): Promise<StreamHandle> {
    try {
      validateTopic(topic);
      validatePartitionToken(topic);
      if (kind !== 'envelope' && kind !== 'raw') {
        throw new InvalidArgumentError(`Expected \`kind\` to be "envelope" or "raw", got ${String(kind)}`);
      }
    } catch (error) {
      return Promise.reject(error);
    }
    const cached = this.#cache.get(topic);
    if (cached !== undefined) return cached;
    const pending = this.#ensure(topic, kind);
    this.#cache.set(topic, pending);
    pending.then(
      (handle) => {
        if (this.#cache.get(topic) === pending) this.#resolved.set(topic, handle);
      },
      () => {
        if (this.#cache.get(topic) === pending) this.#cache.delete(topic);
      },
    );
    return pending;
  }

  /** Forgets the cached stream (it was deleted) and ensures it again. */
  recreate(topic: string, kind: MessageKind): Promise<StreamHandle> {
    this.#cache.delete(topic);
    this.#resolved.delete(topic);
    return this.ensure(topic, kind);
  }

  /**
   * A publish to `topic` found no stream (503). If we ensured that topic before
   * and its stream is really gone (a memory stream does not survive a server
   * restart; or someone deleted it), recreate it so the publisher's resends
   * succeed. During a cluster failover the stream still exists: nothing happens.
   * At most one repair per topic runs at a time; it starts after a pause
   * because nats-server 2.9 answers before it finished deleting files.
   * Resolves when the repair is over (done, not needed, failed or stopped).
   */
  repair(topic: string): Promise<void> {
    const cached = this.#cache.get(topic);
    const stopping = this.#stopping.signal;
    if (cached === undefined || stopping.aborted) return Promise.resolve();
    const current = this.#repairs.get(topic);
    if (current !== undefined) return current;
    const running = (async () => {
      try {
        const handle = await cached;
        await pause(REPAIR_DELAY_MS, stopping);
        if (stopping.aborted || (await this.info(handle.name)) !== undefined) return;
        this.#logger.warn(
          { stream: handle.name, topic },
          `nats: stream ${handle.name} is gone (memory stream after a server restart, or deleted); recreating it`,
        );
        await this.recreate(topic, handle.kind);
      } catch (error) {
        if (!stopping.aborted)
          this.#logger.warn({ err: error, topic }, `nats: could not repair the stream of ${topic}`);
      } finally {
        this.#repairs.delete(topic);
      }
    })();
    // `running` never rejects: every failure is caught (and logged) above.
    this.#repairs.set(topic, running);
    return running;
  }

  /**
   * No repair starts after this, one waiting for its pause ends there, and the
   * promise resolves once none runs (the transport is closing its connection next).
   */
  stop(): Promise<void> {
    this.#stopping.abort();
    return Promise.all(this.#repairs.values()).then(() => undefined);
  }

  /** Fresh info, or undefined when the stream does not exist. */
  async info(name: string): Promise<StreamInfo | undefined> {
    try {
      return await this.#jsm.streams.info(name);
    } catch (error) {
      if (apiErrorCode(error) === ApiCodes.streamNotFound) return undefined;
      throw wrapApiError(`Failed to read stream ${name}`, error);
    }
  }

  async #ensure(topic: string, kind: MessageKind): Promise<StreamHandle> {
    const name = this.nameFor(topic);
    const durable = kind === 'envelope' || mustBeDurable(topic);
    const storage = durable ? StorageType.File : StorageType.Memory;
    let info = await this.info(name);
    if (info === undefined) {
      const partitioned = durable;
      const config: Partial<StreamConfig> & { name: string } = {
        name,
        subjects: partitioned ? [topic, partitionWildcard(topic)] : [topic],
        ...(partitioned ? { description: partitionDescription(this.#options.partitions) } : {}),
        storage,
        retention: RetentionPolicy.Limits,
        discard: DiscardPolicy.Old,
        max_bytes: this.#options.stream.maxBytes,
        max_msgs: this.#options.stream.maxMsgs,
        num_replicas: this.#options.stream.replicas,
        duplicate_window: this.#options.duplicateWindowMs * NANOS_PER_MS,
      };
      try {
        info = await this.#jsm.streams.add(config);
        this.#logger.info({ stream: name, topic, storage }, 'nats: created stream');
      } catch (error) {
        const code = apiErrorCode(error);
        if (code === ApiCodes.subjectsOverlap) {
          throw new TransportError(
            `Cannot create stream ${name}: subject "${topic}" overlaps the subjects of another stream`,
            { cause: error, retryable: false },
          );
        }
        if (code !== ApiCodes.streamNameInUse) throw wrapApiError(`Failed to create stream ${name}`, error);
        // Someone else created it meanwhile: adopt theirs.
        info = await this.info(name);
        if (info === undefined) throw wrapApiError(`Failed to create stream ${name}`, error);
      }
    }
    if (!info.config.subjects?.includes(topic)) {
      throw new TransportError(
        `Stream ${name} exists but does not capture subject "${topic}" (its subjects: ${
          info.config.subjects?.join(', ') ?? 'none'
        }); another topic probably sanitizes to the same stream name`,
        { retryable: false },
      );
    }
    if (info.config.storage !== storage) {
      this.#logger.warn(
        { stream: name, topic, expected: storage, actual: info.config.storage },
        `nats: stream ${name} uses ${info.config.storage} storage, ${kind} topics normally use ${storage}; using it as is`,
      );
    }
    const subjects = info.config.subjects ?? [];
    const partitions = durable ? recordedPartitions(info.config.description, subjects, topic) : 0;
    if (kind === 'envelope' && partitions === 0) {
      this.#logger.warn(
        { stream: name, topic },
        `nats: stream ${name} has no partition subjects (created by an older version or another publisher): every consumer group of it runs with ONE active member at a time (the others stand by), which keeps each aggregate in order; see the NATS transport README to migrate`,
      );
    } else if (partitions !== 0 && partitions !== this.#options.partitions) {
      this.#logger.warn(
        { stream: name, topic, recorded: partitions, configured: this.#options.partitions },
        `nats: stream ${name} was created with ${partitions} partitions; using them (nats.partitions ${this.#options.partitions} applies only to new streams: changing the count would reorder aggregates)`,
      );
    }
    return { topic, name, kind, created: info.created, partitions };
  }
}
