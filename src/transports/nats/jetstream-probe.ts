/**
 * Is JetStream answering now? A connected client says nothing about it: a
 * server restarted without JetStream, a cluster that lost its quorum (no
 * meta leader) or a hung JetStream subsystem all keep the connection up while
 * every publish and pull fails. health() must say so while it lasts and stop
 * saying so once JetStream answers again (issue 12), so a cheap account-info
 * request ($JS.API.INFO, answered by the meta leader) runs every few seconds
 * while the connection is up. One request at a time; the timer never keeps
 * the process alive.
 */
import type { JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from '../../core/logger.ts';

export const jetStreamProbeIntervalMs = 2_000;

export class JetStreamProbe {
  readonly #jsm: JetStreamManager;
  readonly #logger: Logger;
  readonly #connected: () => boolean;
  #timer: NodeJS.Timeout | undefined;
  #inFlight = false;
  /** What is wrong now; undefined while JetStream answers. */
  #problem: string | undefined;

  constructor(jsm: JetStreamManager, logger: Logger, connected: () => boolean) {
    this.#jsm = jsm;
    this.#logger = logger;
    this.#connected = connected;
  }

  start(intervalMs = jetStreamProbeIntervalMs): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => void this.check(), intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  get problem(): string | undefined {
    return this.#problem;
  }

  /** One probe (skipped while disconnected: the connection state says it all then). */
  async check(): Promise<void> {
    if (this.#inFlight || !this.#connected()) return;
    this.#inFlight = true;
    try {
      await this.#jsm.getAccountInfo();
      if (this.#problem !== undefined) this.#logger.info({}, 'nats: JetStream answers again');
      this.#problem = undefined;
    } catch (error) {
      if (!this.#connected()) return; // the request died with the connection: not JetStream's state
      const problem = `JetStream unavailable (no quorum, disabled, or not answering): ${(error as Error).message}`;
      if (this.#problem === undefined) this.#logger.warn({ err: error }, `nats: ${problem}`);
      this.#problem = problem;
    } finally {
      this.#inFlight = false;
    }
  }
}
