/**
 * LISTEN for commits of `outbox.add`, so rows go out right after their
 * transaction commits instead of at the next poll. A lost connection is
 * logged once and the relay polls until the next tick listens again.
 */
import { toError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { RelayStore } from './types.ts';

export class CommitListener {
  readonly #relayId: string;
  readonly #store: RelayStore;
  readonly #logger: Logger;
  readonly #onCommit: () => void;
  readonly #running: () => boolean;
  #unlisten: (() => Promise<void>) | undefined;
  #starting = false;

  constructor(
    relayId: string,
    store: RelayStore,
    logger: Logger,
    onCommit: () => void,
    running: () => boolean,
  ) {
    this.#relayId = relayId;
    this.#store = store;
    this.#logger = logger;
    this.#onCommit = onCommit;
    this.#running = running;
  }

  get listening(): boolean {
    return this.#unlisten !== undefined;
  }

  /** Listens unless already listening (or starting to). Never rejects. */
  async ensure(): Promise<void> {
    if (this.#unlisten !== undefined || this.#starting) return;
    this.#starting = true;
    try {
      const unlisten = await this.#store.listen(
        () => this.#onCommit(),
        (error) => {
          this.#unlisten = undefined;
          if (this.#running()) {
            this.#logger.warn(
              { relayId: this.#relayId, err: error },
              'Outbox relay: LISTEN connection lost; polling until it is back',
            );
          }
        },
      );
      if (this.#running()) this.#unlisten = unlisten;
      else await unlisten().catch(() => {});
    } catch (error) {
      this.#logger.warn(
        { relayId: this.#relayId, err: toError(error) },
        'Outbox relay: LISTEN failed; relying on polling and notify()',
      );
    } finally {
      this.#starting = false;
    }
  }

  /** Stops listening; never rejects. */
  stop(): Promise<void> {
    const unlisten = this.#unlisten;
    this.#unlisten = undefined;
    return unlisten?.().catch(() => {}) ?? Promise.resolve();
  }
}
