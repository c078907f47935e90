/**
 * Fan-out of PublishResults to the `onPublishResult` callback and to every
 * open `publishResults()` stream. Streams buffer what their reader has not
 * taken yet; that backlog counts against the publish window, so a slow reader
 * slows publishing down instead of growing memory without bound. So that an
 * unread stream never stalls publishing silently, a stream whose backlog
 * reaches half the window logs a warning (once, again only after it drained
 * below a quarter).
 */

import type { Logger } from '../core/logger.ts';
import type { PublishResult, PublishResultStream } from '../core/types.ts';

class ResultStream implements PublishResultStream {
  #buffer: PublishResult[] = [];
  #head = 0;
  #waiting: ((r: IteratorResult<PublishResult>) => void) | undefined;
  #done = false;
  #warned = false;
  readonly #onChange: () => void;
  readonly #onClose: (s: ResultStream) => void;
  readonly #onBacklogHigh: (backlog: number) => void;
  readonly #warnAt: number;

  constructor(
    onChange: () => void,
    onClose: (s: ResultStream) => void,
    warnAt: number,
    onBacklogHigh: (backlog: number) => void,
  ) {
    this.#onChange = onChange;
    this.#onClose = onClose;
    this.#warnAt = warnAt;
    this.#onBacklogHigh = onBacklogHigh;
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
    const backlog = this.backlog;
    if (!this.#warned && backlog >= this.#warnAt) {
      this.#warned = true;
      this.#onBacklogHigh(backlog);
    }
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
      if (this.#warned && this.backlog * 2 < this.#warnAt) this.#warned = false;
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
  readonly #window: number;

  /** `window`: the bus's maxPendingPublishes, which an unread backlog uses up. */
  constructor(callback: ((r: PublishResult) => void) | undefined, logger: Logger, window = Infinity) {
    this.#callback = callback;
    this.#logger = logger;
    this.#window = window;
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
      Math.max(1, Math.floor(this.#window / 2)),
      (backlog) =>
        this.#logger.warn(
          { backlog, maxPendingPublishes: this.#window },
          'publishResults() stream is not being read: its unread results count against the publish window, so publishing waits once maxPendingPublishes is reached; read the stream or close it (break / return)',
        ),
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
