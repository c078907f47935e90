/**
 * One subscription: a transport intake feeding one keyed actor pool.
 * Closing follows the single shutdown path (README.md, API overview: `close`): stop intake → let the
 * actors finish within the deadline → nak whatever did not finish → release
 * the broker consumer.
 */

import { closeDeadline } from '../core/close-deadline.ts';
import {
  BusClosedError,
  DecodeError,
  type EventBusError,
  InvalidArgumentError,
  TimeoutError,
  TransportError,
  toError,
} from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type {
  FlowControl,
  InboundMessage,
  ParkedEntry,
  ParkingLot,
  Transport,
  TransportSubscription,
} from '../core/transport.ts';
import type { CloseOptions, Subscription } from '../core/types.ts';
import type { ActorPool, PoolTask, ResolvedPoolOptions } from '../dispatch/types.ts';
import { ParkedSync } from './parked-sync.ts';
import { replayMessages } from './replay.ts';

export interface SubscriptionParts {
  readonly transport: Transport;
  readonly pool: ActorPool;
  readonly options: ResolvedPoolOptions;
  readonly makeTask: (m: InboundMessage) => PoolTask;
  readonly logger: Logger;
  readonly defaultCloseTimeoutMs: number;
  readonly onClosed: (s: BusSubscription) => void;
  /** The park policy's state with the broker (when the transport has one). */
  readonly parkingLot?: ParkingLot | undefined;
}

/**
 * A task for any delivered message: if building it throws (it reads the
 * message, which may be malformed in ways decode did not foresee), the task
 * fails non-retryably with that reason, so the message is dead-lettered
 * instead of staying in flight for ever (with ackPolicy 'all' that stalled the
 * whole group).
 */
function taskFor(makeTask: (m: InboundMessage) => PoolTask, message: InboundMessage): PoolTask {
  try {
    return makeTask(message);
  } catch (cause) {
    const error = new DecodeError(`Expected a message this client can read, got: ${toError(cause).message}`, {
      cause,
    });
    return { key: message.key, message, run: () => Promise.reject(error) };
  }
}

/** How long a transport error counts for health() when nothing shows recovery. */
export const transportErrorCurrentMs = 30_000;

/** How long resume() waits for the member that owns the aggregate, when that is another member. */
export const defaultResumeTimeoutMs = 30_000;

/** Deliveries of one message from which health() reports a redelivery loop. */
export const redeliveryLoopCount = 10;

export class BusSubscription implements Subscription {
  readonly topic: string;
  readonly group: string;
  readonly #parts: SubscriptionParts;
  #transportSub: TransportSubscription | undefined;
  #closing: Promise<void> | undefined;
  #resolveClosed!: () => void;
  readonly closed: Promise<void>;
  #lastError: EventBusError | undefined;
  /** performance.now() of the last transport error report. */
  #lastErrorAt = 0;
  /** The last delivery that had been delivered many times before (a redelivery loop), and when. */
  #redelivered: { readonly count: number; readonly at: number } | undefined;
  /** The park policy's state kept in step with the broker (when the transport keeps it). */
  readonly #parked: ParkedSync | undefined;

  constructor(parts: SubscriptionParts) {
    this.#parts = parts;
    const lot = parts.parkingLot;
    this.#parked =
      lot === undefined
        ? undefined
        : new ParkedSync({
            pool: parts.pool,
            lot,
            topic: parts.options.topic,
            group: parts.options.group,
            logger: parts.logger,
            owns: (key) => this.#owns(key),
            resume: (key) => this.#resumeHere(key),
          });
    this.topic = parts.options.topic;
    this.group = parts.options.group;
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
  }

  get pool(): ActorPool {
    return this.#parts.pool;
  }

  /**
   * The transport's latest problem while it is current: until the transport
   * delivers again (it recovered) or, on an idle topic, for
   * {@link transportErrorCurrentMs} after the report.
   */
  get lastError(): EventBusError | undefined {
    if (this.#lastError !== undefined && performance.now() - this.#lastErrorAt > transportErrorCurrentMs) {
      this.#lastError = undefined;
    }
    return this.#lastError;
  }

  /** A message delivered {@link redeliveryLoopCount} times or more in the last {@link transportErrorCurrentMs}: something loops. */
  get redeliveryLoop(): string | undefined {
    const seen = this.#redelivered;
    if (seen === undefined) return undefined;
    if (performance.now() - seen.at > transportErrorCurrentMs) {
      this.#redelivered = undefined;
      return undefined;
    }
    return `a message was delivered ${seen.count} times (redelivery loop?)`;
  }

  async start(): Promise<void> {
    const { transport, pool, options, makeTask, logger } = this.#parts;
    const parked = this.#parked;
    await parked?.start();
    const flow: FlowControl = {
      freeCapacity: () => pool.freeCapacity(),
      waitForCapacity: (signal) => pool.waitForCapacity(signal),
      deliver: (message) => {
        this.#lastError = undefined; // delivering again: whatever was wrong is over
        if (message.deliveryCount >= redeliveryLoopCount) {
          this.#redelivered = { count: message.deliveryCount, at: performance.now() };
        }
        pool.submit(taskFor(makeTask, message));
      },
      reportError: (error) => {
        this.#lastError = error;
        this.#lastErrorAt = performance.now();
        logger.warn({ err: error, topic: this.topic, group: this.group }, 'transport reported a problem');
      },
      ...(parked === undefined ? {} : { beforeLane: () => parked.refresh() }),
    };
    try {
      this.#transportSub = await transport.subscribe(
        {
          topic: options.topic,
          group: options.group,
          kind: options.kind,
          handlerTimeoutMs: options.handlerTimeoutMs,
          startFrom: options.startFrom,
        },
        flow,
      );
    } catch (error) {
      await parked?.stop();
      throw error;
    }
  }

  #owns(key: string): boolean {
    const sub = this.#transportSub;
    return sub?.owns === undefined ? true : sub.owns(key);
  }

  /**
   * Resumes a parked aggregate. Only the member that owns the aggregate's
   * lane can replay in order (it holds the newer events back meanwhile), so
   * on another member the request goes through the parking lot to the owner.
   */
  async resume(
    aggregateId: string,
    options: { readonly timeoutMs?: number } = {},
  ): Promise<{ readonly resumed: boolean; readonly replayed: number }> {
    if (typeof aggregateId !== 'string' || aggregateId === '') {
      throw new InvalidArgumentError(
        `Expected an aggregateId (non-empty string), got ${String(aggregateId)}`,
      );
    }
    const timeoutMs = options.timeoutMs ?? defaultResumeTimeoutMs;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new InvalidArgumentError(
        `Expected \`timeoutMs\` to be a positive number, got ${String(timeoutMs)}`,
      );
    }
    if (this.#closing) throw new BusClosedError('The subscription is closed or closing');
    const lot = this.#parts.parkingLot;
    if (this.#owns(aggregateId) || lot?.requestResume === undefined) return this.#resumeHere(aggregateId);
    return this.#resumeElsewhere(lot.requestResume.bind(lot), aggregateId, timeoutMs);
  }

  async #resumeElsewhere(
    request: NonNullable<ParkingLot['requestResume']>,
    aggregateId: string,
    timeoutMs: number,
  ): Promise<{ readonly resumed: boolean; readonly replayed: number }> {
    let answer: Awaited<ReturnType<typeof request>>;
    try {
      answer = await request(aggregateId, timeoutMs);
    } catch (error) {
      throw new TransportError(`Failed to ask for aggregate "${aggregateId}" to be resumed`, {
        cause: error,
      });
    }
    if (answer === undefined) {
      throw new TimeoutError(
        `Expected the member of group "${this.group}" that owns aggregate "${aggregateId}" to pick up the resume within ${timeoutMs} ms; none did (no member owns its partition now?)`,
      );
    }
    if (answer.state !== 'done') {
      throw new TimeoutError(
        `Member ${answer.member} is resuming aggregate "${aggregateId}", but its replay did not finish within ${timeoutMs} ms (it goes on there)`,
      );
    }
    if (answer.error !== undefined) {
      throw new TransportError(`Member ${answer.member} failed to resume "${aggregateId}": ${answer.error}`);
    }
    return { resumed: answer.resumed ?? false, replayed: answer.replayed ?? 0 };
  }

  #resumeHere(aggregateId: string): Promise<{ readonly resumed: boolean; readonly replayed: number }> {
    if (this.#closing) return Promise.reject(new BusClosedError('The subscription is closed or closing'));
    const run = () => this.#replay(aggregateId);
    return this.#parked === undefined ? run() : this.#parked.resuming(aggregateId, run);
  }

  async #replay(aggregateId: string): Promise<{ readonly resumed: boolean; readonly replayed: number }> {
    const { pool, makeTask, parkingLot, logger } = this.#parts;
    if (!(await pool.beginResume(aggregateId))) return { resumed: false, replayed: 0 };
    let entries: ParkedEntry[];
    try {
      entries = parkingLot === undefined ? [] : await parkingLot.read(aggregateId);
    } catch (error) {
      pool.abortResume(aggregateId);
      throw new TransportError(`Failed to read the parked events of "${aggregateId}"`, { cause: error });
    }
    const replay = replayMessages(this.topic, entries, parkingLot, logger);
    pool.finishResume(
      aggregateId,
      replay.messages.map((message) => taskFor(makeTask, message)),
    );
    logger.info(
      { topic: this.topic, group: this.group, key: aggregateId, replayed: entries.length },
      'Aggregate resumed: replaying its parked events',
    );
    await replay.settled;
    // Parked again meanwhile (a replayed event failed): it stays parked with the broker.
    if (parkingLot !== undefined && !pool.parkedKeys().includes(aggregateId)) {
      await parkingLot.unpark(aggregateId);
    }
    return { resumed: true, replayed: entries.length };
  }

  close(options?: CloseOptions): Promise<void> {
    if (this.#closing) return this.#closing;
    let deadline: AbortSignal;
    try {
      deadline = closeDeadline(options, this.#parts.defaultCloseTimeoutMs);
    } catch (error) {
      return Promise.reject(error);
    }
    this.#closing = this.#close(deadline);
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(deadline: AbortSignal): Promise<void> {
    const { pool, logger, transport } = this.#parts;
    try {
      await this.#transportSub?.stop();
      const result = await pool.drain(deadline);
      if (result.abandoned > 0) {
        logger.warn(
          { topic: this.topic, group: this.group, abandoned: result.abandoned },
          // Read from the transport's features: a Kafka nak is read again only after a rebalance or restart.
          transport.features.nakRedelivers
            ? 'close deadline reached: unfinished messages were released for redelivery'
            : 'close deadline reached: unfinished messages were released; the group reads them again after its next rebalance or restart',
        );
      }
      await this.#transportSub?.close();
    } finally {
      await this.#parked?.stop().catch((error: unknown) => {
        logger.warn(
          { topic: this.topic, group: this.group, err: toError(error) },
          'Stopping the parked-state watch failed',
        );
      });
      this.#parts.onClosed(this);
      this.#resolveClosed();
    }
  }
}
