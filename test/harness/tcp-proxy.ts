/**
 * A loopback TCP proxy for fault tests: clients connect to the proxy, which
 * forwards every connection to a target (e.g. a nats-server). `resetAll()`
 * cuts every current connection with a TCP RST on both sides, the way a
 * dead network path or a crashed middlebox looks to client and server;
 * new connections go through again at once (the client's reconnect works).
 * `holdReplies()` delays instead of cutting: what the target sends to chosen
 * connections waits in the proxy until released (a reply that arrives late).
 */
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';

export interface TcpProxy extends AsyncDisposable {
  /** The proxy's listening port on 127.0.0.1. */
  readonly port: number;
  /** `127.0.0.1:<port>`, to build client URLs from (e.g. `nats://${address}`). */
  readonly address: string;
  /** Connections accepted since the start. */
  readonly accepted: number;
  /** Connections currently open (client side still forwarding). */
  readonly active: number;
  /** Connections cut by resetAll() so far. */
  readonly resets: number;
  /** Drops every current connection with an RST on both sides; returns how many. */
  resetAll(): number;
  /**
   * Arms a cut in mid-transfer: the next chunk from the target to a client
   * that `matches` is dropped (never forwarded) and every connection is reset
   * at once, so whatever that chunk carried died with the connection.
   * Resolves with the number of connections cut.
   */
  resetOnNextChunk(matches?: (chunk: Buffer) => boolean): Promise<number>;
  /**
   * From now on, what the target sends to every connection whose client
   * opening (for NATS: the CONNECT line, with the connection's `name`)
   * `matches` is held in the proxy, in order, until `release()` forwards it
   * all. Client → target traffic keeps flowing. One hold at a time.
   */
  holdReplies(matches: (opening: string) => boolean): HeldReplies;
  /** Resolves once at least `count` connections have been accepted since the start. */
  waitForAccepted(count: number, timeoutMs?: number): Promise<void>;
  /** Stops listening and destroys every connection. Idempotent. */
  close(): Promise<void>;
}

export interface HeldReplies {
  /** Resolves when the first chunk is held (e.g. the reply to a request sent after the hold began). */
  readonly firstHeld: Promise<void>;
  /** Chunks held so far. */
  readonly chunks: number;
  /** Forwards everything held, in order, and ends the hold. */
  release(): void;
}

interface Pair {
  readonly client: Socket;
  readonly upstream: Socket;
  /** The client's first bytes (up to 4 KiB): what a hold matches on. */
  opening: string;
  /** Target → client chunks waiting for a hold's release. */
  held: Buffer[] | undefined;
}

interface Hold {
  readonly matches: (opening: string) => boolean;
  chunks: number;
  onFirst: () => void;
}

/** Sends an RST where the socket is a live TCP connection, else just destroys it. */
function reset(socket: Socket): void {
  if (socket.destroyed) return;
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

export async function startTcpProxy(target: { host?: string; port: number }): Promise<TcpProxy> {
  const host = target.host ?? '127.0.0.1';
  const pairs = new Set<Pair>();
  const acceptWaiters = new Set<() => void>();
  let accepted = 0;
  let resets = 0;
  let armedCut: { matches: (chunk: Buffer) => boolean; resolve: (cut: number) => void } | undefined;
  let hold: Hold | undefined;
  const resetAll = (): number => {
    const current = [...pairs];
    pairs.clear();
    for (const { client, upstream } of current) {
      reset(client);
      reset(upstream);
    }
    resets += current.length;
    return current.length;
  };

  const server: Server = createServer((client) => {
    accepted++;
    const upstream = tcpConnect({ host, port: target.port });
    const pair: Pair = { client, upstream, opening: '', held: undefined };
    pairs.add(pair);
    // Either side failing or closing ends the pair: a reset from one side is
    // passed on as a reset, so neither end sees a graceful close that did not happen.
    const drop = (error?: Error): void => {
      pairs.delete(pair);
      if (error) {
        reset(client);
        reset(upstream);
      } else {
        client.destroy();
        upstream.destroy();
      }
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', () => drop());
    upstream.on('close', () => drop());
    client.pipe(upstream);
    client.on('data', (chunk: Buffer) => {
      if (pair.opening.length < 4096) pair.opening += chunk.toString('latin1', 0, 4096);
    });
    // Target → client is forwarded by hand, so an armed cut can drop a chunk in
    // flight and a hold can keep chunks back.
    upstream.on('data', (chunk: Buffer) => {
      const cut = armedCut;
      if (cut?.matches(chunk)) {
        armedCut = undefined;
        cut.resolve(resetAll());
        return;
      }
      if (hold?.matches(pair.opening)) {
        pair.held ??= [];
        pair.held.push(chunk);
        hold.chunks++;
        if (hold.chunks === 1) hold.onFirst();
        return;
      }
      if (!client.write(chunk)) upstream.pause();
    });
    client.on('drain', () => upstream.resume());
    for (const wake of acceptWaiters) wake();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string')
    throw new Error('Expected a TCP address for the proxy');
  const port = address.port;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    armedCut?.resolve(0);
    armedCut = undefined;
    closing ??= new Promise<void>((resolve) => {
      for (const pair of pairs) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      pairs.clear();
      server.close(() => resolve());
    });
    return closing;
  };

  return {
    port,
    address: `127.0.0.1:${port}`,
    get accepted() {
      return accepted;
    },
    get active() {
      return pairs.size;
    },
    get resets() {
      return resets;
    },
    resetAll,
    resetOnNextChunk(matches = () => true) {
      if (armedCut !== undefined) return Promise.reject(new Error('tcp proxy: a cut is already armed'));
      return new Promise<number>((resolve) => {
        armedCut = { matches, resolve };
      });
    },
    holdReplies(matches) {
      if (hold !== undefined) throw new Error('tcp proxy: a hold is already in place');
      let onFirst = (): void => {};
      const firstHeld = new Promise<void>((resolve) => {
        onFirst = resolve;
      });
      const current: Hold = { matches, chunks: 0, onFirst };
      hold = current;
      return {
        firstHeld,
        get chunks() {
          return current.chunks;
        },
        release() {
          if (hold !== current) return;
          hold = undefined;
          for (const pair of pairs) {
            const held = pair.held;
            pair.held = undefined;
            for (const chunk of held ?? []) pair.client.write(chunk);
          }
        },
      };
    },
    waitForAccepted(count, timeoutMs = 10_000) {
      if (accepted >= count) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          acceptWaiters.delete(check);
          reject(
            new Error(
              `tcp proxy: ${accepted} connections accepted, expected ${count} within ${timeoutMs} ms`,
            ),
          );
        }, timeoutMs);
        const check = (): void => {
          if (accepted < count) return;
          clearTimeout(timer);
          acceptWaiters.delete(check);
          resolve();
        };
        acceptWaiters.add(check);
      });
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
