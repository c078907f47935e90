/**
 * The keyed actor pool (README.md, Delivery semantics and ordering): routes each task by key to one of a fixed
 * set of actors, so an aggregate's messages are handled one at a time in
 * delivery order while different aggregates run concurrently. It owns the
 * shared bookkeeping: capacity (backpressure), parked aggregates, the single
 * timeout/working sweep, metrics sampling and the graceful drain.
 */
import { BusClosedError, EventBusError, toError } from '../core/errors.ts';
import { actorIndexFor } from '../core/hash.ts';
import type { InboundMessage } from '../core/transport.ts';
import { Actor, type ActorHost } from './actor.ts';
import { abortableSleep, backoffDelay } from './backoff.ts';
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
  /** Parked aggregates and the error that parked them. */
  readonly #parked = new Map<string, Error>();
  /** Tasks of parked aggregates whose move to the parking place is pending. */
  readonly #parking = new Set<PoolTask>();
  /**
   * The same tasks per aggregate, in order: each aggregate's moves run one at
   * a time, so they reach the parking place in order even when one fails and
   * is retried.
   */
  readonly #parkQueues = new Map<string, PoolTask[]>();
  /** Aggregates being resumed → their tasks held back meanwhile (in order). */
  readonly #resuming = new Map<string, PoolTask[]>();
  /** Resolvers waiting for an aggregate's moves to the parking place to finish. */
  readonly #movesDone = new Map<string, Array<() => void>>();
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
    const host: ActorHost = {
      options,
      stopSignal: this.#stop.signal,
      isParked: (key) => this.#parked.size !== 0 && this.#parked.has(key),
      park: (key, error) => {
        this.#parked.set(key, error);
      },
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
      deadLetterFailingChanged: (delta) => {
        this.#deadLetterFailing += delta;
      },
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
    return this.#parked.delete(key);
  }

  restoreParked(parked: ReadonlyMap<string, string>): void {
    for (const [key, reason] of parked) {
      if (!this.#parked.has(key)) {
        this.#parked.set(key, new EventBusError('EVENTBUS_DEAD_LETTER', `parked earlier: ${reason}`));
      }
    }
  }

  beginResume(key: string): Promise<boolean> {
    if (!this.#parked.has(key) || this.#resuming.has(key)) return Promise.resolve(false);
    this.#resuming.set(key, []);
    if (!this.#parkQueues.has(key)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiting = this.#movesDone.get(key) ?? [];
      waiting.push(() => resolve(true));
      this.#movesDone.set(key, waiting);
    });
  }

  finishResume(key: string, replay: readonly PoolTask[]): void {
    const held = this.#resuming.get(key) ?? [];
    this.#resuming.delete(key);
    for (const task of held) this.#parking.delete(task);
    this.#parked.delete(key);
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
    const held = this.#resuming.get(key) ?? [];
    this.#resuming.delete(key);
    for (const task of held) {
      this.#parking.delete(task);
      this.#queueMove(task, key);
    }
  }

  parkedKeys(): readonly string[] {
    return [...this.#parked.keys()];
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
    for (const task of this.#parking) {
      this.#nak(task.message);
      abandoned++;
    }
    this.#parking.clear();
    this.#parkQueues.clear();
    this.#resuming.clear();
    this.#load = 0;
    this.#fullInboxes = 0;
    this.#stop.abort(reason);
    return abandoned;
  }

  #idle(): boolean {
    return this.#load === 0 && this.#parking.size === 0;
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
    const held = this.#resuming.get(key);
    if (held !== undefined) {
      // Being resumed: held back until its parked events are queued ahead of it.
      this.#parking.add(task);
      held.push(task);
      return;
    }
    this.#queueMove(task, key);
  }

  #queueMove(task: PoolTask, key: string): void {
    this.#parking.add(task);
    const queue = this.#parkQueues.get(key);
    if (queue !== undefined) {
      queue.push(task);
      return;
    }
    this.#parkQueues.set(key, [task]);
    void this.#moveParked(key);
  }

  /**
   * Moves an aggregate's parked tasks one after another. A failed move is not
   * nak-ed (the broker would hand it straight back: a loop, and out of order):
   * it is retried with backoff while the task waits, counted and logged.
   * Never rejects.
   */
  async #moveParked(key: string): Promise<void> {
    const { metrics, topic, group, backoff } = this.#options;
    const sleep = this.#options.sleep ?? abortableSleep;
    const queue = this.#parkQueues.get(key) as PoolTask[];
    let failing = false;
    try {
      for (let failures = 0; queue.length > 0; ) {
        const task = queue[0] as PoolTask;
        if (!this.#parking.has(task)) break; // nak-ed at the drain deadline
        const error = new EventBusError('EVENTBUS_DEAD_LETTER', `Aggregate "${key}" is parked`, {
          cause: this.#parked.get(key),
        });
        let failure: Error | undefined;
        try {
          await this.#options.deadLetter({ task, key, error, attempts: 0, disposition: 'parked' });
        } catch (thrown) {
          failure = toError(thrown);
        }
        if (!this.#parking.has(task)) break;
        if (failure === undefined) {
          queue.shift();
          failures = 0;
          if (failing) {
            failing = false;
            this.#deadLetterFailing--;
          }
          this.#parkSettled(task, key);
          continue;
        }
        failures++;
        if (!failing) {
          failing = true;
          this.#deadLetterFailing++;
        }
        this.#safely(() => metrics.deadLetterFailed(), 'Reporting a failed move failed');
        this.#logError(
          { topic, group, key, failures, err: failure },
          'Parking a message failed; it waits (in order) and the move is retried',
        );
        try {
          await sleep(backoffDelay(failures, backoff), this.#stop.signal);
        } catch {
          break; // the drain deadline: everything still parking was nak-ed
        }
      }
    } finally {
      if (failing) this.#deadLetterFailing--;
      this.#parkQueues.delete(key);
      const waiting = this.#movesDone.get(key);
      this.#movesDone.delete(key);
      for (const resolve of waiting ?? []) resolve();
      if (this.#onIdle !== undefined && this.#idle()) this.#onIdle();
    }
  }

  #parkSettled(task: PoolTask, key: string): void {
    this.#parking.delete(task);
    const { metrics, topic, group } = this.#options;
    try {
      task.message.term(`parked: aggregate "${key}" is parked`);
      metrics.deadLettered('parked');
    } catch (error) {
      this.#logError({ topic, group, key, err: toError(error) }, 'Settling a parked message failed');
    } finally {
      // Runs inside a promise reaction: nothing here may throw (no unhandled rejection).
      this.#settled++;
      if (this.#onIdle !== undefined && this.#idle()) this.#onIdle();
    }
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
    return this.#load > 0 || this.#parking.size > 0;
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
