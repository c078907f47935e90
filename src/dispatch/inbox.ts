/**
 * An actor's FIFO inbox: a growable ring buffer over parallel arrays, so
 * enqueueing a task allocates nothing (no node, no tuple) once warmed up.
 * It is not bounded itself: the pool never refuses a task (a refused message
 * would be redelivered after later ones of its aggregate); intake is bounded
 * through the pool's freeCapacity instead.
 */
import type { PoolTask } from './types.ts';

export class Inbox {
  #tasks: Array<PoolTask | undefined>;
  #keys: string[];
  /** Coarse time the message was enqueued or last reported as being worked on. */
  #stamps: number[];
  #head = 0;
  #length = 0;
  #mask: number;

  constructor(initialCapacity: number) {
    let capacity = 4;
    while (capacity < initialCapacity) capacity *= 2;
    this.#tasks = new Array<PoolTask | undefined>(capacity).fill(undefined);
    this.#keys = new Array<string>(capacity).fill('');
    this.#stamps = new Array<number>(capacity).fill(0);
    this.#mask = capacity - 1;
  }

  get length(): number {
    return this.#length;
  }

  push(task: PoolTask, key: string, stamp: number): void {
    if (this.#length > this.#mask) this.#grow();
    const slot = (this.#head + this.#length) & this.#mask;
    this.#tasks[slot] = task;
    this.#keys[slot] = key;
    this.#stamps[slot] = stamp;
    this.#length++;
  }

  /** Puts a task at the head (it is taken next): a resumed aggregate's replay goes before everything queued. */
  unshift(task: PoolTask, key: string, stamp: number): void {
    if (this.#length > this.#mask) this.#grow();
    this.#head = (this.#head - 1) & this.#mask;
    this.#tasks[this.#head] = task;
    this.#keys[this.#head] = key;
    this.#stamps[this.#head] = stamp;
    this.#length++;
  }

  /** Task at the head; undefined when empty. Use headKey/headStamp before shift(). */
  peek(): PoolTask | undefined {
    return this.#length === 0 ? undefined : this.#tasks[this.#head];
  }

  headKey(): string {
    return this.#keys[this.#head] ?? '';
  }

  headStamp(): number {
    return this.#stamps[this.#head] ?? 0;
  }

  shift(): void {
    if (this.#length === 0) return;
    this.#tasks[this.#head] = undefined; // let the message be collected
    this.#head = (this.#head + 1) & this.#mask;
    this.#length--;
  }

  /**
   * Calls `fn` for every queued message whose stamp is at or before `olderThan`
   * and restamps it with `now`. Used by the sweep to keep queued messages alive.
   */
  touchOlderThan(olderThan: number, now: number, fn: (task: PoolTask) => void): void {
    for (let i = 0; i < this.#length; i++) {
      const slot = (this.#head + i) & this.#mask;
      if ((this.#stamps[slot] ?? 0) > olderThan) continue;
      this.#stamps[slot] = now;
      const task = this.#tasks[slot];
      if (task !== undefined) fn(task);
    }
  }

  /** Empties the inbox, returning what was queued in order. */
  clear(): PoolTask[] {
    const out: PoolTask[] = [];
    while (this.#length > 0) {
      const task = this.#tasks[this.#head];
      if (task !== undefined) out.push(task);
      this.shift();
    }
    return out;
  }

  #grow(): void {
    const capacity = (this.#mask + 1) * 2;
    const tasks = new Array<PoolTask | undefined>(capacity).fill(undefined);
    const keys = new Array<string>(capacity).fill('');
    const stamps = new Array<number>(capacity).fill(0);
    for (let i = 0; i < this.#length; i++) {
      const slot = (this.#head + i) & this.#mask;
      tasks[i] = this.#tasks[slot];
      keys[i] = this.#keys[slot] ?? '';
      stamps[i] = this.#stamps[slot] ?? 0;
    }
    this.#tasks = tasks;
    this.#keys = keys;
    this.#stamps = stamps;
    this.#head = 0;
    this.#mask = capacity - 1;
  }
}
