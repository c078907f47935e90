/**
 * The relay's database writes (marks, releases, renewals) run one at a time,
 * in the order they were asked for, so the relay's own statements never
 * deadlock each other on the rows they share.
 */
export class SerialWrites {
  #chain: Promise<unknown> = Promise.resolve();
  readonly #refuse: () => boolean;

  /** `refuse()` true: writes not started yet fail instead of running (the relay was aborted). */
  constructor(refuse: () => boolean) {
    this.#refuse = refuse;
  }

  enqueue<T>(op: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(() => {
      if (this.#refuse()) throw new Error('Outbox relay aborted');
      return op();
    });
    this.#chain = run.then(
      () => {},
      () => {},
    );
    return run;
  }

  /** Resolves when every write enqueued so far has finished (never rejects). */
  idle(): Promise<unknown> {
    return this.#chain;
  }
}
