/**
 * One fetch loop per subscription, on the low-level pull API.
 *
 * Each pull is one request to `$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>`
 * with a short `expires`, asking for min(fetchBatch, free capacity − what
 * earlier pulls may still deliver) messages. The next pull starts when this
 * one ended (batch filled, 408/404 status, reconnect, a timeout) or, once
 * messages are flowing, shortly before it expires (pull-ledger.ts keeps the
 * open pulls and what they still owe). With no free capacity the loop waits,
 * no pull is outstanding and the broker keeps the messages: backpressure
 * reaches the broker.
 *
 * Messages arrive on one inbox subscription and are handed to flow.deliver()
 * in arrival (= stream) order, synchronously, without per-message promises.
 *
 * Failure handling: two pulls in a row that get no answer (nats-server 2.9
 * does not answer pulls for a consumer that does not exist; one silent pull is
 * 2.9.10 dropping an expired pull, and the loop just pulls again), a 409
 * "Consumer Deleted" or a 503 leads to a check (pull-recovery.ts): consumer
 * still there → pull again; consumer gone → recreate it from the first
 * unsettled sequence; stream gone → recreate the stream and start over. Each
 * such event is logged and reported through flow.reportError.
 *
 * Why this file stays over 400 lines (~510): what is left is one state
 * machine: the fetch loop, the inbox handler, the status handler, the consumer
 * check and the stop path share the open pulls, the ack tracker and the abort
 * signal. The parts that stand alone already live apart: the request and
 * status wire format (pull-wire.ts), the open pulls and what they owe
 * (pull-ledger.ts) and the fence that settles them (pull-fence.ts), how much
 * each pull asks for (pull-sizing.ts), consumer and stream recovery
 * (pull-recovery.ts), acks and redelivery (ack-tracker.ts).
 */

import type { JetStreamManager } from '@nats-io/jetstream';
import { createInbox, type Msg, type Subscription } from '@nats-io/transport-node';
import { Backoff } from '../../core/backoff.ts';
import { type EventBusError, isEventBusError, TransportError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import type { DeliveryLane, FlowControl, TransportSubscription } from '../../core/transport.ts';
import { pause } from '../../core/waiting.ts';
import { AckTracker, type NatsInboundMessage } from './ack-tracker.ts';
import type { NatsConnectionManager } from './connection.ts';
import type { ConsumerSpec } from './consumer.ts';
import { wrapApiError } from './errors.ts';
import type { ResolvedNatsOptions } from './options.ts';
import { PullFence } from './pull-fence.ts';
import { PullLedger } from './pull-ledger.ts';
import { type RecoveryTarget, recoverConsumer } from './pull-recovery.ts';
import { PullSizing } from './pull-sizing.ts';
import {
  headersRecord,
  type PullOutcome,
  parseAckSubject,
  pullRequest,
  statusOutcome,
  UNANSWERED,
} from './pull-wire.ts';
import type { SequenceSet } from './sequence-set.ts';
import type { StreamHandle, StreamRegistry } from './streams.ts';

/** Pauses after a refused or failed pull: 100 ms, doubling up to 5 s; reset by the next answered pull. */
const PULL_RETRY = { initialMs: 100, maxMs: 5_000, multiplier: 2, jitter: 0 };

export interface PullSubscriptionDeps {
  readonly conn: NatsConnectionManager;
  readonly jsm: JetStreamManager;
  readonly streams: StreamRegistry;
  readonly options: ResolvedNatsOptions;
  readonly logger: Logger;
}

/**
 * Partitioned intake: the lane every delivered message carries, and what to do
 * when the consumer's delivery sequence shows messages that never reached us
 * (lost with a dead connection): the owner rewinds instead of going on.
 */
export interface LaneIntake {
  readonly lane: DeliveryLane;
  onGap(reason: string): void;
  /** An open pull ended: capacity another lane waits for may be free now. */
  owedChanged(): void;
  /** Sequences this process settled on the partition, shared by its consumer generations. */
  readonly settled: SequenceSet;
}

export interface PullSubscriptionStats {
  readonly topic: string;
  readonly durable: string;
  readonly pulls: number;
  readonly delivered: number;
  readonly recreated: number;
  readonly inFlight: number;
  readonly skippedAcked: number;
  readonly skippedInFlight: number;
  /** How pulls ended: done (batch filled), expired, unanswered, reconnected, ... */
  readonly outcomes?: Readonly<Record<string, number>>;
}

export class NatsPullSubscription implements TransportSubscription {
  readonly #deps: PullSubscriptionDeps;
  readonly #flow: FlowControl;
  readonly #spec: ConsumerSpec;
  readonly #topic: string;
  readonly #nextSubject: string;
  readonly #inboxPrefix: string;
  readonly #sub: Subscription;
  readonly #tracker: AckTracker;
  readonly #abort = new AbortController();
  readonly #aborted: Promise<void>;
  readonly #unlistenReconnect: () => void;
  readonly #meta: [number, number, number] = [0, 0, 0];
  readonly #intake: LaneIntake | undefined;
  /** Last consumer delivery sequence seen (lane mode): the next must follow it. */
  #lastDelivery = 0;
  #gapped = false;
  readonly #expiresNs: number;
  readonly #ledger: PullLedger;
  readonly #recovery: RecoveryTarget;
  #loop: Promise<void> = Promise.resolve();
  /** The fetch loop's pause after a refused or failed pull (set when it starts). */
  #backoff: () => Promise<void> = () => Promise.resolve();
  #stopped = false;
  #stopping: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #pulls = 0;
  readonly #fence: PullFence;
  readonly #sizing: PullSizing;
  /** How pulls ended, by kind (diagnostics, health). */
  readonly outcomes: Record<string, number> = {};
  #delivered = 0;
  #recreated = 0;

  constructor(
    deps: PullSubscriptionDeps,
    stream: StreamHandle,
    spec: ConsumerSpec,
    ackFloor: number,
    ackMode: 'all' | 'explicit',
    flow: FlowControl,
    intake?: LaneIntake,
  ) {
    this.#deps = deps;
    this.#intake = intake;
    this.#sizing = new PullSizing(deps.options.consumer.fetchBatch);
    this.#flow = flow;
    this.#topic = stream.topic;
    this.#spec = spec;
    this.#nextSubject = `$JS.API.CONSUMER.MSG.NEXT.${spec.stream}.${spec.durable}`;
    const { conn, options } = deps;
    this.#expiresNs = options.consumer.fetchMaxWaitMs * 1_000_000;
    this.#fence = new PullFence({
      jsm: deps.jsm,
      logger: deps.logger,
      stream: spec.stream,
      durable: spec.durable,
      topic: stream.topic,
      connected: () => conn.connected,
    });
    this.#ledger = new PullLedger({
      fetchMaxWaitMs: options.consumer.fetchMaxWaitMs,
      connected: () => conn.connected,
      onServerDone: () => {
        this.#intake?.owedChanged();
        this.#maybeReleaseNaks();
      },
      fence: () => this.#fence.request(this.#ledger),
    });
    this.#tracker = new AckTracker(
      (reply, payload) => {
        try {
          conn.nc.publish(reply, payload);
        } catch (error) {
          // Connection closed: the broker redelivers after AckWait.
          deps.logger.debug({ err: error }, 'nats: could not send ack');
        }
      },
      () => conn.supportsTermReason,
      ackMode,
      intake?.settled,
    );
    this.#tracker.setFloor(ackFloor);
    this.#recovery = {
      jsm: deps.jsm,
      streams: deps.streams,
      logger: deps.logger,
      spec,
      topic: stream.topic,
      kind: stream.kind,
      tracker: this.#tracker,
      streamCreated: stream.created,
    };
    const inbox = createInbox(options.connectOptions.inboxPrefix);
    this.#inboxPrefix = `${inbox}.`;
    this.#sub = conn.nc.subscribe(`${inbox}.*`, { callback: (error, msg) => this.#onMessage(error, msg) });
    this.#aborted = new Promise((resolve) =>
      this.#abort.signal.addEventListener('abort', () => resolve(), { once: true }),
    );
    this.#unlistenReconnect = conn.onReconnect(() => {
      // Messages of a pull may have died with the old connection; pulling on
      // would run newer ones first. Lanes rewind to the ack floor instead.
      if (this.#intake !== undefined) this.#gap('the connection was re-established');
      // A pull sent on the old connection died with it: pull again.
      this.#ledger.reconnected();
    });
  }

  start(): void {
    this.#loop = this.#run();
  }

  stats(): PullSubscriptionStats {
    const tracker = this.#tracker.stats();
    return {
      topic: this.#topic,
      durable: this.#spec.durable,
      pulls: this.#pulls,
      delivered: this.#delivered,
      recreated: this.#recreated,
      inFlight: tracker.inFlight,
      skippedAcked: tracker.skippedAcked,
      skippedInFlight: tracker.skippedInFlight,
      outcomes: { ...this.outcomes },
    };
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    const retry = new Backoff(PULL_RETRY);
    const backoff = (): Promise<void> => pause(retry.next(), signal);
    this.#backoff = backoff;
    let silentInARow = 0;
    while (!signal.aborted) {
      if (this.#gapped || (this.#intake !== undefined && !this.#intake.lane.mayStart())) break;
      try {
        const capacity = Math.floor(this.#flow.freeCapacity());
        if (capacity <= 0) {
          await this.#flow.waitForCapacity(signal);
          continue;
        }
        const free = capacity - this.#ledger.owed();
        if (free <= 0) {
          // A pull the server never answered holds the room: check and drop it.
          if (this.#ledger.mayDropUnanswered()) {
            await this.#checkConsumer(UNANSWERED);
            continue;
          }
          // Renewed pulls may still fill what is free: wait until one ends (or a fence
          // settles those that expired).
          this.#ledger.requestFence();
          await this.#ledger.untilOpenChanges(signal);
          continue;
        }
        const batch = this.#sizing.batchFor(free);
        const { outcome, arrived } = await this.#pullOnce(batch);
        this.#sizing.ended(batch, outcome, arrived);
        this.outcomes[outcome.kind] = (this.outcomes[outcome.kind] ?? 0) + 1;
        if (outcome.kind !== 'unanswered') silentInARow = 0;
        switch (outcome.kind) {
          case 'done':
          case 'expired':
          case 'reconnected':
          case 'aborted':
            retry.reset();
            break;
          case 'unanswered':
            // One silent pull is nats-server 2.9.10 dropping an expired pull now and
            // then: pull again at once. Two in a row: check the consumer.
            if (++silentInARow < 2) break;
            await this.#checkConsumer(outcome);
            break;
          case 'missing':
            await this.#checkConsumer(outcome);
            break;
          case 'retry':
            this.#deps.logger.debug(
              { topic: this.#topic, reason: outcome.reason },
              'nats: pull refused; retrying',
            );
            await backoff();
            break;
          case 'error':
            this.#report(
              new TransportError(
                `Pull from ${this.#spec.stream}/${this.#spec.durable} failed: ${outcome.reason}`,
              ),
            );
            await backoff();
            break;
        }
      } catch (error) {
        if (signal.aborted) break;
        this.#report(
          isEventBusError(error)
            ? error
            : wrapApiError(`Fetch loop of ${this.#spec.stream}/${this.#spec.durable}`, error),
        );
        await backoff();
      }
    }
  }

  /**
   * Pulls went unanswered or the broker said the consumer is gone: is it
   * there? Consumer there → pull again (pulls that stayed silent past the
   * check owe nothing); gone → recreate it (pull-recovery.ts).
   */
  async #checkConsumer(outcome: PullOutcome): Promise<void> {
    const signal = this.#abort.signal;
    if (!this.#deps.conn.connected) {
      await this.#deps.conn.untilConnected(signal);
      return;
    }
    const checkedAt = performance.now();
    const recovered = await Promise.race([
      this.#recover(outcome.kind === 'missing' ? outcome.reason : 'no answer to two pulls in a row'),
      this.#aborted.then(() => 'recreated' as const),
    ]);
    if (recovered === 'present' && outcome.kind === 'unanswered') this.#ledger.dropUnanswered(checkedAt);
    // 409/503 while the consumer exists (e.g. no consumer leader during a
    // cluster failover): do not hammer the broker.
    if (recovered === 'present' && outcome.kind === 'missing') await this.#backoff();
  }

  /** Lane mode: stop taking anything from this consumer generation and ask for a rewind. */
  #gap(reason: string): void {
    if (this.#gapped) return;
    this.#gapped = true;
    this.#abort.abort();
    this.#ledger.finishCurrent({ kind: 'aborted' });
    try {
      this.#intake?.onGap(reason);
    } catch (error) {
      this.#deps.logger.error({ err: error, topic: this.#topic }, 'nats: onGap threw');
    }
  }

  /** A delivered message the pool let go unrun (its lane was revoked). */
  forget(message: NatsInboundMessage): void {
    this.#tracker.forget(message);
  }

  /** Messages delivered and not yet settled or let go. */
  get inFlight(): number {
    return this.#tracker.inFlight;
  }

  /** Resolves when nothing is in flight any more, or when `signal` aborts. */
  whenIdle(signal: AbortSignal): Promise<void> {
    return this.#tracker.whenIdle(signal);
  }

  /** One pull: how it ended, and the messages that arrived while it was open. */
  #pullOnce(batch: number): Promise<{ outcome: PullOutcome; arrived: number }> {
    return new Promise((resolve) => {
      const pull = this.#ledger.begin(batch, (outcome) =>
        resolve({ outcome, arrived: this.#ledger.arrivedDuring(pull) }),
      );
      this.#pulls++;
      try {
        this.#deps.conn.nc.publish(this.#nextSubject, pullRequest(batch, this.#expiresNs), {
          reply: this.#inboxPrefix + pull.id,
        });
      } catch (error) {
        this.#ledger.finish(pull, { kind: 'error', reason: (error as Error).message });
      }
    });
  }

  #onMessage(error: Error | null, msg: Msg): void {
    if (error !== null) {
      this.#report(new TransportError(`Pull subscription failed: ${error.message}`, { cause: error }));
      return;
    }
    const reply = msg.reply;
    if (!reply) {
      this.#onStatus(msg);
      return;
    }
    const meta = this.#meta;
    if (!parseAckSubject(reply, meta)) {
      this.#deps.logger.warn({ reply }, 'nats: unexpected message on the pull inbox');
      return;
    }
    if (this.#intake !== undefined && !this.#stopped && !this.#gapped) {
      const expected = this.#lastDelivery + 1;
      if (this.#lastDelivery > 0 && meta[2] !== expected) {
        this.#gap(`consumer delivery sequence jumped from ${this.#lastDelivery} to ${meta[2]}`);
      }
      this.#lastDelivery = meta[2];
    }
    if (this.#gapped) {
      // Neither delivered nor settled: the rewound consumer delivers it again, in order.
    } else if (this.#stopped) {
      this.#tracker.refuse(meta[1], reply);
    } else {
      const message = this.#tracker.accept(
        this.#topic,
        msg.data,
        () => headersRecord(msg.headers),
        meta[0],
        meta[1],
        reply,
      );
      if (message !== undefined) {
        this.#delivered++;
        if (this.#intake !== undefined) message.lane = this.#intake.lane;
        try {
          this.#flow.deliver(message);
        } catch (cause) {
          this.#deps.logger.error({ err: cause, topic: this.#topic }, 'nats: flow.deliver threw');
        }
      }
    }
    this.#ledger.received(meta[2]);
  }

  /** What this loop's open pulls may still deliver (lanes share one pool). */
  owed(): number {
    return this.#ledger.owed();
  }

  /** What this loop's next pull asks for when room allows (see PullSizing). */
  wanted(): number {
    return this.#sizing.limit;
  }

  /** What this loop's pulls may still deliver that other lanes must leave room for (see PullLedger). */
  liveOwed(): number {
    return this.#ledger.liveOwed();
  }

  /** Another lane waits for room this loop's pulls hold (see PullLedger.requestFence). */
  requestFence(): void {
    this.#ledger.requestFence();
  }

  #onStatus(msg: Msg): void {
    const headers = msg.headers;
    const code = headers?.code ?? 0;
    if (code === 100) return; // heartbeat / flow control: not requested
    const id = Number(msg.subject.slice(this.#inboxPrefix.length));
    const answered = this.#ledger.open(id);
    if (answered !== undefined) this.#ledger.serverDone(answered);
    const pull = this.#ledger.current;
    if (pull === undefined || pull.id !== id) return; // answer to an earlier pull
    this.#ledger.finish(pull, statusOutcome(code, headers?.description ?? ''));
  }

  /** Consumer there → nothing to do; consumer or stream gone → recreate (loudly). */
  async #recover(reason: string): Promise<'present' | 'recreated'> {
    const recovery = await recoverConsumer(this.#recovery, this.#abort.signal);
    if (recovery.outcome === 'present') return 'present';
    this.#recreated++;
    this.#deps.logger.warn({ topic: this.#topic, reason }, `nats: ${recovery.what}`);
    this.#report(new TransportError(`${recovery.what} (${reason})`));
    return 'recreated';
  }

  #report(error: EventBusError): void {
    this.#deps.logger.warn(
      { err: error, topic: this.#topic, durable: this.#spec.durable },
      `nats: ${error.message}`,
    );
    try {
      this.#flow.reportError(error);
    } catch (cause) {
      this.#deps.logger.error({ err: cause }, 'nats: flow.reportError threw');
    }
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#stopped = true;
      this.#tracker.holdNaks(); // released in stream order, see #maybeReleaseNaks
      this.#tracker.onIdle = () => this.#maybeReleaseNaks();
      this.#abort.abort();
      this.#ledger.finishCurrent({ kind: 'aborted' });
      await this.#loop.catch(() => {});
      const latest = this.#ledger.prune();
      if (latest > 0) setTimeout(() => this.#maybeReleaseNaks(), latest - performance.now() + 1).unref();
      this.#maybeReleaseNaks();
    })();
    return this.#stopping;
  }

  /**
   * After stop(): once every delivered message is settled and the broker ended
   * the last pull, all naks of the shutdown are known: send them in stream order.
   */
  #maybeReleaseNaks(): void {
    if (!this.#stopped || !this.#tracker.holdingNaks || this.#tracker.inFlight > 0) return;
    if (this.#ledger.prune() > 0) return; // a pull may still deliver
    this.#tracker.releaseNaks();
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.stop();
      // Keep the inbox until the broker ended every open pull: messages it still
      // sends are handed back (nak) instead of waiting out AckWait unseen.
      const never = new AbortController().signal;
      while (this.#ledger.prune() > 0 && this.#deps.conn.connected) {
        this.#ledger.requestFence();
        await this.#ledger.untilOpenChanges(never);
      }
      this.#fence.close();
      this.#ledger.dispose();
      this.#tracker.releaseNaks();
      this.#tracker.dispose();
      this.#unlistenReconnect();
      if (!this.#deps.conn.nc.isClosed()) this.#sub.unsubscribe();
    })();
    return this.#closing;
  }
}
