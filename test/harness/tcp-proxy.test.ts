import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startTcpProxy } from './tcp-proxy.ts';

/** An echo server that records how each of its connections ended. */
async function echoServer(): Promise<{ server: Server; port: number; nextEnding(): Promise<string> }> {
  let waiting: ((how: string) => void) | undefined;
  const ended = (how: string): void => {
    waiting?.(how);
    waiting = undefined;
  };
  const server = createServer((socket) => {
    socket.on('error', (error: NodeJS.ErrnoException) => ended(error.code ?? error.message));
    socket.on('end', () => ended('end'));
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('Expected a TCP address');
  return {
    server,
    port: address.port,
    nextEnding: () => new Promise((resolve) => (waiting = resolve)),
  };
}

async function connectTo(port: number): Promise<Socket> {
  const socket = tcpConnect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  return socket;
}

async function roundTrip(socket: Socket, text: string): Promise<string> {
  socket.write(text);
  let got = '';
  while (got.length < text.length) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    got += chunk.toString();
  }
  return got;
}

/** Resolves with the error code the socket ends with (or 'close' when it closed without one). */
function ending(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    socket.once('close', () => resolve('close'));
  });
}

describe('tcp proxy', () => {
  let echo: Awaited<ReturnType<typeof echoServer>>;
  before(async () => {
    echo = await echoServer();
  });
  after(() => echo.server.close());

  it('forwards bytes both ways and counts connections', async () => {
    await using proxy = await startTcpProxy({ port: echo.port });
    const a = await connectTo(proxy.port);
    const b = await connectTo(proxy.port);
    assert.equal(await roundTrip(a, 'hello'), 'hello');
    assert.equal(await roundTrip(b, 'world'), 'world');
    assert.equal(proxy.accepted, 2);
    assert.equal(proxy.active, 2);
    a.end();
    await once(a, 'close');
    b.destroy();
  });

  it('resetAll() cuts every connection with an RST on both sides; new connections go through', async () => {
    await using proxy = await startTcpProxy({ port: echo.port });
    const a = await connectTo(proxy.port);
    assert.equal(await roundTrip(a, 'before'), 'before');
    const clientEnding = ending(a);
    const serverEnding = echo.nextEnding();
    assert.equal(proxy.resetAll(), 1);
    assert.equal(await clientEnding, 'ECONNRESET');
    // The server side also sees a reset, not a graceful end.
    assert.equal(await serverEnding, 'ECONNRESET');
    assert.equal(proxy.active, 0);
    assert.equal(proxy.resets, 1);

    const b = await connectTo(proxy.port);
    assert.equal(await roundTrip(b, 'after'), 'after');
    await proxy.waitForAccepted(2, 1_000);
    assert.equal(proxy.active, 1);
    b.destroy();
  });

  it('resetOnNextChunk() drops the matching chunk from the target and resets every connection', async () => {
    await using proxy = await startTcpProxy({ port: echo.port });
    const a = await connectTo(proxy.port);
    const b = await connectTo(proxy.port);
    const cut = proxy.resetOnNextChunk((chunk) => chunk.includes('MSG'));
    assert.equal(await roundTrip(a, 'PING'), 'PING', 'a chunk that does not match is forwarded');
    const received: string[] = [];
    a.on('data', (chunk: Buffer) => received.push(chunk.toString()));
    const aEnding = ending(a);
    const bEnding = ending(b);
    a.write('MSG lost in transit');
    assert.equal(await cut, 2);
    assert.equal(await aEnding, 'ECONNRESET');
    assert.equal(await bEnding, 'ECONNRESET');
    assert.deepEqual(received, [], 'the matching chunk never reached the client');
    assert.equal(proxy.resets, 2);
  });

  it('close() stops listening and drops what is open', async () => {
    const proxy = await startTcpProxy({ port: echo.port });
    const a = await connectTo(proxy.port);
    const closed = once(a, 'close');
    await proxy.close();
    await closed;
    const refused = tcpConnect({ host: '127.0.0.1', port: proxy.port });
    const [error] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
    assert.equal(error.code, 'ECONNREFUSED');
  });
});
