/** The in-memory transport: the embedded default, same contract as the brokers. */
import { randomUUID } from 'node:crypto';
import { encodedSize } from '../../core/envelope.ts';
import { type EventBusError, PayloadTooLargeError } from '../../core/errors.ts';
import type {
  FlowControl,
  OutboundMessage,
  ParkingLot,
  PublishCallback,
  PublishOutcome,
  Transport,
  TransportContext,
  TransportFactory,
  TransportFeatures,
  TransportHealth,
  TransportSubscribeOptions,
  TransportSubscription,
} from '../../core/transport.ts';
import { defaultMemoryBroker, type MemoryBroker, type TopicLog } from './broker.ts';
import { type MemoryTransportOptions, type ResolvedMemoryOptions, resolveMemoryOptions } from './options.ts';
import { memoryParkingLot } from './parking-lot.ts';
import { MemoryPartitionedSubscription } from './partitioned-subscription.ts';
import { PublishChaos } from './publish-chaos.ts';
import { SharedCursorSubscription } from './shared-subscription.ts';

/**
 * How long sends may run without a turn of the event loop. A publisher that
 * awaits each result in a loop gets its results a microtask away, so without
 * this no timer ran until the loop ended (the bench's e2e 100k row on memory
 * lost every partition lease it held: 68 "the lease lapsed" warnings).
 */
const TURN_EVERY_MS = 20;

class MemoryTransport implements Transport {
  readonly kind = 'memory' as const;
  readonly features: TransportFeatures;
  readonly maxPayloadBytes: number;
  readonly #broker: MemoryBroker;
  readonly #options: ResolvedMemoryOptions;
  readonly #ctx: TransportContext;
  readonly #warnedPartitions = new Set<string>();
  readonly #members = new Set<SharedCursorSubscription | MemoryPartitionedSubscription>();
  /** Publish-side faults (`memory.chaos.publish`); undefined without them. */
  readonly #publishChaos: PublishChaos | undefined;
  #done: Array<[PublishCallback, PublishOutcome]> = [];
  #flushScheduled = false;
  /**
   * Sends waiting for the event loop's next turn (setImmediate), in order;
   * undefined when none wait. The whole send waits, not only its result: a
   * result delayed behind the delivery let an event be handled before its
   * publisher heard it was stored (the demo's counts came out one short).
   */
  #waiting: Array<[OutboundMessage, PublishCallback]> | undefined;
  #lastTurn = performance.now();
  #closed = false;

  constructor(broker: MemoryBroker, options: ResolvedMemoryOptions, ctx: TransportContext) {
    this.#broker = broker;
    this.#ctx = ctx;
    this.#options = options;
    this.maxPayloadBytes = options.maxPayloadBytes;
    this.features = {
      persistent: true,
      consumerGroups: true,
      newSubscriberReceivesOldMessages: true,
      brokerDeduplication: true,
      duplicateWindowMs: broker.duplicateWindowMs,
      // Envelope subscriptions: raw messages are at-most-once (see shared-subscription.ts).
      nakRedelivers: true,
      nakDelay: true,
    };
    const publish = options.chaos?.publish;
    this.#publishChaos = publish === undefined ? undefined : new PublishChaos(publish);
  }

  async parkingLot(topic: string, group: string): Promise<ParkingLot> {
    return memoryParkingLot(this.#broker, topic, group);
  }

  async ensureTopic(topic: string): Promise<void> {
    this.#topic(topic);
  }

  /** The topic's log; its partition count was fixed by whichever bus used it first. */
  #topic(name: string): TopicLog {
    const log = this.#broker.topic(name, this.#options.partitions);
    if (log.partitions !== this.#options.partitions && !this.#warnedPartitions.has(name)) {
      this.#warnedPartitions.add(name);
      // Changing P would move aggregates between partitions and reorder them: the recorded count wins.
      this.#ctx.logger.warn(
        { topic: name, recorded: log.partitions, configured: this.#options.partitions },
        `memory: topic ${name} has ${log.partitions} partitions (fixed when it was first used); memory.partitions=${this.#options.partitions} does not apply to it`,
      );
    }
    return log;
  }

  send(message: OutboundMessage, done: PublishCallback): void {
    if (this.#waiting !== undefined) {
      this.#waiting.push([message, done]); // behind the ones already waiting: order holds
      return;
    }
    if (performance.now() - this.#lastTurn >= TURN_EVERY_MS) {
      this.#waiting = [[message, done]];
      setImmediate(() => this.#sendWaiting());
      return;
    }
    this.#store(message, done);
  }

  #sendWaiting(): void {
    const waiting = this.#waiting ?? [];
    this.#waiting = undefined;
    this.#lastTurn = performance.now();
    for (const [message, done] of waiting) this.#store(message, done);
  }

  #store(message: OutboundMessage, done: PublishCallback): void {
    let outcome: PublishOutcome;
    const size = encodedSize(message.data, message.headers, message.msgId);
    const fault = size > this.maxPayloadBytes ? undefined : this.#publishChaos?.decide(message);
    if (size > this.maxPayloadBytes) {
      outcome = { ok: false, error: new PayloadTooLargeError(size, this.maxPayloadBytes) };
    } else if (fault !== undefined && !fault.store) {
      outcome = { ok: false, error: fault.error as EventBusError };
    } else {
      const { seq, duplicate } = this.#topic(message.topic).append(
        { data: message.data, headers: message.headers, key: message.key },
        message.msgId,
      );
      outcome =
        fault?.error !== undefined
          ? { ok: false, error: fault.error }
          : duplicate
            ? { ok: true, sequence: seq, duplicate: true }
            : { ok: true, sequence: seq };
    }
    if (fault !== undefined) {
      (this.#publishChaos as PublishChaos).report(fault, message, outcome, done);
      return;
    }
    // Results are reported asynchronously (never inside send), batched per microtask.
    this.#done.push([done, outcome]);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(() => this.#flushDone());
    }
  }

  #flushDone(): void {
    this.#flushScheduled = false;
    const batch = this.#done;
    this.#done = [];
    for (const [done, outcome] of batch) done(outcome);
  }

  async subscribe(options: TransportSubscribeOptions, flow: FlowControl): Promise<TransportSubscription> {
    const topic = this.#topic(options.topic);
    const group = topic.group(options.group, options.startFrom);
    // Envelopes are ordered per aggregate: the group splits partitions like on NATS.
    // Raw messages promise no order: members share one cursor.
    const member =
      options.kind === 'envelope'
        ? new MemoryPartitionedSubscription({
            topic,
            group,
            flow,
            options,
            settings: this.#options,
            memberId: `${this.#ctx.clientId}.${randomUUID().slice(0, 8)}`,
            logger: this.#ctx.logger,
            metrics: this.#ctx.groupMetrics?.(options.topic, options.group),
          })
        : new SharedCursorSubscription(topic, group, flow, options, this.#options.chaos);
    this.#members.add(member);
    await member.start();
    return {
      stop: () => member.stop(),
      close: async () => {
        await member.close();
        this.#members.delete(member);
      },
    };
  }

  health(): TransportHealth {
    const subscriptions = [...this.#members].flatMap((m) =>
      m instanceof MemoryPartitionedSubscription ? [m.stats()] : [],
    );
    return { connected: !this.#closed, details: { topics: this.#broker.topics().length, subscriptions } };
  }

  async close(deadline: AbortSignal): Promise<void> {
    // Sends waiting for a turn of the event loop were accepted: store them now.
    if (this.#waiting !== undefined) this.#sendWaiting();
    // Held or delayed acks (publish chaos) are waited for like a broker's, up to the deadline.
    const chaos = this.#publishChaos;
    if (chaos !== undefined) {
      await chaos.drain(deadline);
      chaos.endPending();
    }
    this.#closed = true;
    for (const m of this.#members) await m.close();
    this.#members.clear();
  }
}

export async function createMemoryTransport(
  options: MemoryTransportOptions | undefined,
  ctx: TransportContext,
): Promise<Transport> {
  const resolved = resolveMemoryOptions(options);
  return new MemoryTransport(options?.broker ?? defaultMemoryBroker(), resolved, ctx);
}

/** `createEventBus({ transport: memory({ broker }) })`: the in-process transport. */
export function memory(options?: MemoryTransportOptions): TransportFactory {
  return { kind: 'memory', create: (ctx) => createMemoryTransport(options, ctx) };
}
