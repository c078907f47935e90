/**
 * A createEventBus that fails after its transport connected (here: a metrics
 * registry that is not one) closes the transport it opened: the process exits
 * on its own after the error instead of hanging on an open NATS connection.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type NatsServerHandle, startNatsServer } from '../harness/nats-server.ts';

describe('a failed createEventBus', () => {
  let server: NatsServerHandle;
  before(async () => {
    server = await startNatsServer({ jetstream: true });
  });
  after(async () => {
    await server?.stop();
  });

  it('closes the connection it opened, so the process exits by itself', async () => {
    const entry = fileURLToPath(new URL('../../src/index.ts', import.meta.url));
    const script = `
      const { createEventBus } = await import(${JSON.stringify(entry)});
      try {
        await createEventBus({ transport: 'nats', clientId: 'failed-start', nats: { servers: ${JSON.stringify(server.url)} }, metrics: { registry: {} } });
        console.log('created');
      } catch (error) {
        console.log('failed: ' + error.name);
      }`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    // Exits only when no socket or timer keeps its event loop alive; a leak shows as this test's timeout.
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 0);
    assert.match(stdout.trim(), /^failed: /);
  });
});
