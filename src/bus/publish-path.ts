/**
 * From an accepted publish to its one PublishResult: the BusPublisher's
 * retries, the window slot it holds until then, metrics, the rate-limited
 * logs and health figures of publishing, and the waiters of
 * `publishEnvelopeAndWait`.
 */
import type { Envelope } from '../core/envelope.ts';
import type { EventBusError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { OutboundMessage, PublishOutcome, Transport } from '../core/transport.ts';
import type { PublishResult } from '../core/types.ts';
import type { BusMetrics } from '../metrics/metrics.ts';
import type { ResolvedBusOptions } from './options.ts';
import type { PublishResultHub } from './publish-results.ts';
import type { PublishWindow } from './publish-window.ts';
import { BusPublisher, type PublishJob } from './publisher.ts';

export interface PublishMeta {
  readonly eventId: string;
  readonly aggregateId: string | undefined;
  readonly eventType: string | undefined;
  /** Envelope publishes: handed back in a failure result. */
  readonly envelope: Envelope | undefined;
  /** publish…AndWait: told the outcome. */
  readonly waiter: ((result: PublishResult) => void) | undefined;
}

interface Job extends PublishJob {
  readonly meta: PublishMeta;
}

/** At most one "publish failed" log line per this interval; the rest are counted into it. */
const FAILURE_LOG_INTERVAL_MS = 5_000;

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export class PublishPath {
  readonly #options: ResolvedBusOptions;
  readonly #window: PublishWindow;
  readonly #results: PublishResultHub;
  readonly #metrics: BusMetrics;
  readonly #logger: Logger;
  readonly #publisher: BusPublisher;
  #failuresSinceLog = 0;
  #lastFailureLogAt = Number.NEGATIVE_INFINITY;

  constructor(
    options: ResolvedBusOptions,
    transport: Transport,
    window: PublishWindow,
    results: PublishResultHub,
    metrics: BusMetrics,
  ) {
    this.#options = options;
    this.#window = window;
    this.#results = results;
    this.#metrics = metrics;
    this.#logger = options.logger;
    this.#publisher = new BusPublisher({
      send: (message, done) => transport.send(message, done),
      settle: (job, outcome) => this.#settle(job as Job, outcome),
      ordering: options.publishOrdering,
      scope: options.publishFailureScope,
      backoff: options.publishRetryBackoff,
      onRetryingChange: (retrying, error) => this.#onRetryingChange(retrying, error),
    });
  }

  get retrying(): number {
    return this.#publisher.retrying;
  }

  oldestRetryingAgeMs(): number {
    return Math.round(this.#publisher.oldestRetryingAgeMs());
  }

  /** Hands an admitted message (its window slot taken) to the publisher. */
  submit(message: OutboundMessage, meta: PublishMeta): void {
    this.#metrics.publish.pending(this.#window.pending);
    const now = performance.now();
    const job: Job = {
      message,
      meta,
      acceptedAt: now,
      deadlineAt: now + this.#options.publishDeadlineMs,
      attempts: 0,
      lastError: undefined,
    };
    this.#publisher.submit(job);
  }

  giveUp(aggregateId: string): boolean {
    return this.#publisher.giveUp(aggregateId);
  }

  /** Closing: nothing more is attempted; what waits to be retried fails now. */
  stopRetrying(): void {
    this.#publisher.stop();
  }

  #settle(job: Job, outcome: PublishOutcome): void {
    this.#window.release();
    const { message, meta } = job;
    const result: Mutable<PublishResult> = {
      eventId: meta.eventId,
      topic: message.topic,
      success: outcome.ok,
      timestamp: Date.now(),
      attempts: job.attempts,
    };
    if (meta.aggregateId !== undefined) result.aggregateId = meta.aggregateId;
    if (meta.eventType !== undefined) result.eventType = meta.eventType;
    if (outcome.ok) {
      if (outcome.sequence !== undefined) result.sequence = outcome.sequence;
      if (outcome.offset !== undefined) result.offset = outcome.offset;
      if (outcome.duplicate) result.duplicate = true;
      this.#metrics.publish.published(message.topic);
      this.#metrics.publish.ackLatency((performance.now() - job.acceptedAt) / 1000);
    } else {
      result.error = outcome.error;
      if (meta.envelope !== undefined) result.envelope = meta.envelope;
      else
        result.raw =
          message.key === undefined
            ? { data: message.data, headers: message.headers }
            : { data: message.data, headers: message.headers, key: message.key };
      this.#metrics.publish.failed(message.topic, outcome.error.code);
      this.#logFailure(result, outcome.error);
    }
    this.#results.emit(result);
    meta.waiter?.(result);
  }

  /** One line per state change, not per message: an outage must not flood the log. */
  #onRetryingChange(retrying: number, error: EventBusError | undefined): void {
    if (retrying > 0) {
      this.#logger.warn(
        { err: error },
        `publishes are being retried by the bus (up to publishDeadlineMs = ${this.#options.publishDeadlineMs} ms each); health is degraded until they are acknowledged`,
      );
    } else {
      this.#logger.info({}, 'publishes acknowledged again; nothing is being retried');
    }
  }

  #logFailure(result: PublishResult, error: EventBusError): void {
    this.#failuresSinceLog++;
    const now = performance.now();
    if (now - this.#lastFailureLogAt < FAILURE_LOG_INTERVAL_MS) return;
    this.#lastFailureLogAt = now;
    const count = this.#failuresSinceLog;
    this.#failuresSinceLog = 0;
    this.#logger.warn(
      { err: error, eventId: result.eventId, topic: result.topic, failures: count },
      count === 1
        ? 'publish failed'
        : `${count} publishes failed since the last such line (this one is the latest)`,
    );
  }
}
