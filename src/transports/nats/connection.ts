/**
 * The transport's single NATS connection: reconnects forever, detects a stale
 * server within ~pingInterval × maxPingOut, and tells interested parts (the
 * fetch loops) when a reconnect happened so they can re-pull at once.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { TransportError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import type { ResolvedNatsOptions } from './options.ts';
import { probeServers } from './probe.ts';

type Listener = () => void;

export class NatsConnectionManager {
  readonly nc: NatsConnection;
  readonly #logger: Logger;
  #connected = true;
  #reconnects = 0;
  #disconnects = 0;
  #lastError: string | undefined;
  readonly #reconnectListeners = new Set<Listener>();

  private constructor(nc: NatsConnection, logger: Logger) {
    this.nc = nc;
    this.#logger = logger;
    void this.#watch();
    void nc.closed().then((error) => {
      this.#connected = false;
      if (error) this.#lastError = error.message;
    });
  }

  static async open(options: ResolvedNatsOptions, clientId: string, logger: Logger) {
    const servers = await speakingServers(options, logger);
    try {
      const nc = await connect({
        ...options.connectOptions,
        servers,
        timeout: options.connectTimeoutMs,
        name: clientId,
        reconnect: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: options.reconnectTimeWaitMs,
        pingInterval: options.pingIntervalMs,
        maxPingOut: options.maxPingOut,
      });
      return new NatsConnectionManager(nc, logger);
    } catch (cause) {
      throw new TransportError(
        `Could not connect to NATS at ${servers.join(', ')} within nats.connectTimeoutMs (${options.connectTimeoutMs} ms): ${(cause as Error).message}`,
        { cause },
      );
    }
  }

  async #watch(): Promise<void> {
    for await (const status of this.nc.status()) {
      switch (status.type) {
        case 'disconnect':
          this.#connected = false;
          this.#disconnects++;
          this.#logger.warn({ server: status.server }, 'nats: disconnected; reconnecting');
          break;
        case 'reconnect':
          this.#connected = true;
          this.#reconnects++;
          this.#logger.info({ server: status.server }, 'nats: reconnected');
          for (const listener of this.#reconnectListeners) listener();
          break;
        case 'staleConnection':
          this.#logger.warn({}, 'nats: stale connection (server stopped answering pings)');
          break;
        case 'ldm':
          this.#logger.warn({ server: status.server }, 'nats: server entered lame duck mode');
          break;
        case 'error':
          this.#lastError = status.error.message;
          this.#logger.warn({ err: status.error }, 'nats: async server error');
          break;
        default:
          break;
      }
    }
  }

  get connected(): boolean {
    return this.#connected && !this.nc.isClosed();
  }

  get reconnects(): number {
    return this.#reconnects;
  }

  get disconnects(): number {
    return this.#disconnects;
  }

  get lastError(): string | undefined {
    return this.#lastError;
  }

  /** The current server's max_payload (body + headers). */
  get maxPayload(): number {
    return this.nc.info?.max_payload ?? 1024 * 1024;
  }

  get server(): string {
    return this.nc.getServer();
  }

  /** `+TERM <reason>` is understood from nats-server 2.10 on; 2.9 ignores the whole ack. */
  get supportsTermReason(): boolean {
    const match = /^(\d+)\.(\d+)/.exec(this.nc.info?.version ?? '');
    if (match === null) return false;
    const major = Number(match[1]);
    const minor = Number(match[2]);
    return major > 2 || (major === 2 && minor >= 10);
  }

  /** Called after every reconnect (pending pull requests died with the old connection). */
  onReconnect(listener: Listener): () => void {
    this.#reconnectListeners.add(listener);
    return () => this.#reconnectListeners.delete(listener);
  }

  /** Resolves once connected (at once when connected now), or when `signal` aborts. */
  untilConnected(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        unlisten();
        signal.removeEventListener('abort', done);
        resolve();
      };
      const unlisten = this.onReconnect(done);
      signal.addEventListener('abort', done, { once: true });
      if (this.connected || signal.aborted) done();
    });
  }

  /** Drains (flushes, unsubscribes) within `timeoutMs`, else closes hard. */
  async shutdown(timeoutMs: number): Promise<void> {
    if (this.nc.isClosed()) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), Math.max(0, timeoutMs));
    });
    try {
      const outcome = await Promise.race([
        this.connected ? this.nc.drain().then(() => 'drained' as const) : Promise.resolve('timeout' as const),
        timeout,
      ]);
      if (outcome === 'timeout' && !this.nc.isClosed()) await this.nc.close();
    } catch (error) {
      this.#logger.debug({ err: error }, 'nats: drain failed; closing');
      if (!this.nc.isClosed()) await this.nc.close();
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * The configured servers that answered with INFO within connectTimeoutMs
 * (see probe.ts: nats.js leaks the socket of a server that accepts and stays
 * silent, so such a server is never handed to it). None answering: a
 * TransportError naming each server and what happened, with nothing left open.
 * Servers skipped here are still found again through the cluster's INFO
 * (connect_urls) once connected. TLS-first servers send nothing before the
 * handshake, so they are not probed.
 */
async function speakingServers(options: ResolvedNatsOptions, logger: Logger): Promise<string[]> {
  const tls = options.connectOptions.tls;
  if (tls !== null && tls !== undefined && tls.handshakeFirst === true) return [...options.servers];
  const outcomes = await probeServers(options.servers, options.connectTimeoutMs);
  const speaking = outcomes.filter((o) => o.failure === undefined).map((o) => o.server);
  const silent = outcomes.filter((o) => o.failure !== undefined);
  if (speaking.length === 0) {
    throw new TransportError(
      `Could not connect to NATS within nats.connectTimeoutMs (${options.connectTimeoutMs} ms): ${silent
        .map((o) => `${o.server} ${o.failure}`)
        .join('; ')}`,
    );
  }
  if (silent.length > 0) {
    logger.warn(
      { servers: silent.map((o) => `${o.server}: ${o.failure}`) },
      'nats: skipping servers that did not answer',
    );
  }
  return speaking;
}
