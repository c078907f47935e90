/**
 * The bus owns every accepted publish until the broker acknowledges it or its
 * deadline (`publishDeadlineMs`, counted from acceptance) passes.
 *
 * - Per-aggregate order: at most one event per aggregate (envelope
 *   aggregateId, raw `key`) is on the wire; the next one follows its ack. A
 *   broker connection that dies loses a suffix of what was written to it while
 *   later messages reach the broker first, so pipelining an aggregate would
 *   store it out of order after a reconnect. Different aggregates stay
 *   pipelined.
 * - Retries: a retryable failure (timeout: outcome unknown; disconnect) is
 *   sent again with the same message id (broker de-duplication makes a second
 *   copy harmless) after a backoff, across reconnects, for as long as the
 *   deadline allows. The aggregate's later events wait behind it.
 * - Failure: a non-retryable answer (broker rejection, payload too large) or
 *   the deadline ends an event with exactly one failure result. No attempt
 *   starts after the deadline; an attempt already on the wire is waited for
 *   (if the broker acks it, the event succeeded). With scope 'aggregate' the
 *   events queued behind it at that moment fail with it, in order
 *   (PublishHeldError naming it); events accepted later are sent normally.
 */
import { backoffDelay, type ResolvedBackoff } from '../core/backoff.ts';
import { type EventBusError, PublishHeldError, TimeoutError } from '../core/errors.ts';
import type { OutboundMessage, PublishOutcome } from '../core/transport.ts';

export interface PublishJob {
  readonly message: OutboundMessage;
  /** performance.now() at acceptance. */
  readonly acceptedAt: number;
  /** No attempt starts after this (performance.now() time). */
  deadlineAt: number;
  attempts: number;
  lastError: EventBusError | undefined;
}

export type PublishFailureScope = 'aggregate' | 'event';

export interface BusPublisherOptions {
  /** One attempt: hands the message to the transport; `done` runs exactly once, asynchronously. */
  readonly send: (message: OutboundMessage, done: (outcome: PublishOutcome) => void) => void;
  /** The job's one final outcome (success, or its one failure). */
  readonly settle: (job: PublishJob, outcome: PublishOutcome) => void;
  readonly ordering: 'aggregate' | 'none';
  readonly scope: PublishFailureScope;
  readonly backoff: ResolvedBackoff;
  /** The retrying count went from 0 to more, or back to 0. */
  readonly onRetryingChange: (retrying: number, error: EventBusError | undefined) => void;
}

export class BusPublisher {
  readonly #options: BusPublisherOptions;
  /** Per aggregate: the head (on the wire or in backoff), then what waits behind it. */
  readonly #lanes = new Map<string, PublishJob[]>();
  /** Jobs that failed at least one attempt and are not settled yet. */
  readonly #retrying = new Set<PublishJob>();
  /** Jobs waiting in backoff, with their timer. */
  readonly #backoffTimers = new Map<PublishJob, NodeJS.Timeout>();
  #stopped = false;

  constructor(options: BusPublisherOptions) {
    this.#options = options;
  }

  /** Publishes that failed an attempt and are being retried. */
  get retrying(): number {
    return this.#retrying.size;
  }

  /** Age (ms) of the oldest publish being retried; 0 when none. */
  oldestRetryingAgeMs(now = performance.now()): number {
    let oldest = now;
    for (const job of this.#retrying) if (job.acceptedAt < oldest) oldest = job.acceptedAt;
    return now - oldest;
  }

  submit(job: PublishJob): void {
    const key = this.#options.ordering === 'aggregate' ? job.message.key : undefined;
    if (key === undefined) {
      this.#start(job);
      return;
    }
    const lane = this.#lanes.get(key);
    if (lane) {
      lane.push(job);
      return;
    }
    this.#lanes.set(key, [job]);
    this.#start(job);
  }

  /**
   * Stops retrying the publishes of `key`: its head fails after the attempt on
   * the wire (at once when in backoff), and the rest per the failure scope.
   * True if the aggregate had publishes outstanding.
   */
  giveUp(key: string): boolean {
    const lane = this.#lanes.get(key);
    if (!lane || lane.length === 0) return false;
    const now = performance.now();
    for (const job of lane) job.deadlineAt = Math.min(job.deadlineAt, now);
    const head = lane[0] as PublishJob;
    this.#expireBackoff(head);
    return true;
  }

  /**
   * Closing: no new attempts. Jobs in backoff fail now (in order, per lane);
   * those on the wire fail when the transport ends them.
   */
  stop(): void {
    this.#stopped = true;
    for (const job of [...this.#backoffTimers.keys()]) this.#expireBackoff(job);
    // Queued jobs of lanes whose head is on the wire end with it (below).
  }

  #expireBackoff(job: PublishJob): void {
    const timer = this.#backoffTimers.get(job);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.#backoffTimers.delete(job);
    this.#fail(job, this.#finalError(job));
  }

  #start(job: PublishJob): void {
    if (this.#stopped || performance.now() >= job.deadlineAt) {
      // Waited behind another event past its own deadline (scope 'event'), or closing.
      queueMicrotask(() => this.#fail(job, this.#finalError(job)));
      return;
    }
    this.#attempt(job);
  }

  #attempt(job: PublishJob): void {
    job.attempts++;
    this.#options.send(job.message, (outcome) => this.#onOutcome(job, outcome));
  }

  #onOutcome(job: PublishJob, outcome: PublishOutcome): void {
    if (outcome.ok) {
      this.#settled(job, outcome);
      return;
    }
    const error = outcome.error;
    job.lastError = error;
    if (!error.retryable) {
      this.#fail(job, error);
      return;
    }
    const delay = backoffDelay(job.attempts, this.#options.backoff);
    if (this.#stopped || performance.now() + delay >= job.deadlineAt) {
      this.#fail(job, this.#finalError(job));
      return;
    }
    this.#markRetrying(job, error);
    this.#backoffTimers.set(
      job,
      setTimeout(() => {
        this.#backoffTimers.delete(job);
        this.#start(job);
      }, delay),
    );
  }

  #finalError(job: PublishJob): EventBusError {
    const last = job.lastError;
    if (last !== undefined && !last.retryable) return last;
    const age = Math.round(performance.now() - job.acceptedAt);
    const why = this.#stopped ? 'before the bus closed' : 'within its publish deadline';
    return new TimeoutError(
      `Not acknowledged by the broker ${why} (${job.attempts} attempt(s) over ${age} ms) for event ${job.message.msgId} on ${job.message.topic}; the outcome is unknown: republishing it with the same eventId is safe (broker de-duplication)`,
      last === undefined ? {} : { cause: last },
    );
  }

  #markRetrying(job: PublishJob, error: EventBusError): void {
    if (this.#retrying.has(job)) return;
    this.#retrying.add(job);
    if (this.#retrying.size === 1) this.#options.onRetryingChange(1, error);
  }

  #unmarkRetrying(job: PublishJob): void {
    if (!this.#retrying.delete(job)) return;
    if (this.#retrying.size === 0) this.#options.onRetryingChange(0, undefined);
  }

  #settled(job: PublishJob, outcome: PublishOutcome): void {
    this.#unmarkRetrying(job);
    this.#options.settle(job, outcome);
    const key = this.#laneKey(job);
    if (key === undefined) return;
    const lane = this.#lanes.get(key) as PublishJob[];
    lane.shift();
    // Iterative, not through #start → #fail → #settled: a long lane ending
    // at once (closing, scope 'event') must not recurse once per event.
    while (lane.length > 0) {
      const next = lane[0] as PublishJob;
      if (!this.#stopped && performance.now() < next.deadlineAt) {
        this.#attempt(next);
        return;
      }
      lane.shift();
      this.#options.settle(next, { ok: false, error: this.#finalError(next) });
    }
    this.#lanes.delete(key);
  }

  #fail(job: PublishJob, error: EventBusError): void {
    const key = this.#laneKey(job);
    if (key === undefined || this.#options.scope === 'event') {
      this.#settled(job, { ok: false, error });
      return;
    }
    // Scope 'aggregate': what waits behind it fails with it, in order, unsent.
    const lane = this.#lanes.get(key) as PublishJob[];
    this.#lanes.delete(key);
    this.#unmarkRetrying(job);
    this.#options.settle(job, { ok: false, error });
    for (const waiting of lane.slice(1)) {
      this.#options.settle(waiting, { ok: false, error: heldError(job, error, waiting) });
    }
  }

  /** The lane `job` heads, if it is one. */
  #laneKey(job: PublishJob): string | undefined {
    if (this.#options.ordering !== 'aggregate') return undefined;
    const key = job.message.key;
    if (key === undefined) return undefined;
    return this.#lanes.get(key)?.[0] === job ? key : undefined;
  }
}

function heldError(failed: PublishJob, error: EventBusError, message: PublishJob): PublishHeldError {
  const key = failed.message.key as string;
  return new PublishHeldError(
    key,
    failed.message.msgId,
    `Not sent: event ${failed.message.msgId} of aggregate "${key}", queued ahead of event ${message.message.msgId} on ${message.message.topic}, failed (${error.code}); sending this one alone would leave a gap in the aggregate`,
    { cause: error },
  );
}
