/**
 * Reads one consumer's delivered sequence for its pull ledger (see
 * PullLedger.settle in pull-ledger.ts): one read at a time, another right
 * after it if one was asked for meanwhile. A failed read leaves the pulls to
 * their grace; a read answered after a reconnect is ignored by the ledger.
 */
import type { JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from '../../core/logger.ts';
import type { PullLedger } from './pull-ledger.ts';

export interface PullFenceDeps {
  readonly jsm: JetStreamManager;
  readonly logger: Logger;
  readonly stream: string;
  readonly durable: string;
  readonly topic: string;
  readonly connected: () => boolean;
}

export class PullFence {
  readonly #deps: PullFenceDeps;
  #reading = false;
  #again = false;
  #closed = false;

  constructor(deps: PullFenceDeps) {
    this.#deps = deps;
  }

  /** Reads the delivered sequence for `ledger` (the one ledger this fence serves). */
  request(ledger: PullLedger): void {
    if (this.#closed) return;
    if (this.#reading) {
      this.#again = true;
      return;
    }
    if (!this.#deps.connected()) return; // the reconnect ends the open pulls
    this.#reading = true;
    const sentAt = performance.now();
    const generation = ledger.generation;
    const { jsm, logger, stream, durable, topic } = this.#deps;
    jsm.consumers
      .info(stream, durable)
      .then(
        (info) => ledger.settle(info.delivered.consumer_seq, sentAt, generation),
        (error: unknown) => logger.debug({ err: error, topic }, 'nats: pull fence failed'),
      )
      .finally(() => {
        this.#reading = false;
        if (!this.#again) return;
        this.#again = false;
        this.request(ledger);
      });
  }

  close(): void {
    this.#closed = true;
  }
}
