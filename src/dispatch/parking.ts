/**
 * The pool's parked aggregates (the `park` dead-letter policy, and resume).
 * An aggregate is parked when one of its events is given up on; its later
 * tasks are then moved to the parking place (`<topic>.PARKED`) and termed
 * once that is durable, one aggregate's moves one at a time so they arrive
 * in order. A resume holds the aggregate's tasks back while its parked
 * events are read, then hands them to the pool to queue behind the replay.
 */
import { EventBusError, toError } from '../core/errors.ts';
import { abortableSleep, backoffDelay } from './backoff.ts';
import type { PoolTask, ResolvedPoolOptions } from './types.ts';

/** What the parking place needs from its pool. */
export interface ParkingHost {
  readonly options: ResolvedPoolOptions;
  /** Aborted at the drain deadline: cancels backoff sleeps. */
  readonly stopSignal: AbortSignal;
  /** +1 when an aggregate's move starts failing, -1 when that ends. */
  deadLetterFailingChanged(delta: 1 | -1): void;
  /** A moved task was termed (or terming it failed): one more task the pool finished. */
  settled(): void;
  /** An aggregate's moves ended: the pool may have gone idle. */
  movesEnded(): void;
  /** Runs a metrics report; a throw is only logged. */
  safely(report: () => void, message: string): void;
  /** Logs without ever throwing (timers, promise reactions). */
  logError(fields: object, message: string): void;
}

export class ParkedAggregates {
  readonly #host: ParkingHost;
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

  constructor(host: ParkingHost) {
    this.#host = host;
  }

  /** Parked aggregates. */
  get size(): number {
    return this.#parked.size;
  }

  /** Tasks whose move to the parking place (or resume) is pending. */
  get moving(): number {
    return this.#parking.size;
  }

  isParked(key: string): boolean {
    return this.#parked.size !== 0 && this.#parked.has(key);
  }

  park(key: string, error: Error): void {
    this.#parked.set(key, error);
  }

  unpark(key: string): boolean {
    return this.#parked.delete(key);
  }

  restore(parked: ReadonlyMap<string, string>): void {
    for (const [key, reason] of parked) {
      if (!this.#parked.has(key)) {
        this.#parked.set(key, new EventBusError('EVENTBUS_DEAD_LETTER', `parked earlier: ${reason}`));
      }
    }
  }

  keys(): readonly string[] {
    return [...this.#parked.keys()];
  }

  /** A task of a parked aggregate, already off its actor. */
  divert(task: PoolTask, key: string): void {
    const held = this.#resuming.get(key);
    if (held !== undefined) {
      // Being resumed: held back until its parked events are queued ahead of it.
      this.#parking.add(task);
      held.push(task);
      return;
    }
    this.#queueMove(task, key);
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

  /** Unparks the aggregate; returns the tasks held back during the resume (in order), for the pool to queue. */
  endResume(key: string): PoolTask[] {
    const held = this.#resuming.get(key) ?? [];
    this.#resuming.delete(key);
    for (const task of held) this.#parking.delete(task);
    this.#parked.delete(key);
    return held;
  }

  abortResume(key: string): void {
    const held = this.#resuming.get(key) ?? [];
    this.#resuming.delete(key);
    for (const task of held) {
      this.#parking.delete(task);
      this.#queueMove(task, key);
    }
  }

  /** Drain deadline: hands every task still moving (or held) to `nak` and forgets them; returns how many. */
  abandon(nak: (task: PoolTask) => void): number {
    let abandoned = 0;
    for (const task of this.#parking) {
      nak(task);
      abandoned++;
    }
    this.#parking.clear();
    this.#parkQueues.clear();
    this.#resuming.clear();
    return abandoned;
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
    const host = this.#host;
    const { metrics, topic, group, backoff } = host.options;
    const sleep = host.options.sleep ?? abortableSleep;
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
          await host.options.deadLetter({ task, key, error, attempts: 0, disposition: 'parked' });
        } catch (thrown) {
          failure = toError(thrown);
        }
        if (!this.#parking.has(task)) break;
        if (failure === undefined) {
          queue.shift();
          failures = 0;
          if (failing) {
            failing = false;
            host.deadLetterFailingChanged(-1);
          }
          this.#parkSettled(task, key);
          continue;
        }
        failures++;
        if (!failing) {
          failing = true;
          host.deadLetterFailingChanged(1);
        }
        host.safely(() => metrics.deadLetterFailed(), 'Reporting a failed move failed');
        host.logError(
          { topic, group, key, failures, err: failure },
          'Parking a message failed; it waits (in order) and the move is retried',
        );
        try {
          await sleep(backoffDelay(failures, backoff), host.stopSignal);
        } catch {
          break; // the drain deadline: everything still parking was nak-ed
        }
      }
    } finally {
      if (failing) host.deadLetterFailingChanged(-1);
      this.#parkQueues.delete(key);
      const waiting = this.#movesDone.get(key);
      this.#movesDone.delete(key);
      for (const resolve of waiting ?? []) resolve();
      host.movesEnded();
    }
  }

  #parkSettled(task: PoolTask, key: string): void {
    this.#parking.delete(task);
    const { metrics, topic, group } = this.#host.options;
    try {
      task.message.term(`parked: aggregate "${key}" is parked`);
      metrics.deadLettered('parked');
    } catch (error) {
      this.#host.logError({ topic, group, key, err: toError(error) }, 'Settling a parked message failed');
    } finally {
      // Runs inside a promise reaction: nothing here may throw (no unhandled rejection).
      this.#host.settled();
    }
  }
}
