/**
 * A bounded check that each configured server speaks NATS before nats.js
 * connects. nats.js's own connect timeout rejects, but when the server
 * accepted TCP and never sent INFO (a wrong port, a proxy, a hung server) it
 * leaves that socket open, and the process can never exit. Here every socket
 * is ours and is destroyed in all outcomes.
 */
import { createConnection } from 'node:net';

export interface ProbeOutcome {
  readonly server: string;
  /** undefined: the server sent INFO in time; otherwise what happened instead. */
  readonly failure: string | undefined;
}

const defaultPort = 4222;

/** host and port of a NATS server URL (`nats://user:pass@host:port`, `host:port`, `tls://[::1]:4443`). */
export function hostAndPort(server: string): { host: string; port: number } {
  const withoutScheme = server.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  const url = new URL(`http://${withoutScheme}`);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  return { host, port: url.port === '' ? defaultPort : Number(url.port) };
}

/** Connects to `server` and waits at most `timeoutMs` for the first bytes to be `INFO`. */
export function probeServer(server: string, timeoutMs: number): Promise<ProbeOutcome> {
  let target: { host: string; port: number };
  try {
    target = hostAndPort(server);
  } catch {
    return Promise.resolve({ server, failure: 'not a host:port URL' });
  }
  return new Promise((resolve) => {
    const socket = createConnection(target.port, target.host);
    let received = '';
    let settled = false;
    const finish = (failure: string | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ server, failure });
    };
    const timer = setTimeout(
      () =>
        finish(
          received === '' && socket.readyState === 'open'
            ? `accepted the connection but sent nothing within ${timeoutMs} ms (not a NATS server?)`
            : `no answer within ${timeoutMs} ms`,
        ),
      timeoutMs,
    );
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      received += chunk;
      if (received.length >= 4) {
        finish(
          received.startsWith('INFO')
            ? undefined
            : `answered, but not as a NATS server (${JSON.stringify(received.slice(0, 20))})`,
        );
      }
    });
    socket.on('error', (error: Error) => finish(error.message));
    socket.on('close', () => finish('closed the connection without sending INFO'));
  });
}

/** Probes every server at once; resolves when all have answered or timed out. */
export function probeServers(servers: readonly string[], timeoutMs: number): Promise<ProbeOutcome[]> {
  return Promise.all(servers.map((server) => probeServer(server, timeoutMs)));
}
