/**
 * Pipelined confirmed publishing over the core connection.
 *
 * Every message is published with `reply = <inbox prefix>.<n>`; ONE wildcard
 * subscription on the prefix receives all PubAcks and completes the matching
 * entry. Pending entries live in a Map in send order (a resend moves its entry
 * to the end), and ONE shared sweep timer resends entries older than
 * publishTimeoutMs with the same Nats-Msg-Id (the broker de-duplicates) or,
 * after publishRetries resends, fails them with TimeoutError (outcome unknown).
 * No per-message timers, promises or tasks.
 */
import { createInbox, type Msg, type Subscription } from '@nats-io/transport-node';
import {
  BusClosedError,
  type EventBusError,
  InvalidArgumentError,
  PayloadTooLargeError,
  PublishRejectedError,
  TimeoutError,
  TransportError,
} from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import type { OutboundMessage, PublishCallback, PublishOutcome } from '../../core/transport.ts';
import { wakeOrAbort } from '../../core/waiting.ts';
import type { NatsConnectionManager } from './connection.ts';
import { headerBlockText } from './header-block.ts';
import { validateTopic } from './names.ts';
import type { ResolvedNatsOptions } from './options.ts';
import { payloadSize, type WirePublish, writePublish } from './wire-frame.ts';

const MSG_ID = 'Nats-Msg-Id';
const decoder = new TextDecoder();

interface PendingPublish extends WirePublish {
  readonly msgId: string;
  readonly done: PublishCallback;
  sentAt: number;
  /** Times published so far (1 = no resend yet). */
  attempts: number;
}

interface PubAckBody {
  readonly stream?: string;
  readonly seq?: number;
  readonly duplicate?: boolean;
  readonly error?: { readonly code?: number; readonly err_code?: number; readonly description?: string };
}

export interface PublisherStats {
  readonly pending: number;
  readonly sent: number;
  readonly acked: number;
  readonly duplicates: number;
  readonly resends: number;
  readonly timeouts: number;
  readonly failed: number;
  /** 503 answers (no stream leader / no stream); such sends are resent by the sweep. */
  readonly noResponders: number;
}

function settle(done: PublishCallback, outcome: PublishOutcome, logger: Logger): void {
  try {
    done(outcome);
  } catch (error) {
    logger.error({ err: error }, 'nats: publish callback threw');
  }
}

export class PipelinedPublisher {
  readonly #conn: NatsConnectionManager;
  readonly #options: ResolvedNatsOptions;
  readonly #logger: Logger;
  readonly #prefix: string;
  readonly #sub: Subscription;
  readonly #pending = new Map<number, PendingPublish>();
  readonly #sweepTimer: NodeJS.Timeout;
  readonly #knownTopics = new Set<string>();
  #idleWaiters: Array<() => void> = [];
  #nextId = 1;
  #closed = false;
  #sent = 0;
  #acked = 0;
  #duplicates = 0;
  #resends = 0;
  #timeouts = 0;
  #failed = 0;
  #noResponders = 0;

  readonly #onNoResponders: (subject: string) => void;
  /** Where a message goes: its topic, or the topic's partition subject. */
  readonly #subjectFor: (message: OutboundMessage) => string;

  /** `onNoResponders` hears about every 503 (e.g. to recreate a memory stream lost in a restart). */
  constructor(
    conn: NatsConnectionManager,
    options: ResolvedNatsOptions,
    logger: Logger,
    onNoResponders: (subject: string) => void = () => {},
    subjectFor: (message: OutboundMessage) => string = (message) => message.topic,
  ) {
    this.#subjectFor = subjectFor;
    this.#conn = conn;
    this.#options = options;
    this.#logger = logger;
    this.#onNoResponders = onNoResponders;
    const inbox = createInbox(options.connectOptions.inboxPrefix);
    this.#prefix = `${inbox}.`;
    this.#sub = conn.nc.subscribe(`${inbox}.*`, { callback: (error, msg) => this.#onAck(error, msg) });
    const interval = Math.max(5, Math.min(1_000, Math.floor(options.publishTimeoutMs / 4)));
    this.#sweepTimer = setInterval(() => this.#sweep(), interval);
    this.#sweepTimer.unref();
  }

  get pending(): number {
    return this.#pending.size;
  }

  stats(): PublisherStats {
    return {
      pending: this.#pending.size,
      sent: this.#sent,
      acked: this.#acked,
      duplicates: this.#duplicates,
      resends: this.#resends,
      timeouts: this.#timeouts,
      failed: this.#failed,
      noResponders: this.#noResponders,
    };
  }

  send(message: OutboundMessage, done: PublishCallback): void {
    const failure = this.#trySend(message, done);
    if (failure !== undefined) {
      this.#failed++;
      queueMicrotask(() => settle(done, { ok: false, error: failure }, this.#logger));
    }
  }

  /** Returns the error to report (asynchronously) when nothing was sent. */
  #trySend(message: OutboundMessage, done: PublishCallback): EventBusError | undefined {
    if (this.#closed) return new BusClosedError('The NATS transport is closed or closing');
    if (this.#pending.size >= this.#options.maxPendingPublishes) {
      return new TransportError(
        `Expected at most ${this.#options.maxPendingPublishes} unacknowledged publishes (nats.maxPendingPublishes), got one more`,
      );
    }
    const subject = this.#subjectFor(message);
    if (!this.#knownTopics.has(subject)) {
      try {
        validateTopic(subject);
      } catch (error) {
        return error as EventBusError;
      }
      if (this.#knownTopics.size > 10_000) this.#knownTopics.clear();
      this.#knownTopics.add(subject);
    }
    let headerBlock: string;
    try {
      headerBlock = headerBlockText(message.headers, MSG_ID, message.msgId);
    } catch (cause) {
      return new InvalidArgumentError(
        `Expected valid NATS header names and values: ${(cause as Error).message}`,
        {
          cause,
        },
      );
    }
    const id = this.#nextId++;
    const entry: PendingPublish = {
      subject,
      reply: this.#prefix + id,
      headerBlock,
      data: message.data,
      frame: undefined,
      msgId: message.msgId,
      done,
      sentAt: 0,
      attempts: 1,
    };
    try {
      writePublish(this.#conn.nc, entry);
    } catch (cause) {
      if (/max_payload/i.test((cause as Error).message)) {
        return new PayloadTooLargeError(
          payloadSize(entry),
          this.#conn.maxPayload,
          'NATS message (body + headers)',
        );
      }
      return new TransportError(`Failed to publish to ${subject}: ${(cause as Error).message}`, { cause });
    }
    this.#sent++;
    entry.sentAt = performance.now();
    this.#pending.set(id, entry);
    return undefined;
  }

  #onAck(error: Error | null, msg: Msg): void {
    if (error !== null) {
      this.#logger.error({ err: error }, 'nats: PubAck subscription failed');
      return;
    }
    const id = Number(msg.subject.slice(this.#prefix.length));
    const entry = this.#pending.get(id);
    // Unknown ids are late answers to entries already settled (resend raced the first ack).
    if (entry === undefined) return;
    this.#pending.delete(id);
    const noResponders = msg.headers?.code === 503;
    if (noResponders) this.#onNoResponders(entry.subject);
    if (noResponders && entry.attempts <= this.#options.publishRetries) {
      // No responders: no stream leader right now (cluster failover, JetStream still
      // recovering after a restart) or no stream at all. Nothing was stored; keep the
      // entry and let the sweep resend it after publishTimeoutMs like any other.
      entry.sentAt = performance.now();
      this.#pending.set(id, entry);
      this.#noResponders++;
      return;
    }
    const outcome = this.#outcome(msg, entry);
    if (outcome.ok) {
      this.#acked++;
      if (outcome.duplicate === true) this.#duplicates++;
    } else {
      this.#failed++;
    }
    settle(entry.done, outcome, this.#logger);
    if (this.#pending.size === 0) this.#wakeIdle();
  }

  #outcome(msg: Msg, entry: PendingPublish): PublishOutcome {
    const status = msg.headers?.code ?? 0;
    if (status === 503) {
      return {
        ok: false,
        error: new TransportError(
          `No JetStream stream captures subject "${entry.subject}" (503 no responders, ${entry.attempts} attempt(s)): ensureTopic() it first, or check the stream was not deleted`,
        ),
      };
    }
    let body: PubAckBody;
    try {
      body = JSON.parse(decoder.decode(msg.data)) as PubAckBody;
    } catch (cause) {
      return {
        ok: false,
        error: new TransportError(
          `Expected a PubAck for ${entry.subject}, got ${status ? `status ${status}` : `"${decoder.decode(msg.data).slice(0, 80)}"`}`,
          { cause },
        ),
      };
    }
    if (body.error !== undefined) {
      const { code, err_code: errCode, description } = body.error;
      return {
        ok: false,
        error: new PublishRejectedError(
          `Broker rejected the publish to ${entry.subject} (Nats-Msg-Id ${entry.msgId}): ${description ?? 'no description'} (code ${code}, err_code ${errCode})`,
          { cause: body.error },
        ),
      };
    }
    if (typeof body.seq !== 'number') {
      return {
        ok: false,
        error: new TransportError(`Expected a PubAck with a sequence for ${entry.subject}`),
      };
    }
    return body.duplicate === true
      ? { ok: true, sequence: body.seq, duplicate: true }
      : { ok: true, sequence: body.seq };
  }

  /** The one timer: resend (same id) or time out entries older than publishTimeoutMs. */
  #sweep(): void {
    if (this.#pending.size === 0) return;
    const now = performance.now();
    const cutoff = now - this.#options.publishTimeoutMs;
    const nc = this.#conn.nc;
    for (const [id, entry] of this.#pending) {
      if (entry.sentAt > cutoff) break; // send order: everything after is younger
      this.#pending.delete(id);
      if (entry.attempts <= this.#options.publishRetries && !nc.isClosed()) {
        try {
          writePublish(nc, entry);
          entry.attempts++;
          entry.sentAt = now;
          this.#pending.set(id, entry); // moves to the end: still in send order
          this.#resends++;
          continue;
        } catch (error) {
          this.#logger.debug({ err: error }, 'nats: resend failed');
        }
      }
      this.#timeouts++;
      this.#failed++;
      settle(
        entry.done,
        {
          ok: false,
          error: new TimeoutError(
            `No PubAck for ${entry.subject} (Nats-Msg-Id ${entry.msgId}) after ${entry.attempts} attempt(s) of ${this.#options.publishTimeoutMs} ms; the outcome is unknown: retry with the same id`,
          ),
        },
        this.#logger,
      );
    }
    if (this.#pending.size === 0) this.#wakeIdle();
  }

  #wakeIdle(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const wake of waiters) wake();
  }

  /** Refuses further sends (BusClosedError). */
  beginClose(): void {
    this.#closed = true;
  }

  /** Resolves when nothing is pending, or when `signal` aborts (whichever first). */
  waitIdle(signal: AbortSignal): Promise<void> {
    if (this.#pending.size === 0) return Promise.resolve();
    return wakeOrAbort(signal, (wake) => {
      this.#idleWaiters.push(wake);
      return undefined; // woken (and dropped) by the next idle moment
    });
  }

  /** Fails whatever is still pending with TimeoutError (unknown outcome). */
  failPending(reason: string): void {
    const entries = [...this.#pending.values()];
    this.#pending.clear();
    for (const entry of entries) {
      this.#timeouts++;
      this.#failed++;
      settle(
        entry.done,
        {
          ok: false,
          error: new TimeoutError(
            `No PubAck for ${entry.subject} (Nats-Msg-Id ${entry.msgId}) before ${reason}; the outcome is unknown: retry with the same id`,
          ),
        },
        this.#logger,
      );
    }
    this.#wakeIdle();
  }

  dispose(): void {
    clearInterval(this.#sweepTimer);
    if (!this.#conn.nc.isClosed()) this.#sub.unsubscribe();
  }
}
