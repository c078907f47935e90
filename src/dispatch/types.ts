/**
 * Contract of the keyed actor pool (README.md, Delivery semantics and ordering). One pool per subscription.
 * The bus turns each InboundMessage into a PoolTask; the pool routes it by
 * key to an actor, runs it, retries in place, and settles the message.
 */
import type { EventBusError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { InboundMessage, MessageKind } from '../core/transport.ts';
import type { DeadLetterPolicy, StartFrom } from '../core/types.ts';
import type { PoolMetrics } from '../metrics/metrics.ts';

export interface PoolTask {
  /** Aggregate id; undefined → round-robin key `rr-<n>`. */
  readonly key: string | undefined;
  readonly message: InboundMessage;
  /**
   * Runs the user's handler once. A rejection is a handler failure; a
   * synchronous throw out of `run` is treated as an actor crash (supervisor
   * restart + retry). An EventBusError with `retryable === false` (e.g. a
   * DecodeError for a malformed envelope) is dead-lettered without retries.
   */
  run(attempt: number, key: string, signal: AbortSignal): Promise<void>;
}

export interface DeadLetterRequest {
  readonly task: PoolTask;
  readonly key: string;
  readonly error: Error;
  readonly attempts: number;
  /** 'dead-letter' after maxAttempts; 'parked' when the aggregate is parked (park policy). */
  readonly disposition: 'dead-letter' | 'parked';
}

export interface ResolvedPoolOptions {
  readonly topic: string;
  readonly group: string;
  readonly kind: MessageKind;
  readonly actors: number;
  readonly inboxSize: number;
  readonly handlerTimeoutMs: number;
  readonly maxAttempts: number;
  readonly backoff: {
    readonly initialMs: number;
    readonly maxMs: number;
    readonly multiplier: number;
    readonly jitter: number;
  };
  readonly deadLetterPolicy: DeadLetterPolicy;
  /** Where the group starts if it is new (the transport's business; validated here with the rest); undefined: the transport's default. */
  readonly startFrom: StartFrom | undefined;
  /** Call message.working() while a handler runs longer than this (ms). */
  readonly workingIntervalMs: number;
  /**
   * Makes the failed message durable elsewhere (publishes to `<topic>.DLQ` or
   * `<topic>.PARKED` and waits for the broker ack). The pool terms the message
   * only after this resolves; if it rejects, the message stays held (its
   * aggregate waits) and the call is retried with backoff.
   */
  readonly deadLetter: (request: DeadLetterRequest) => Promise<void>;
  readonly metrics: PoolMetrics;
  readonly logger: Logger;
  /** Test seam: clock for backoff sleeps. Default setTimeout. */
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

export interface DrainResult {
  /** Tasks completed during the drain. */
  readonly completed: number;
  /** Tasks still queued or running at the deadline: nak-ed (they will come back). */
  readonly abandoned: number;
}

export interface PoolStats {
  readonly queued: number;
  readonly inFlight: number;
  readonly parkedAggregates: number;
  /**
   * The pool takes nothing more now (freeCapacity() is 0 while accepting):
   * full, or one actor's inbox at its bound. Backpressure in effect.
   */
  readonly intakePaused: boolean;
  readonly restarts: number;
  /** Tasks let go unrun because their partition (lane) was lost. */
  readonly fenced: number;
  /** Timed-out handlers that ignored their abort and never settled: their actors wait. */
  readonly stuckHandlers: number;
  /** Messages whose dead-letter publish keeps failing: held (their aggregates wait), retried. */
  readonly deadLetterFailing: number;
}

export interface ActorPool {
  /** Free slots: pulls are sized to it. 0 while any inbox is over its bound. */
  freeCapacity(): number;
  waitForCapacity(signal: AbortSignal): Promise<void>;
  /** Accepts a task (never refuses; intake respects freeCapacity). */
  submit(task: PoolTask): void;
  /**
   * Graceful stop: accept nothing new, let running/queued tasks finish until
   * `deadline` aborts, then abort running handlers and nak everything unfinished.
   */
  drain(deadline: AbortSignal): Promise<DrainResult>;
  /** Requeue a parked aggregate: clears its parked flag (operator action). */
  unpark(key: string): boolean;
  /** Marks aggregates parked (state restored from the broker at subscribe). */
  restoreParked(parked: ReadonlyMap<string, string>): void;
  /**
   * Starts resuming a parked aggregate: its tasks are held back from now on
   * (neither run nor moved); resolves once every move to the parking place
   * already under way is durable. False when the key is not parked.
   */
  beginResume(key: string): Promise<boolean>;
  /**
   * Ends a resume: unparks the aggregate and queues `replay` (its parked
   * events, oldest first) and then the tasks held back, ahead of anything
   * queued, so they run before the aggregate's newer events.
   */
  finishResume(key: string, replay: readonly PoolTask[]): void;
  /** A resume that failed: the held-back tasks are moved to the parking place. */
  abortResume(key: string): void;
  parkedKeys(): readonly string[];
  stats(): PoolStats;
}

export type { EventBusError };
