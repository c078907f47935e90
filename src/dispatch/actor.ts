/**
 * One actor: a FIFO inbox and a loop that runs its tasks strictly one after
 * another, retrying a failed task in place (holding everything behind it)
 * until it succeeds or is given up on.
 *
 * Hot path: per task the loop creates one AbortController, reads the clock
 * twice and `await`s the handler's own promise — no extra promise chain and
 * no timer. Timeouts come from the pool's shared sweep, which calls `sweep()`.
 *
 * Loops are identified by an epoch. Whenever a loop must be abandoned while
 * it waits (handler timed out, actor crashed, drain deadline), the epoch is
 * bumped; the old loop notices after its `await` and returns without touching
 * anything, and a fresh loop (if any) takes over the held task.
 *
 * A timed-out handler is aborted, but the fresh loop starts only once the
 * old execution has settled (stuck-watch.ts). Whether a failed task is
 * retried, and how it is given up on, is failure-policy.ts.
 *
 * Why this file stays a little over 400 lines: what is left is one state
 * machine, the epoch protocol over the held task; every step reads and resets
 * the same fields, and spread over files they could no longer be seen together.
 */
import { HandlerTimeoutError, toError } from '../core/errors.ts';
import { abortableSleep, backoffDelay } from './backoff.ts';
import { giveUp, shouldRetry } from './failure-policy.ts';
import { Inbox } from './inbox.ts';
import { StuckWatch } from './stuck-watch.ts';
import type { PoolTask, ResolvedPoolOptions } from './types.ts';

/** What an actor needs from its pool. */
export interface ActorHost {
  readonly options: ResolvedPoolOptions;
  /** Aborted at the drain deadline: cancels backoff sleeps. */
  readonly stopSignal: AbortSignal;
  isParked(key: string): boolean;
  park(key: string, error: Error): void;
  /** Takes a task of a parked aggregate off the actor (it must not hold the actor). */
  divert(task: PoolTask, key: string): void;
  /**
   * A task whose lane this member no longer owns left the actor unrun and
   * unsettled: the lane's new owner (or this member after a rewind) has it.
   */
  fenced(task: PoolTask): void;
  /** A held task left the actor, settled (acked, termed, or nak-ed after a crash while giving up). */
  released(): void;
  /** +1 when a timed-out handler is found stuck (never settled), -1 when it settles or is let go. */
  stuckChanged(delta: 1 | -1): void;
  /** +1 when an actor starts waiting on a failing dead-letter publish, -1 when that ends. */
  deadLetterFailingChanged(delta: 1 | -1): void;
  /** The inbox dropped below its bound. */
  inboxBelowBound(): void;
  restarted(): void;
}

export class Actor {
  readonly #host: ActorHost;
  readonly #options: ResolvedPoolOptions;
  readonly #sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  readonly #inbox: Inbox;
  /** A loop is running or scheduled. */
  #active = false;
  #epoch = 0;

  // The held task (running, backing off, or being dead-lettered).
  #task: PoolTask | undefined;
  #key = '';
  #attempts = 0;
  /** task.run was called and its promise has not settled. */
  #inAttempt = false;
  /** Failure of the latest attempt, awaiting the retry decision. */
  #error: Error | undefined;
  /** The latest failure was a crash: retried even for raw or non-retryable failures. */
  #crashed = false;
  #firstStartedAt = 0;
  /** performance.now() when the running attempt started; 0 when no handler runs. */
  #runStartedAt = 0;
  /** When the broker last heard about this message (delivery or working()). */
  #aliveAt = 0;
  #controller: AbortController | undefined;
  /** The running attempt's promise: after a timeout, the next start waits for it to settle. */
  #pending: Promise<void> | undefined;
  /** A timed-out execution this actor waits for. */
  readonly #stuck: StuckWatch;
  /** The held task's dead-letter publish is failing; it is being retried. */
  #deadLetterFailing = false;

  constructor(host: ActorHost) {
    this.#host = host;
    this.#options = host.options;
    this.#sleep = host.options.sleep ?? abortableSleep;
    this.#inbox = new Inbox(host.options.inboxSize);
    this.#stuck = new StuckWatch(host, () => this.#logFields());
  }

  get queued(): number {
    return this.#inbox.length;
  }

  get holding(): boolean {
    return this.#task !== undefined;
  }

  push(task: PoolTask, key: string, stamp: number): void {
    this.#inbox.push(task, key, stamp);
    if (!this.#active) {
      this.#active = true;
      // Start on a microtask: submit stays cheap and never runs user code
      // re-entrantly, and a delivered batch is queued before it is worked on.
      queueMicrotask(this.#kick);
    }
  }

  /** Queues tasks ahead of everything queued, in the given order (see ActorPool.finishResume). */
  pushFront(tasks: readonly PoolTask[], key: string, stamp: number): void {
    for (let i = tasks.length - 1; i >= 0; i--) this.#inbox.unshift(tasks[i] as PoolTask, key, stamp);
    if (!this.#active && tasks.length > 0) {
      this.#active = true;
      queueMicrotask(this.#kick);
    }
  }

  /**
   * Called by the pool's sweep (one timer per pool): times out a handler that
   * ran too long, and tells the broker that held and queued messages are
   * still being worked on so it does not redeliver them.
   */
  sweep(now: number): void {
    const workingMs = this.#options.workingIntervalMs;
    const task = this.#task;
    if (task !== undefined) {
      if (this.#runStartedAt > 0 && now - this.#runStartedAt >= this.#options.handlerTimeoutMs) {
        this.#timeout(now);
      } else {
        this.#stuck.check(now);
      }
      if (now - this.#aliveAt >= workingMs) {
        this.#aliveAt = now;
        task.message.working();
      }
    }
    if (this.#inbox.length > 0) this.#inbox.touchOlderThan(now - workingMs, now, signalWorking);
  }

  /**
   * Drain deadline: stop the loop, abort the running handler and hand back
   * every unfinished task (held first, then queued, in order) for nak-ing.
   */
  abandon(reason: Error): PoolTask[] {
    this.#epoch++;
    this.#active = false;
    const out: PoolTask[] = [];
    const task = this.#task;
    if (task !== undefined) {
      const controller = this.#controller;
      this.#clear();
      out.push(task);
      controller?.abort(reason);
    }
    for (const queued of this.#inbox.clear()) out.push(queued);
    return out;
  }

  readonly #kick = (): void => {
    if (this.#active) void this.#run(this.#epoch);
  };

  readonly #restart = (epoch: number): void => {
    if (epoch === this.#epoch && this.#active) void this.#run(epoch);
  };

  /** Never rejects: every throw lands in the supervisor (#crash). */
  async #run(epoch: number): Promise<void> {
    try {
      while (epoch === this.#epoch) {
        if (this.#task === undefined && !this.#takeNext()) {
          this.#active = false;
          return;
        }
        const task = this.#task as PoolTask;
        if (this.#error !== undefined) {
          // Lost the lane while failing: neither retry nor dead-letter it here,
          // the new owner handles it from the broker's copy.
          if (!mayStart(task)) {
            this.#fence(task);
            continue;
          }
          if (!shouldRetry(this.#options, this.#attempts, this.#crashed, this.#error)) {
            await this.#giveUp(epoch, task, this.#error);
            continue;
          }
          // Only envelopes back off; a crashed raw task is retried at once.
          if (this.#options.kind === 'envelope') {
            const delay = backoffDelay(this.#attempts, this.#options.backoff);
            if (delay > 0) {
              try {
                await this.#sleep(delay, this.#host.stopSignal);
              } catch {
                // Aborted by the drain deadline, which also abandoned this task.
              }
              if (epoch !== this.#epoch) return;
            }
          }
          this.#error = undefined;
          this.#crashed = false;
          if (!mayStart(task)) {
            this.#fence(task);
            continue;
          }
        }
        this.#attempts++;
        const controller = new AbortController();
        this.#controller = controller;
        const startedAt = performance.now();
        if (this.#attempts === 1) this.#firstStartedAt = startedAt;
        this.#runStartedAt = startedAt;
        this.#inAttempt = true;
        // A synchronous throw here is a crash: it leaves through the outer catch.
        const pending = task.run(this.#attempts, this.#key, controller.signal);
        this.#pending = pending;
        try {
          await pending;
        } catch (error) {
          if (epoch !== this.#epoch) return; // timed out or abandoned meanwhile
          this.#endAttempt();
          this.#failed(toError(error), false);
          continue;
        }
        if (epoch !== this.#epoch) return;
        this.#endAttempt();
        this.#succeeded(task);
      }
    } catch (error) {
      this.#crash(epoch, error);
    }
  }

  #takeNext(): boolean {
    const inbox = this.#inbox;
    for (let task = inbox.peek(); task !== undefined; task = inbox.peek()) {
      const key = inbox.headKey();
      const stamp = inbox.headStamp();
      inbox.shift();
      if (inbox.length === this.#options.inboxSize - 1) this.#host.inboxBelowBound();
      if (this.#host.isParked(key)) {
        // Checked at dequeue, not at submit, so an aggregate's messages reach
        // the parking place in order, including those queued before it parked.
        this.#host.divert(task, key);
        continue;
      }
      if (!mayStart(task)) {
        this.#host.fenced(task);
        continue;
      }
      this.#task = task;
      this.#key = key;
      this.#attempts = 0;
      this.#aliveAt = stamp;
      return true;
    }
    return false;
  }

  #succeeded(task: PoolTask): void {
    const seconds = (performance.now() - this.#firstStartedAt) / 1000;
    this.#release();
    task.message.ack();
    this.#options.metrics.messageProcessed(true, seconds);
  }

  #failed(error: Error, crashed: boolean): void {
    this.#error = error;
    this.#crashed = crashed;
    this.#options.logger.debug(
      { ...this.#logFields(), attempt: this.#attempts, err: error },
      'Handler attempt failed',
    );
  }

  #giveUp(epoch: number, task: PoolTask, error: Error): Promise<void> {
    const actor = {
      host: this.#host,
      sleep: this.#sleep,
      key: this.#key,
      attempts: this.#attempts,
      firstStartedAt: this.#firstStartedAt,
      current: () => epoch === this.#epoch,
      release: () => this.#release(),
      deadLetterFailing: (failing: boolean) => this.#setDeadLetterFailing(failing),
      logFields: () => this.#logFields(),
    };
    return giveUp(actor, task, error);
  }

  /** Supervisor: a crash outside the handler's promise restarts the actor. */
  #crash(epoch: number, thrown: unknown): void {
    if (epoch !== this.#epoch) return; // a detached loop: its task is someone else's now
    this.#epoch++;
    try {
      const error = toError(thrown);
      const task = this.#task;
      if (task !== undefined) {
        // Every crash counts as an attempt, so a task that always crashes
        // still ends in the dead letter instead of restarting forever.
        if (this.#inAttempt) {
          this.#endAttempt();
          this.#controller?.abort(error);
        } else {
          this.#attempts++;
        }
        if (this.#attempts > this.#options.maxAttempts) {
          // Crashed while giving up: let the broker have it back.
          this.#release();
          task.message.nak();
        } else {
          this.#error = error;
          this.#crashed = true;
        }
      }
      this.#host.restarted();
      this.#options.logger.error(
        { ...this.#logFields(), attempts: this.#attempts, err: error },
        'Actor crashed; restarting it',
      );
    } catch (secondary) {
      try {
        this.#options.logger.error({ err: toError(secondary) }, 'Actor supervisor failed');
      } catch {
        // Nothing left to report to; the restart below still happens.
      }
    }
    // On the next turn of the event loop: a crash loop must not starve I/O.
    setImmediate(this.#restart, this.#epoch);
  }

  /**
   * Handler timeout (from the sweep): abort it and detach the loop waiting
   * for it. A fresh loop decides on retry or dead letter, but only once the
   * timed-out execution has settled: a handler that ignores its signal must
   * not run alongside its own retry (or the aggregate's next event).
   */
  #timeout(now: number): void {
    const error = new HandlerTimeoutError(this.#options.handlerTimeoutMs);
    const controller = this.#controller;
    const pending = this.#pending;
    this.#epoch++;
    const epoch = this.#epoch;
    this.#endAttempt();
    this.#error = error;
    this.#crashed = false;
    if (pending === undefined) {
      setImmediate(this.#restart, epoch);
    } else {
      // Registered first, so nothing below (abort listeners, logging) can strand the actor.
      this.#stuck.wait(pending, now);
      const resume = (): void => this.#timedOutSettled(pending, epoch);
      pending.then(resume, resume);
    }
    controller?.abort(error);
    this.#failed(error, false);
  }

  #timedOutSettled(pending: Promise<void>, epoch: number): void {
    if (!this.#stuck.settled(pending)) return; // let go meanwhile (drain deadline)
    // On the next turn: the settling handler's own continuations run first.
    setImmediate(this.#restart, epoch);
  }

  #setDeadLetterFailing(failing: boolean): void {
    if (this.#deadLetterFailing === failing) return;
    this.#deadLetterFailing = failing;
    this.#host.deadLetterFailingChanged(failing ? 1 : -1);
  }

  #endAttempt(): void {
    this.#inAttempt = false;
    this.#runStartedAt = 0;
  }

  #release(): void {
    this.#clear();
    this.#host.released();
  }

  /** The held task's lane was lost: let it go without running or settling it. */
  #fence(task: PoolTask): void {
    this.#clear();
    this.#host.fenced(task);
  }

  #clear(): void {
    this.#task = undefined;
    this.#controller = undefined;
    this.#pending = undefined;
    this.#stuck.stop();
    this.#setDeadLetterFailing(false);
    this.#error = undefined;
    this.#crashed = false;
    this.#attempts = 0;
    this.#inAttempt = false;
    this.#runStartedAt = 0;
  }

  #logFields(): Record<string, unknown> {
    return { topic: this.#options.topic, group: this.#options.group, key: this.#key };
  }
}

function mayStart(task: PoolTask): boolean {
  const lane = task.message.lane;
  return lane === undefined || lane.mayStart();
}

function signalWorking(task: PoolTask): void {
  task.message.working();
}
