/**
 * One fetch loop per subscription, on the low-level pull API.
 *
 * Each pull is one request to `$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>`
 * with a short `expires`, asking for min(fetchBatch, free capacity − what
 * earlier pulls may still deliver) messages. The next pull starts when this
 * one ended (batch filled, 408/404 status, reconnect, a timeout) or, once
 * messages are flowing, 25 ms *before* it expires: the server then holds the
 * next request already and serves it the moment the old one runs out, instead
 * of a gap of one round trip per pull (measured at 5,000 msg/s: handler p90
 * 2.0 → 1.3 ms, p99 21–24 → 8–16 ms). A pull the loop moved on from stays
 * counted as "owed" until the server ended it or its expiry (as the server saw
 * it: a busy server starts the clock late) has surely passed, so pulls never
 * ask for more than the pool can take (sizing by free capacity alone overfilled
 * a pool of 256 with 332 in CI). With no free capacity the loop waits, no pull
 * is outstanding and the broker keeps the messages: backpressure reaches the
 * broker.
 *
 * Messages arrive on one inbox subscription and are handed to flow.deliver()
 * in arrival (= stream) order, synchronously, without per-message promises.
 *
 * Failure handling: a pull that gets no answer (nats-server 2.9 does not answer
 * pulls for a consumer that does not exist), a 409 "Consumer Deleted" or a 503
 * leads to a check: consumer still there → pull again; consumer gone → recreate
 * it from the first unsettled sequence; stream gone → recreate the stream and
 * start over. Each such event is logged and reported through flow.reportError.
 */

import type { JetStreamManager } from '@nats-io/jetstream';
import { createInbox, type Msg, type MsgHdrs, type Subscription } from '@nats-io/transport-node';
import { type EventBusError, isEventBusError, TransportError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import type { DeliveryLane, FlowControl, MessageKind, TransportSubscription } from '../../core/transport.ts';
import { AckTracker, type NatsInboundMessage } from './ack-tracker.ts';
import type { NatsConnectionManager } from './connection.ts';
import { type ConsumerSpec, consumerInfo, ensureConsumer } from './consumer.ts';
import { wrapApiError } from './errors.ts';
import type { ResolvedNatsOptions } from './options.ts';
import type { SequenceSet } from './sequence-set.ts';
import type { StreamHandle, StreamRegistry } from './streams.ts';

type PullOutcome =
  | { readonly kind: 'done' | 'expired' | 'reconnected' | 'aborted' | 'no-response' }
  | { readonly kind: 'missing'; readonly reason: string }
  | { readonly kind: 'retry' | 'error'; readonly reason: string };

interface ActivePull {
  readonly id: number;
  readonly batch: number;
  received: number;
  /** performance.now() when it was sent. */
  readonly sentAt: number;
  /** When the broker ends this pull, judged from our send time (performance.now() time). */
  readonly expiresAt: number;
  /**
   * When the broker ends it at the latest as far as we can tell: a busy server
   * starts the clock when it reads the request, which the first message shows.
   */
  serverExpiresAt: number;
  /** The broker ended it (batch filled or a status answered it). */
  serverDone: boolean;
  /** Published while disconnected: nats.js buffers it and sends it after the reconnect. */
  readonly buffered: boolean;
  readonly resolve: (outcome: PullOutcome) => void;
  timer: NodeJS.Timeout | undefined;
}

/** Pause before recreating a consumer or stream someone deleted (see #recover). */
const RECREATE_DELAY_MS = 1_000;
/**
 * How long after its expiry a pull may still deliver, as our event loop sees
 * it. The server ends every pull with a filled batch or a 408, so this only
 * bounds a lost answer; it must also outlast our own stalls (GC, a publish
 * burst): messages the server sent in time still sit unread in the socket, and
 * with 250 ms CI saw them overfill the pool (329 in a pool of 256).
 */
const SERVER_PULL_GRACE_MS = 2_000;
/** Slack after a pull's expiry before a partly answered pull counts as expired. */
const PULL_EXPIRY_GRACE_MS = 25;
/** A delivering pull is followed by the next this long before it expires (at most half its life). */
const PULL_RENEW_LEAD_MS = 25;
const DONE: PullOutcome = { kind: 'done' };
const EXPIRED: PullOutcome = { kind: 'expired' };
const EMPTY_HEADERS: Readonly<Record<string, string>> = Object.freeze({});
const encoder = new TextEncoder();

function headersRecord(headers: MsgHdrs | undefined): Readonly<Record<string, string>> {
  if (headers === undefined) return EMPTY_HEADERS;
  const record: Record<string, string> = {};
  for (const [name, values] of headers) {
    const value = values[0];
    if (value !== undefined) record[name] = value;
  }
  return record;
}

const dots = new Int32Array(16);

/**
 * `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>` (9 tokens)
 * or the v2 form with `<domain>.<account hash>` after ACK and a trailing token.
 * Writes [deliveryCount, streamSequence, consumerSequence] into `out`; false
 * when not an ack subject.
 */
function parseAckSubject(reply: string, out: [number, number, number]): boolean {
  if (!reply.startsWith('$JS.ACK.')) return false;
  let count = 0;
  for (let i = 0; i < reply.length && count < 16; i++) {
    if (reply.charCodeAt(i) === 46) dots[count++] = i;
  }
  const tokens = count + 1;
  const first = tokens === 9 ? 4 : tokens >= 11 ? 6 : -1;
  if (first < 0) return false;
  const deliveryCount = Number(reply.slice((dots[first - 1] as number) + 1, dots[first]));
  const sequence = Number(reply.slice((dots[first] as number) + 1, dots[first + 1]));
  const consumerSequence = Number(reply.slice((dots[first + 1] as number) + 1, dots[first + 2]));
  if (!Number.isSafeInteger(deliveryCount) || !Number.isSafeInteger(sequence)) return false;
  out[0] = deliveryCount;
  out[1] = sequence;
  out[2] = Number.isSafeInteger(consumerSequence) ? consumerSequence : 0;
  return true;
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

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
  /** How pulls ended: done (batch filled), expired, no-response, reconnected, ... */
  readonly outcomes?: Readonly<Record<string, number>>;
}

export class NatsPullSubscription implements TransportSubscription {
  readonly #deps: PullSubscriptionDeps;
  readonly #flow: FlowControl;
  readonly #kind: MessageKind;
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
  readonly #safetyMs: number;
  #streamCreated: string;
  /** The pull the loop waits on. */
  #pull: ActivePull | undefined;
  /** Pulls the server may still deliver to (the loop's one and renewed ones), by id. */
  readonly #open = new Map<number, ActivePull>();
  /** Woken when a pull leaves #open. */
  #onOpenChange: (() => void) | undefined;
  #pullSeq = 0;
  /** performance.now() of the last message from the broker. */
  #lastMessageAt = 0;
  #loop: Promise<void> = Promise.resolve();
  #stopped = false;
  #stopping: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #pulls = 0;
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
    this.#flow = flow;
    this.#kind = stream.kind;
    this.#topic = stream.topic;
    this.#streamCreated = stream.created;
    this.#spec = spec;
    this.#nextSubject = `$JS.API.CONSUMER.MSG.NEXT.${spec.stream}.${spec.durable}`;
    const { conn, options } = deps;
    this.#expiresNs = options.consumer.fetchMaxWaitMs * 1_000_000;
    this.#safetyMs = options.consumer.fetchMaxWaitMs + Math.max(1_000, options.consumer.fetchMaxWaitMs);
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
      // A pull sent on the old connection died with it: pull again. One sent while
      // disconnected is flushed now, so keep waiting for it (two would overfill).
      for (const open of [...this.#open.values()]) if (!open.buffered) this.#serverDone(open);
      const pull = this.#pull;
      if (pull !== undefined && !pull.buffered) this.#finish(pull, { kind: 'reconnected' });
      else if (pull !== undefined) this.#armSafety(pull);
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
    let backoffMs = 0;
    const backoff = async (): Promise<void> => {
      backoffMs = Math.min(5_000, backoffMs === 0 ? 100 : backoffMs * 2);
      await delay(backoffMs, signal);
    };
    while (!signal.aborted) {
      if (this.#gapped || (this.#intake !== undefined && !this.#intake.lane.mayStart())) break;
      try {
        const capacity = Math.floor(this.#flow.freeCapacity());
        if (capacity <= 0) {
          await this.#flow.waitForCapacity(signal);
          continue;
        }
        const free = capacity - this.#owed();
        if (free <= 0) {
          // Renewed pulls may still fill what is free: wait until one ends.
          await this.#untilOpenChanges(signal);
          continue;
        }
        const outcome = await this.#pullOnce(Math.min(this.#deps.options.consumer.fetchBatch, free));
        this.outcomes[outcome.kind] = (this.outcomes[outcome.kind] ?? 0) + 1;
        switch (outcome.kind) {
          case 'done':
          case 'expired':
          case 'reconnected':
          case 'aborted':
            backoffMs = 0;
            break;
          case 'no-response':
          case 'missing':
            if (!this.#deps.conn.connected) {
              await this.#untilReconnected();
              break;
            }
            {
              const recovered = await Promise.race([
                this.#recover(outcome.kind === 'missing' ? outcome.reason : 'no answer to pull'),
                this.#aborted.then(() => 'recreated' as const),
              ]);
              // 409/503 while the consumer exists (e.g. no consumer leader during a
              // cluster failover): do not hammer the broker.
              if (recovered === 'present' && outcome.kind === 'missing') await backoff();
            }
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

  /** Lane mode: stop taking anything from this consumer generation and ask for a rewind. */
  #gap(reason: string): void {
    if (this.#gapped) return;
    this.#gapped = true;
    this.#abort.abort();
    const pull = this.#pull;
    if (pull !== undefined) this.#finish(pull, { kind: 'aborted' });
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
    if (this.#tracker.inFlight === 0 || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const previous = this.#tracker.onIdle;
      const done = (): void => {
        signal.removeEventListener('abort', done);
        this.#tracker.onIdle = previous;
        resolve();
      };
      this.#tracker.onIdle = () => {
        previous?.();
        done();
      };
      signal.addEventListener('abort', done, { once: true });
    });
  }

  #untilReconnected(): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        unlisten();
        this.#abort.signal.removeEventListener('abort', done);
        resolve();
      };
      const unlisten = this.#deps.conn.onReconnect(done);
      this.#abort.signal.addEventListener('abort', done, { once: true });
      if (this.#deps.conn.connected) done();
    });
  }

  #pullOnce(batch: number): Promise<PullOutcome> {
    return new Promise((resolve) => {
      const id = ++this.#pullSeq;
      const sentAt = performance.now();
      const expiresAt = sentAt + this.#deps.options.consumer.fetchMaxWaitMs;
      const pull: ActivePull = {
        id,
        sentAt,
        batch,
        received: 0,
        expiresAt,
        serverExpiresAt: expiresAt,
        serverDone: false,
        buffered: !this.#deps.conn.connected,
        resolve,
        timer: undefined,
      };
      this.#pull = pull;
      this.#open.set(id, pull);
      this.#armSafety(pull);
      this.#pulls++;
      try {
        this.#deps.conn.nc.publish(
          this.#nextSubject,
          encoder.encode(`{"batch":${batch},"expires":${this.#expiresNs}}`),
          { reply: this.#inboxPrefix + id },
        );
      } catch (error) {
        this.#finish(pull, { kind: 'error', reason: (error as Error).message });
      }
    });
  }

  /**
   * The one timer per pull, in up to three steps. (1) At the renewal point,
   * 25 ms before expiry: if messages arrived since it was sent, the consumer
   * exists and the loop moves on (the next pull queues up behind this one;
   * messages count towards the oldest open pull, so "anything since it was
   * sent" is the test, not its own count). (2) Shortly after expiry, the same
   * test: nats-server 2.9 sends no 408 for a pull that expired after
   * delivering part of its batch, and waiting for the long margin there
   * stalled delivery for ~1 s (p99 publish→handler ≈ 980 ms at 1,000 msg/s).
   * (3) A pull with no answer at all within expires + margin is lost (or, on
   * 2.9, the consumer is gone). While disconnected the reconnect handler
   * decides instead.
   */
  #armSafety(pull: ActivePull): void {
    clearTimeout(pull.timer);
    const wait = this.#deps.options.consumer.fetchMaxWaitMs;
    const renewAt = Math.max(wait / 2, wait - PULL_RENEW_LEAD_MS);
    const afterExpiry = wait + PULL_EXPIRY_GRACE_MS;
    const answered = (): boolean => this.#lastMessageAt > pull.sentAt && this.#deps.conn.connected;
    pull.timer = setTimeout(() => {
      // Over for the loop; it stays in #open (owed) until the server ends it.
      if (answered()) return this.#finish(pull, EXPIRED);
      pull.timer = setTimeout(() => {
        if (answered()) return this.#finish(pull, EXPIRED);
        pull.timer = setTimeout(
          () => {
            if (this.#deps.conn.connected) this.#finish(pull, { kind: 'no-response' });
            else this.#armSafety(pull);
          },
          Math.max(0, this.#safetyMs - afterExpiry),
        );
      }, afterExpiry - renewAt);
    }, renewAt);
  }

  #finish(pull: ActivePull, outcome: PullOutcome): void {
    if (this.#pull !== pull) return;
    this.#pull = undefined;
    clearTimeout(pull.timer);
    pull.resolve(outcome);
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
    // Count it towards the oldest open pull: the server serves waiting pulls in
    // order (a data message carries the stream subject, not the pull's inbox).
    // Counting it towards an older pull than the one it answered is safe: the
    // total owed stays right, and a pull counted full early ends early.
    const now = performance.now();
    this.#lastMessageAt = now;
    let pull: ActivePull | undefined;
    for (const open of this.#open.values()) {
      pull = open;
      break;
    }
    if (pull === undefined) return; // every pull already counted as ended
    if (pull.received++ === 0) {
      pull.serverExpiresAt = Math.max(pull.expiresAt, now + this.#deps.options.consumer.fetchMaxWaitMs);
    }
    if (pull.received >= pull.batch) {
      this.#serverDone(pull);
      this.#finish(pull, DONE);
    }
  }

  /** The server will send nothing more for `pull`. */
  #serverDone(pull: ActivePull): void {
    if (pull.serverDone) return;
    pull.serverDone = true;
    this.#open.delete(pull.id);
    const wake = this.#onOpenChange;
    this.#onOpenChange = undefined;
    wake?.();
    this.#intake?.owedChanged();
    this.#maybeReleaseNaks();
  }

  /** When an open pull surely ended even without a word from the server. */
  #deadlineOf(pull: ActivePull): number {
    return pull.serverExpiresAt + SERVER_PULL_GRACE_MS;
  }

  /** Drops open pulls past their deadline; returns the latest deadline left (0: none open). */
  #pruneOpen(): number {
    const now = performance.now();
    let latest = 0;
    for (const pull of [...this.#open.values()]) {
      const deadline = this.#deadlineOf(pull);
      if (pull !== this.#pull && now >= deadline) this.#serverDone(pull);
      else latest = Math.max(latest, deadline);
    }
    return latest;
  }

  /** What this loop's open pulls may still deliver (lanes share one pool). */
  owed(): number {
    return this.#owed();
  }

  /**
   * What this loop's pulls that the server has not yet expired may still
   * deliver: what OTHER lanes must leave room for. A pull past its expiry
   * stays owed for this loop's own sizing (late socket reads after a stall),
   * but counting it against every other lane for the whole grace period
   * blocked them all: with 17 lanes, p99 publish→handler went to ~1.9 s.
   */
  liveOwed(): number {
    const now = performance.now();
    let owed = 0;
    for (const pull of this.#open.values()) {
      if (now < pull.serverExpiresAt + PULL_EXPIRY_GRACE_MS) owed += pull.batch - pull.received;
    }
    return owed;
  }

  /** What the open pulls may still deliver. */
  #owed(): number {
    this.#pruneOpen();
    let owed = 0;
    for (const pull of this.#open.values()) owed += pull.batch - pull.received;
    return owed;
  }

  /** Resolves when a pull leaves #open (ended, or its deadline passed) or on abort. */
  #untilOpenChanges(signal: AbortSignal): Promise<void> {
    const now = performance.now();
    let earliest = Number.POSITIVE_INFINITY;
    for (const pull of this.#open.values()) {
      // Also when a pull expires at the server: a lane's share of the pool counts
      // only its live pulls (lane-budget.ts), so free capacity may come back then,
      // long before the expired pull's grace is over (waiting for the grace put
      // p99 publish→handler at ~1.9 s with 17 lanes).
      const live = pull.serverExpiresAt + PULL_EXPIRY_GRACE_MS;
      earliest = Math.min(earliest, live > now ? live : this.#deadlineOf(pull));
    }
    if (!Number.isFinite(earliest)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        if (this.#onOpenChange === done) this.#onOpenChange = undefined;
        resolve();
      };
      const timer = setTimeout(done, Math.max(1, earliest - now));
      signal.addEventListener('abort', done, { once: true });
      this.#onOpenChange = done;
    });
  }

  #onStatus(msg: Msg): void {
    const headers = msg.headers;
    const code = headers?.code ?? 0;
    if (code === 100) return; // heartbeat / flow control: not requested
    const id = Number(msg.subject.slice(this.#inboxPrefix.length));
    const answered = this.#open.get(id);
    if (answered !== undefined) this.#serverDone(answered);
    const pull = this.#pull;
    if (pull === undefined || pull.id !== id) return; // answer to an earlier pull
    const description = headers?.description ?? '';
    switch (code) {
      case 404:
      case 408:
        this.#finish(pull, EXPIRED);
        return;
      case 409:
        if (/consumer deleted/i.test(description))
          this.#finish(pull, { kind: 'missing', reason: description });
        else if (/maxwaiting|leadership/i.test(description))
          this.#finish(pull, { kind: 'retry', reason: description });
        else this.#finish(pull, { kind: 'error', reason: `409 ${description}` });
        return;
      case 503:
        this.#finish(pull, { kind: 'missing', reason: '503 no responders' });
        return;
      default:
        this.#finish(pull, { kind: 'error', reason: `${code} ${description}` });
    }
  }

  /** Consumer there → nothing to do; consumer or stream gone → recreate (loudly). */
  async #recover(reason: string): Promise<'present' | 'recreated'> {
    const { jsm, streams, logger } = this.#deps;
    if ((await consumerInfo(jsm, this.#spec)) !== undefined) return 'present'; // the pull was lost: pull again
    // nats-server 2.9 answers "Consumer Deleted" while it is still removing the
    // deleted consumer's (or stream's) files: recreating at once races with that
    // ("directory not empty", "error opening msg block file"). Let it finish.
    await delay(RECREATE_DELAY_MS, this.#abort.signal);
    if (this.#abort.signal.aborted) return 'present';
    if ((await consumerInfo(jsm, this.#spec)) !== undefined) return 'present'; // another member recreated it
    const stream = await streams.info(this.#spec.stream);
    let startSequence: number | undefined;
    let what: string;
    if (stream === undefined) {
      const handle = await streams.recreate(this.#topic, this.#kind);
      this.#streamCreated = handle.created;
      this.#tracker.reset();
      what = `stream ${this.#spec.stream} was deleted; recreated it and consumer ${this.#spec.durable} from the start`;
    } else if (stream.created !== this.#streamCreated) {
      this.#streamCreated = stream.created;
      this.#tracker.reset();
      what = `stream ${this.#spec.stream} was recreated by someone else; recreated consumer ${this.#spec.durable} from the start`;
    } else {
      startSequence = this.#tracker.resumeSequence();
      what = `consumer ${this.#spec.durable} on stream ${this.#spec.stream} was deleted; recreated it from sequence ${startSequence}`;
    }
    await ensureConsumer(jsm, this.#spec, logger, startSequence);
    this.#recreated++;
    logger.warn({ topic: this.#topic, reason }, `nats: ${what}`);
    this.#report(new TransportError(`${what} (${reason})`));
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
      const pull = this.#pull;
      if (pull !== undefined) this.#finish(pull, { kind: 'aborted' });
      await this.#loop.catch(() => {});
      const latest = this.#pruneOpen();
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
    if (this.#pruneOpen() > 0) return; // a pull may still deliver
    this.#tracker.releaseNaks();
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.stop();
      // Keep the inbox until the broker ended every open pull: messages it still
      // sends are handed back (nak) instead of waiting out AckWait unseen.
      const never = new AbortController().signal;
      while (this.#pruneOpen() > 0 && this.#deps.conn.connected) await this.#untilOpenChanges(never);
      this.#tracker.releaseNaks();
      this.#tracker.dispose();
      this.#unlistenReconnect();
      if (!this.#deps.conn.nc.isClosed()) this.#sub.unsubscribe();
    })();
    return this.#closing;
  }
}
