/**
 * A server that accepts TCP but never speaks NATS (a wrong port, a hung
 * proxy): createEventBus fails within nats.connectTimeoutMs with a clear
 * TransportError, closes the connection it opened, and leaves nothing that
 * keeps the process alive.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createEventBus, TransportError } from '../../../src/index.ts';
import { hostAndPort } from '../../../src/transports/nats/probe.ts';

/** Accepts connections and never writes a byte; records every accepted socket. */
async function silentServer(): Promise<{ server: Server; url: string; accepted: Socket[] }> {
  const accepted: Socket[] = [];
  const server = createServer((socket) => accepted.push(socket));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return { server, url: `nats://127.0.0.1:${address.port}`, accepted };
}

function closedByPeer(socket: Socket): Promise<void> {
  return socket.closed || socket.destroyed ? Promise.resolve() : once(socket, 'close').then(() => {});
}

describe('NATS start against a server that never answers', () => {
  let silent: Awaited<ReturnType<typeof silentServer>>;

  before(async () => {
    silent = await silentServer();
  });

  after(async () => {
    for (const socket of silent.accepted) socket.destroy();
    silent.server.close();
    await once(silent.server, 'close');
  });

  it('rejects with a TransportError naming the server and the configured timeout, and closes its socket', async () => {
    await assert.rejects(
      createEventBus({
        transport: 'nats',
        clientId: 'silent',
        nats: { servers: silent.url, connectTimeoutMs: 300 },
      }),
      (error: unknown) => {
        assert.ok(error instanceof TransportError, String(error));
        assert.match(error.message, /nats\.connectTimeoutMs \(300 ms\)/);
        assert.ok(error.message.includes(silent.url));
        assert.match(error.message, /accepted the connection but sent nothing/);
        return true;
      },
    );
    assert.ok(silent.accepted.length >= 1, 'the server saw the connection attempt');
    // Every connection we opened is closed from our side (no open socket is left behind).
    await Promise.all(silent.accepted.map(closedByPeer));
  });

  it('lets the process exit on its own after the failure', async () => {
    const entry = fileURLToPath(new URL('../../../src/index.ts', import.meta.url));
    const script = `
      const { createEventBus } = await import(${JSON.stringify(entry)});
      try {
        await createEventBus({ transport: 'nats', clientId: 'silent-child', nats: { servers: ${JSON.stringify(silent.url)}, connectTimeoutMs: 300 } });
        console.log('connected');
      } catch (error) {
        console.log(error.code);
      }`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    // The child exits by itself only when no socket or timer keeps its event loop alive;
    // a leak shows up as this test's timeout.
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 0);
    assert.equal(stdout.trim(), 'EVENTBUS_TRANSPORT');
  });

  it('parses the server URL forms nats.js accepts', () => {
    assert.deepEqual(hostAndPort('nats://127.0.0.1:4222'), { host: '127.0.0.1', port: 4222 });
    assert.deepEqual(hostAndPort('nats://user:pass@example.com'), { host: 'example.com', port: 4222 });
    assert.deepEqual(hostAndPort('localhost:5000'), { host: 'localhost', port: 5000 });
    assert.deepEqual(hostAndPort('tls://[::1]:4443'), { host: '::1', port: 4443 });
  });
});
