/**
 * Fan-out of PublishResults to the `onPublishResult` callback and to every
 * open `publishResults()` stream. Streams buffer what their reader has not
 * taken yet; that backlog counts against the publish window, so a slow reader
 * slows publishing down instead of growing memory without bound.
 */

import type { Logger } from '../core/logger.ts';
import type { PublishResult, PublishResultStream } from '../core/types.ts';

class ResultStream implements PublishResultStream {
  #buffer: PublishResult[] = [];
  #head = 0;
  #waiting: ((r: IteratorResult<PublishResult>) => void) | undefined;
  #done = false;
  readonly #onChange: () => void;
  readonly #onClose: (s: ResultStream) => void;

  constructor(onChange: () => void, onClose: (s: ResultStream) => void) {
    this.#onChange = onChange;
    this.#onClose = onClose;
  }

  get backlog(): number {
    return this.#buffer.length - this.#head;
  }

  push(result: PublishResult): void {
    if (this.#done) return;
    const waiting = this.#waiting;
    if (waiting) {
      this.#waiting = undefined;
      waiting({ value: result, done: false });
      return;
    }
    this.#buffer.push(result);
  }

  /** Ends the stream after the buffered results were read. */
  end(): void {
    this.#done = true;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.({ value: undefined, done: true });
  }

  close(): void {
    this.#buffer = [];
    this.#head = 0;
    this.end();
    this.#onClose(this);
    this.#onChange();
  }

  #next(): Promise<IteratorResult<PublishResult>> {
    if (this.#head < this.#buffer.length) {
      const value = this.#buffer[this.#head] as PublishResult;
      this.#head++;
      if (this.#head > 1024 && this.#head * 2 > this.#buffer.length) {
        this.#buffer = this.#buffer.slice(this.#head);
        this.#head = 0;
      }
      this.#onChange();
      return Promise.resolve({ value, done: false });
    }
    if (this.#done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => {
      this.#waiting = resolve;
    });
  }

  [Symbol.asyncIterator](): AsyncIterator<PublishResult> {
    return {
      next: () => this.#next(),
      return: () => {
        this.close();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

export class PublishResultHub {
  #streams = new Set<ResultStream>();
  readonly #callback: ((r: PublishResult) => void) | undefined;
  readonly #logger: Logger;
  #onBacklogChange: () => void = () => {};

  constructor(callback: ((r: PublishResult) => void) | undefined, logger: Logger) {
    this.#callback = callback;
    this.#logger = logger;
  }

  set onBacklogChange(fn: () => void) {
    this.#onBacklogChange = fn;
  }

  /** Largest unread backlog of any open stream. */
  maxBacklog(): number {
    let max = 0;
    for (const s of this.#streams) if (s.backlog > max) max = s.backlog;
    return max;
  }

  open(): PublishResultStream {
    const stream = new ResultStream(
      () => this.#onBacklogChange(),
      (s) => this.#streams.delete(s),
    );
    this.#streams.add(stream);
    return stream;
  }

  emit(result: PublishResult): void {
    if (this.#callback) {
      try {
        this.#callback(result);
      } catch (error) {
        // A throwing user callback must not lose the result for other listeners.
        this.#logger.error({ err: error, eventId: result.eventId }, 'onPublishResult callback threw');
      }
    }
    for (const s of this.#streams) s.push(result);
  }

  endAll(): void {
    for (const s of this.#streams) s.end();
    this.#streams.clear();
  }
}
