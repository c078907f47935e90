/**
 * The keyed actor pool (README.md, Delivery semantics and ordering): routes each task by key to one of a fixed
 * set of actors, so an aggregate's messages are handled one at a time in
 * delivery order while different aggregates run concurrently. It owns the
 * shared bookkeeping: capacity (backpressure), the single timeout/working
 * sweep, metrics sampling and the graceful drain. Parked aggregates (moves to
 * the parking place, resume) are kept in parking.ts.
 */
import { BusClosedError, toError } from '../core/errors.ts';
import { actorIndexFor } from '../core/hash.ts';
import type { InboundMessage } from '../core/transport.ts';
import { Actor, type ActorHost } from './actor.ts';
import { ParkedAggregates } from './parking.ts';
import { Sweep, sweepPeriodMs } from './sweep.ts';
import type { ActorPool, DrainResult, PoolStats, PoolTask, ResolvedPoolOptions } from './types.ts';

/** inboxDepth is sampled on every sweep tick and after this many submits (a power of two, minus one). */
const depthSampleMask = 1023;

interface CapacityWaiter {
  readonly resolve: () => void;
  readonly signal: AbortSignal;
  readonly onAbort: () => void;
}

export function createActorPool(options: ResolvedPoolOptions): ActorPool {
  return new KeyedActorPool(options);
}

class KeyedActorPool implements ActorPool {
  readonly #options: ResolvedPoolOptions;
  readonly #actors: Actor[];
  readonly #capacity: number;
  readonly #sweep: Sweep;
  /** Aborted at the drain deadline: cancels backoff sleeps. */
  readonly #stop = new AbortController();
  readonly #parked: ParkedAggregates;
  #accepting = true;
  /** Tasks on the actors: queued plus held. */
  #load = 0;
  /** Actors whose inbox is at or over inboxSize. */
  #fullInboxes = 0;
  #roundRobin = 0;
  #submitted = 0;
  /** Tasks the pool finished (acked, termed, or nak-ed after a failed dead-letter). */
  #settled = 0;
  #restarts = 0;
  /** Timed-out handlers that never settled (their actors wait). */
  #stuck = 0;
  /** Actors waiting on a failing dead-letter publish. */
  #deadLetterFailing = 0;
  /** Tasks let go unrun because their lane was lost (handoff, lease, rewind). */
  #fenced = 0;
  /** Coarse clock for inbox stamps: refreshed when the sweep starts and on each tick. */
  #clock = 0;
  #waiters: CapacityWaiter[] = [];
  #draining: Promise<DrainResult> | undefined;
  #onIdle: (() => void) | undefined;

  constructor(options: ResolvedPoolOptions) {
    this.#options = options;
    this.#capacity = options.actors * options.inboxSize;
    this.#sweep = new Sweep(sweepPeriodMs(options.handlerTimeoutMs, options.workingIntervalMs), this.#tick);
    const deadLetterFailingChanged = (delta: 1 | -1): void => {
      this.#deadLetterFailing += delta;
    };
    this.#parked = new ParkedAggregates({
      options,
      stopSignal: this.#stop.signal,
      deadLetterFailingChanged,
      settled: () => {
        this.#settled++;
        if (this.#onIdle !== undefined && this.#idle()) this.#onIdle();
      },
      movesEnded: () => {
        if (this.#onIdle !== undefined && this.#idle()) this.#onIdle();
      },
      safely: (report, message) => this.#safely(report, message),
      logError: (fields, message) => this.#logError(fields, message),
    });
    const parked = this.#parked;
    const host: ActorHost = {
      options,
      stopSignal: this.#stop.signal,
      isParked: (key) => parked.isParked(key),
      park: (key, error) => parked.park(key, error),
      divert: (task, key) => this.#divert(task, key),
      released: () => this.#released(),
      fenced: (task) => {
        this.#fenced++;
        this.#released();
        try {
          task.message.lane?.dropped(task.message);
        } catch (error) {
          const { topic, group } = options;
          this.#logError({ topic, group, err: toError(error) }, 'Dropping a fenced message failed');
        }
      },
      inboxBelowBound: () => {
        this.#fullInboxes--;
        if (this.#waiters.length !== 0) this.#wakeWaiters();
      },
      stuckChanged: (delta) => {
        this.#stuck += delta;
        this.#safely(() => options.metrics.stuckHandlers(this.#stuck), 'Reporting stuck handlers failed');
      },
      deadLetterFailingChanged,
      restarted: () => {
        this.#restarts++;
        options.metrics.actorRestarted();
      },
    };
    this.#actors = Array.from({ length: options.actors }, () => new Actor(host));
  }

  freeCapacity(): number {
    if (!this.#accepting || this.#fullInboxes > 0) return 0;
    return Math.max(0, this.#capacity - this.#load);
  }

  waitForCapacity(signal: AbortSignal): Promise<void> {
    if (signal.aborted || this.freeCapacity() > 0) return Promise.resolve();
    // No polling: waiters are woken when tasks leave the actors.
    return new Promise((resolve) => {
      const onAbort = (): void => {
        const index = this.#waiters.indexOf(waiter);
        if (index !== -1) this.#waiters.splice(index, 1);
        resolve();
      };
      const waiter: CapacityWaiter = { resolve, signal, onAbort };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  submit(task: PoolTask): void {
    if (!this.#accepting) {
      // Draining: not ours to process any more; the broker will redeliver it.
      this.#nak(task.message);
      return;
    }
    const key = task.key ?? `rr-${this.#roundRobin++}`;
    const actor = this.#actors[actorIndexFor(key, this.#actors.length)] as Actor;
    if (!this.#sweep.running) {
      this.#clock = performance.now();
      this.#sweep.ensureRunning();
    }
    this.#load++;
    actor.push(task, key, this.#clock);
    if (actor.queued === this.#options.inboxSize) this.#fullInboxes++;
    this.#options.metrics.messageSent();
    if ((++this.#submitted & depthSampleMask) === 0) this.#reportDepth();
  }

  drain(deadline: AbortSignal): Promise<DrainResult> {
    this.#draining ??= this.#startDrain(deadline);
    return this.#draining;
  }

  unpark(key: string): boolean {
    return this.#parked.unpark(key);
  }

  restoreParked(parked: ReadonlyMap<string, string>): void {
    this.#parked.restore(parked);
  }

  beginResume(key: string): Promise<boolean> {
    return this.#parked.beginResume(key);
  }

  finishResume(key: string, replay: readonly PoolTask[]): void {
    const held = this.#parked.endResume(key);
    const tasks = [...replay, ...held];
    if (tasks.length === 0) return;
    const actor = this.#actors[actorIndexFor(key, this.#actors.length)] as Actor;
    if (!this.#sweep.running) {
      this.#clock = performance.now();
      this.#sweep.ensureRunning();
    }
    const wasFull = actor.queued >= this.#options.inboxSize;
    this.#load += tasks.length;
    actor.pushFront(tasks, key, this.#clock);
    if (!wasFull && actor.queued >= this.#options.inboxSize) this.#fullInboxes++;
  }

  abortResume(key: string): void {
    this.#parked.abortResume(key);
  }

  parkedKeys(): readonly string[] {
    return this.#parked.keys();
  }

  stats(): PoolStats {
    let queued = 0;
    let inFlight = 0;
    for (const actor of this.#actors) {
      queued += actor.queued;
      if (actor.holding) inFlight++;
    }
    return {
      queued,
      inFlight,
      parkedAggregates: this.#parked.size,
      intakePaused: this.#accepting && this.freeCapacity() === 0,
      restarts: this.#restarts,
      fenced: this.#fenced,
      stuckHandlers: this.#stuck,
      deadLetterFailing: this.#deadLetterFailing,
    };
  }

  #startDrain(deadline: AbortSignal): Promise<DrainResult> {
    this.#accepting = false;
    const settledBefore = this.#settled;
    return new Promise<DrainResult>((resolve) => {
      const finish = (abandoned: number): void => {
        this.#onIdle = undefined;
        deadline.removeEventListener('abort', onDeadline);
        resolve({ completed: this.#settled - settledBefore, abandoned });
        this.#sweep.stop();
        this.#reportDepth();
      };
      const onDeadline = (): void => finish(this.#abandonAll(deadline.reason));
      if (this.#idle()) {
        finish(0);
      } else if (deadline.aborted) {
        onDeadline();
      } else {
        this.#onIdle = () => finish(0);
        deadline.addEventListener('abort', onDeadline, { once: true });
      }
    });
  }

  /** Nak everything unfinished and stop every loop; returns how many were nak-ed. */
  #abandonAll(deadlineReason: unknown): number {
    const reason = new BusClosedError('Drain deadline reached: the subscription is shutting down', {
      cause: deadlineReason,
    });
    let abandoned = 0;
    for (const actor of this.#actors) {
      for (const task of actor.abandon(reason)) {
        this.#nak(task.message);
        abandoned++;
      }
    }
    abandoned += this.#parked.abandon((task) => this.#nak(task.message));
    this.#load = 0;
    this.#fullInboxes = 0;
    this.#stop.abort(reason);
    return abandoned;
  }

  #idle(): boolean {
    return this.#load === 0 && this.#parked.moving === 0;
  }

  #released(): void {
    this.#load--;
    this.#settled++;
    if (this.#waiters.length !== 0) this.#wakeWaiters();
    if (this.#onIdle !== undefined && this.#idle()) this.#onIdle();
  }

  #wakeWaiters(): void {
    if (this.freeCapacity() === 0) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) {
      waiter.signal.removeEventListener('abort', waiter.onAbort);
      waiter.resolve();
    }
  }

  /**
   * A task of a parked aggregate: moved to the parking place (`<topic>.PARKED`)
   * and termed once that is durable. It leaves the actor at once, so it holds
   * neither the actor nor (on JetStream) the ack floor.
   */
  #divert(task: PoolTask, key: string): void {
    this.#load--;
    if (this.#waiters.length !== 0) this.#wakeWaiters();
    this.#parked.divert(task, key);
  }

  readonly #tick = (): boolean => {
    try {
      const now = performance.now();
      this.#clock = now;
      if (this.#load > 0) for (const actor of this.#actors) actor.sweep(now);
      this.#reportDepth();
    } catch (error) {
      // A timer callback must never throw: that would kill the process.
      const { topic, group } = this.#options;
      this.#logError({ topic, group, err: toError(error) }, 'Actor pool sweep failed');
    }
    return this.#load > 0 || this.#parked.moving > 0;
  };

  /** Sampled, never per message. Metrics must not break dispatch, so a throw is only logged. */
  #reportDepth(): void {
    let queued = 0;
    for (const actor of this.#actors) queued += actor.queued;
    try {
      this.#options.metrics.inboxDepth(queued, queued / this.#capacity);
    } catch (error) {
      const { topic, group } = this.#options;
      this.#logError({ topic, group, err: toError(error) }, 'Reporting inbox depth failed');
    }
  }

  #nak(message: InboundMessage): void {
    try {
      message.nak();
    } catch (error) {
      const { topic, group } = this.#options;
      this.#logError({ topic, group, err: toError(error) }, 'Nak failed');
    }
  }

  #safely(report: () => void, message: string): void {
    try {
      report();
    } catch (error) {
      const { topic, group } = this.#options;
      this.#logError({ topic, group, err: toError(error) }, message);
    }
  }

  /** Called from timers and promise reactions, where a throwing logger must not escape. */
  #logError(fields: object, message: string): void {
    try {
      this.#options.logger.error(fields, message);
    } catch {
      // Nowhere left to report it.
    }
  }
}
