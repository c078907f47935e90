/** A small `/metrics` HTTP helper for prom-client registries. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import client, { type Registry } from 'prom-client';

/** A request handler serving the registry in the Prometheus text format on GET /metrics. */
export function metricsHandler(registry: Registry = client.register) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.method !== 'GET' || (req.url ?? '/').split('?')[0] !== '/metrics') {
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

/** Starts an HTTP server for /metrics on 127.0.0.1 (port 0 = any free port). */
export async function startMetricsServer(
  options: { port?: number; host?: string; registry?: Registry } = {},
): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const server = createServer(metricsHandler(options.registry));
  await new Promise<void>((resolve) =>
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve),
  );
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    server,
    url: `http://${options.host ?? '127.0.0.1'}:${port}/metrics`,
    close: () => new Promise((resolve, reject) => server.close((e) => (e ? reject(e) : resolve()))),
  };
}
