/** Durable pull consumers: one per (topic, group). */
import {
  AckPolicy,
  type ConsumerConfig,
  type ConsumerInfo,
  DeliverPolicy,
  type JetStreamManager,
  ReplayPolicy,
} from '@nats-io/jetstream';
import { TransportError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { ApiCodes, apiErrorCode, wrapApiError } from './errors.ts';

const NANOS_PER_MS = 1_000_000;

/**
 * Listings of one stream's consumers shared by callers that ask at about the
 * same time. Each caller gets a listing that was requested after its call (so
 * it sees every consumer created before it asked, as its own call would):
 * while one listing is in flight, everyone who asks meanwhile shares the next
 * one, sent when it returns. nats-server 2.9 works out every listed consumer's
 * pending count by reading the stream, so 17 lanes of a topic each listing on
 * their own at start-up (68 listings for 4 topics) took up to 400 ms apiece
 * while the lanes waited.
 */
export class ConsumerListing {
  readonly #jsm: JetStreamManager;
  readonly #stream: string;
  #running: Promise<ConsumerInfo[]> | undefined;
  #next: Promise<ConsumerInfo[]> | undefined;

  constructor(jsm: JetStreamManager, stream: string) {
    this.#jsm = jsm;
    this.#stream = stream;
  }

  /** Every consumer of the stream, listed after this call. */
  list(): Promise<ConsumerInfo[]> {
    if (this.#next !== undefined) return this.#next;
    const running = this.#running;
    if (running === undefined) return this.#send();
    const next = running
      .catch(() => undefined)
      .then(() => {
        this.#next = undefined;
        return this.#send();
      });
    this.#next = next;
    return next;
  }

  #send(): Promise<ConsumerInfo[]> {
    const sent = listConsumers(this.#jsm, this.#stream).finally(() => {
      if (this.#running === sent) this.#running = undefined;
    });
    this.#running = sent;
    return sent;
  }
}

/**
 * Every consumer of `stream`. Just after a restart nats-server 2.9 can list a
 * consumer it has not loaded yet as null; deciding on a list with a hole in it
 * could take a group for new (and start it at 'latest') or start a lane from
 * an older generation's floor, so an incomplete list is a TransportError
 * (retryable) instead.
 */
export async function listConsumers(jsm: JetStreamManager, stream: string): Promise<ConsumerInfo[]> {
  const all: ConsumerInfo[] = [];
  for await (const info of jsm.consumers.list(stream)) {
    if (info === null) {
      throw new TransportError(
        `The consumer list of stream ${stream} is incomplete: the server is still loading its consumers (after a restart); try again`,
      );
    }
    all.push(info);
  }
  return all;
}

export interface ConsumerSpec {
  readonly stream: string;
  readonly durable: string;
  readonly ackWaitMs: number;
  readonly maxAckPending: number;
  readonly maxWaiting: number;
  readonly ackPolicy: 'all' | 'explicit';
  /** Only this subject of the stream (a partition); whole stream when absent. */
  readonly filterSubject?: string;
}

/** AckWait stays above the pool's handler timeout, with a margin for the ack to travel. */
export function ackWaitFor(configuredMs: number, handlerTimeoutMs: number): number {
  const margin = Math.max(1_000, Math.ceil(handlerTimeoutMs * 0.2));
  return Math.max(configuredMs, handlerTimeoutMs + margin);
}

/** A durable pull consumer's configuration, starting at `startSequence` (from the stream's start when ≤ 1 or absent). */
export function configFor(spec: ConsumerSpec, startSequence: number | undefined): Partial<ConsumerConfig> {
  const start =
    startSequence !== undefined && startSequence > 1
      ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: startSequence }
      : { deliver_policy: DeliverPolicy.All };
  return {
    durable_name: spec.durable,
    ack_policy: spec.ackPolicy === 'all' ? AckPolicy.All : AckPolicy.Explicit,
    ack_wait: spec.ackWaitMs * NANOS_PER_MS,
    max_ack_pending: spec.maxAckPending,
    max_waiting: spec.maxWaiting,
    max_deliver: -1,
    replay_policy: ReplayPolicy.Instant,
    ...(spec.filterSubject === undefined ? {} : { filter_subject: spec.filterSubject }),
    ...start,
  };
}

/** The consumer's info, or undefined when it (or its stream) does not exist. */
export async function consumerInfo(
  jsm: JetStreamManager,
  spec: Pick<ConsumerSpec, 'stream' | 'durable'>,
): Promise<ConsumerInfo | undefined> {
  try {
    return await jsm.consumers.info(spec.stream, spec.durable);
  } catch (error) {
    const code = apiErrorCode(error);
    if (code === ApiCodes.consumerNotFound || code === ApiCodes.streamNotFound) return undefined;
    throw wrapApiError(`Failed to read consumer ${spec.durable} on stream ${spec.stream}`, error);
  }
}

/**
 * Returns the durable consumer, creating it when missing (from `startSequence`
 * when given, else from the start of the stream). An existing consumer is used
 * as is, except that a too short AckWait is raised. `listed` is what a fresh
 * listing of the stream said about it, when the caller has one.
 */
export async function ensureConsumer(
  jsm: JetStreamManager,
  spec: ConsumerSpec,
  logger: Logger,
  startSequence?: number,
  listed?: ConsumerInfo | null,
): Promise<ConsumerInfo> {
  // `listed`: what a listing sent after the caller decided on the name said (null: not
  // there), which spares the info request that would only report it missing.
  let info = listed === undefined ? await consumerInfo(jsm, spec) : (listed ?? undefined);
  if (info === undefined) {
    try {
      info = await jsm.consumers.add(spec.stream, configFor(spec, startSequence));
      logger.info(
        { stream: spec.stream, durable: spec.durable, startSequence: startSequence ?? 1 },
        'nats: created durable consumer',
      );
    } catch (error) {
      // Another member of the group may have created it meanwhile.
      info = await consumerInfo(jsm, spec);
      if (info === undefined) {
        throw wrapApiError(`Failed to create consumer ${spec.durable} on stream ${spec.stream}`, error);
      }
    }
  }
  const config = info.config;
  if (config.deliver_subject) {
    throw new TransportError(
      `Consumer ${spec.durable} on stream ${spec.stream} is push-based (deliver_subject ${config.deliver_subject}); this transport needs a pull consumer`,
      { retryable: false },
    );
  }
  const want = spec.ackPolicy === 'all' ? AckPolicy.All : AckPolicy.Explicit;
  if (
    config.ack_policy !== want &&
    config.ack_policy !== AckPolicy.All &&
    config.ack_policy !== AckPolicy.Explicit
  ) {
    logger.warn(
      { stream: spec.stream, durable: spec.durable, ackPolicy: config.ack_policy },
      `nats: consumer ${spec.durable} has ack policy ${config.ack_policy}; expected ${want}; using it as is`,
    );
  } else if (config.ack_policy !== want) {
    // The ack policy of an existing durable cannot change: the subscription follows it.
    logger.info(
      { stream: spec.stream, durable: spec.durable, ackPolicy: config.ack_policy },
      `nats: consumer ${spec.durable} exists with ack policy ${config.ack_policy}; using it`,
    );
  }
  const wantAckWait = spec.ackWaitMs * NANOS_PER_MS;
  if ((config.ack_wait ?? 0) < wantAckWait) {
    try {
      info = await jsm.consumers.update(spec.stream, spec.durable, { ack_wait: wantAckWait });
    } catch (error) {
      logger.warn(
        { err: error, stream: spec.stream, durable: spec.durable },
        `nats: consumer ${spec.durable} has AckWait ${(config.ack_wait ?? 0) / NANOS_PER_MS} ms < ${spec.ackWaitMs} ms and could not be updated; long handlers may be redelivered`,
      );
    }
  }
  return info;
}

/** The ack mode a subscription must use for this consumer. */
export function ackModeOf(info: ConsumerInfo): 'all' | 'explicit' {
  return info.config.ack_policy === AckPolicy.All ? 'all' : 'explicit';
}
