/**
 * A small HTTP server for operators: `/metrics` (Prometheus text format) and
 * the Kubernetes-style probes `/health/live` and `/health/ready` next to it.
 *
 * It listens on 127.0.0.1 unless told otherwise: metrics and health say a lot
 * about a service, so exposing them is the application's decision. In a
 * container, pass `host: '0.0.0.0'` so Prometheus and the kubelet can reach it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import client, { type Registry } from 'prom-client';
import { closeDeadline } from '../core/close-deadline.ts';
import { InvalidArgumentError } from '../core/errors.ts';
import { optionKeys, rejectUnknownKeys } from '../core/option-keys.ts';
import type { CloseOptions, HealthReport } from '../core/types.ts';

/** Whatever can report health: an EventBus, or an object that combines several. */
export interface HealthSource {
  health(): HealthReport;
}

export interface MetricsServerOptions {
  /** TCP port; 0 (default) picks a free one (read it from `url`). */
  readonly port?: number;
  /** Interface to listen on. Default `127.0.0.1` (local only); `0.0.0.0` for every interface. */
  readonly host?: string;
  /** Registry served on /metrics. Default: prom-client's global registry. */
  readonly registry?: Registry;
  /**
   * Bus (or buses) whose `health()` answers `/health/ready`: 200 when every one
   * is `ok`, 503 when any is `degraded` or `closed`. Without it readiness is
   * the same as liveness.
   */
  readonly health?: HealthSource | readonly HealthSource[];
}

const serverKeys = optionKeys<MetricsServerOptions>({ port: true, host: true, registry: true, health: true });

/** Paths served; anything else is 404. `/livez` and `/readyz` are accepted aliases. */
const LIVE = new Set(['/health/live', '/livez']);
const READY = new Set(['/health/ready', '/readyz']);

/** The body of `/health/ready`: the overall status and every source's report. */
export interface ReadinessBody {
  readonly status: 'ok' | 'degraded' | 'closed';
  readonly reports: readonly HealthReport[];
}

/** Worst status first: closed beats degraded beats ok. */
function overall(reports: readonly HealthReport[]): ReadinessBody['status'] {
  if (reports.some((r) => r.status === 'closed')) return 'closed';
  if (reports.some((r) => r.status === 'degraded')) return 'degraded';
  return 'ok';
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
}

/**
 * A request handler for GET /metrics, /health/live and /health/ready (see
 * MetricsServerOptions.health). Usable inside an existing HTTP server.
 */
export function metricsHandler(
  registry: Registry = client.register,
  health: HealthSource | readonly HealthSource[] = [],
) {
  const sources: readonly HealthSource[] = Array.isArray(health) ? health : [health as HealthSource];
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(req.method === undefined ? 400 : 405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (LIVE.has(path)) {
      // The event loop answered: the process is alive. Broker trouble is readiness, not liveness
      // (restarting the pod would not bring the broker back).
      sendJson(res, 200, { status: 'ok' });
      return;
    }
    if (READY.has(path)) {
      let reports: HealthReport[];
      try {
        reports = sources.map((s) => s.health());
      } catch (error) {
        sendJson(res, 503, { status: 'degraded', error: String(error) });
        return;
      }
      const status = overall(reports);
      sendJson(res, status === 'ok' ? 200 : 503, { status, reports } satisfies ReadinessBody);
      return;
    }
    if (path !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    try {
      const body = await registry.metrics();
      res.writeHead(200, { 'content-type': registry.contentType }).end(body);
    } catch (error) {
      res.writeHead(500).end(String(error));
    }
  };
}

function validate(options: MetricsServerOptions): void {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError(`Expected metrics server options to be an object, got ${typeof options}`);
  }
  rejectUnknownKeys('', options, serverKeys);
  const { port, host } = options;
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) {
    throw new InvalidArgumentError(`Expected port to be an integer in 0..65535, got ${String(port)}`);
  }
  if (host !== undefined && (typeof host !== 'string' || host.length === 0)) {
    throw new InvalidArgumentError(`Expected host to be a non-empty string, got ${JSON.stringify(host)}`);
  }
  const sources =
    options.health === undefined ? [] : Array.isArray(options.health) ? options.health : [options.health];
  for (const s of sources as unknown[]) {
    if (typeof (s as HealthSource | null)?.health !== 'function') {
      throw new InvalidArgumentError('Expected health to be an EventBus (or objects with a health() method)');
    }
  }
}

/** A URL host part: IPv6 literals go in brackets. */
function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** The running metrics server; closes like every other resource of the package. */
export interface MetricsServer extends AsyncDisposable {
  readonly server: Server;
  /** The /metrics URL. */
  readonly url: string;
  /** The base URL (`http://host:port`), for the health paths. */
  readonly baseUrl: string;
  /**
   * Stops listening and closes idle keep-alive connections at once, then waits
   * for requests in progress until `timeoutMs` (default 5,000) passes or
   * `signal` aborts; what is still open then is cut. Idempotent.
   */
  close(options?: CloseOptions): Promise<void>;
  /** Resolves once the server is closed. */
  readonly closed: Promise<void>;
}

const CLOSE_TIMEOUT_MS = 5_000;

/**
 * Starts an HTTP server for /metrics, /health/live and /health/ready.
 * Listens on 127.0.0.1 by default (local only); `host: '0.0.0.0'` to be
 * reachable from other containers. Rejects (and holds no socket) when the
 * port cannot be bound.
 */
export async function startMetricsServer(options: MetricsServerOptions = {}): Promise<MetricsServer> {
  validate(options);
  const host = options.host ?? '127.0.0.1';
  const server = createServer(metricsHandler(options.registry, options.health ?? []));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const baseUrl = `http://${urlHost(host)}:${port}`;
  const { promise: closed, resolve: resolveClosed } = Promise.withResolvers<void>();
  let closing: Promise<void> | undefined;
  const close = (closeOptions?: CloseOptions): Promise<void> => {
    if (closing !== undefined) return closing;
    let deadline: AbortSignal;
    try {
      deadline = closeDeadline(closeOptions, CLOSE_TIMEOUT_MS);
    } catch (error) {
      return Promise.reject(error);
    }
    // Keep-alive connections (Prometheus keeps one open) would hold close() forever.
    const cut = (): void => server.closeAllConnections();
    closing = new Promise<void>((resolve, reject) => {
      server.close((e) => {
        deadline.removeEventListener('abort', cut);
        if (e) reject(e);
        else {
          resolveClosed();
          resolve();
        }
      });
      server.closeIdleConnections();
    });
    // An already aborted signal fires no 'abort' event: cut at once.
    if (deadline.aborted) cut();
    else deadline.addEventListener('abort', cut, { once: true });
    return closing;
  };
  return {
    server,
    url: `${baseUrl}/metrics`,
    baseUrl,
    close,
    closed,
    [Symbol.asyncDispose]: () => close(),
  };
}
