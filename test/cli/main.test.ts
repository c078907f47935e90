/** The `eventbus` entry point as a process: exit codes, stdout/stderr, SIGINT. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { streamNameFor } from '../../src/transports/nats/names.ts';
import { type NatsServerHandle, startNatsServer } from '../harness/nats-server.ts';
import { natsBus, uniqueTopic } from './helpers.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `eventbus <args>`; `onOutput` sees stdout as it arrives (and may signal the child). */
function eventbus(
  args: readonly string[],
  onOutput?: (stdout: string, child: ReturnType<typeof spawn>) => void,
): Promise<Run> {
  const child = spawn(process.execPath, [MAIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NATS_URL: '' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    onOutput?.(stdout, child);
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('eventbus (process)', () => {
  let server: NatsServerHandle;

  before(async () => {
    server = await startNatsServer({ jetstream: true });
  });

  after(async () => {
    await server?.stop();
  });

  it('help lists the operator commands', async () => {
    const run = await eventbus(['help']);
    assert.equal(run.code, 0);
    for (const command of ['tail <topic>', 'dlq list <topic>', 'dlq requeue <topic>', 'doctor [topic ...]']) {
      assert.ok(run.stdout.includes(command), `usage mentions ${command}`);
    }
  });

  it('exit codes: dlq list without dead letters 0, requeue --parked with nothing parked 0, of an aggregate not parked 1, doctor FAIL 1', async () => {
    const empty = await eventbus(['dlq', 'list', 'nothing.here', '--servers', server.url]);
    assert.equal(empty.code, 0, empty.stderr);
    assert.match(empty.stdout, /^no dead letters for nothing\.here/);

    const noneParked = await eventbus([
      'dlq',
      'requeue',
      'orders',
      '--parked',
      '--all',
      '--servers',
      server.url,
    ]);
    assert.equal(noneParked.code, 0, noneParked.stderr);
    assert.match(noneParked.stdout, /^no parked aggregates in orders/);
    const parked = await eventbus([
      'dlq',
      'requeue',
      'orders',
      '--parked',
      '--aggregate',
      'order-1',
      '--servers',
      server.url,
    ]);
    assert.equal(parked.code, 1);
    assert.match(parked.stdout, /^not parked: order-1 in orders/);
    const badArgs = await eventbus(['dlq', 'requeue', 'orders', '--parked', '--servers', server.url]);
    assert.equal(badArgs.code, 1);
    assert.match(badArgs.stderr, /--aggregate ID \(repeatable\) or --all with --parked/);

    const topic = uniqueTopic('mem');
    const nc = await connect({ servers: server.url });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({
        name: streamNameFor('EVENTBUS', topic),
        subjects: [topic],
        storage: StorageType.Memory,
      });
    } finally {
      await nc.close();
    }
    const bus = await natsBus(server.url, 'main-test');
    try {
      await bus.publishEnvelope(topic, { aggregateId: 'a', eventType: 'T', eventVersion: 0, payload: 1 });
      await bus.flush();
    } finally {
      await bus.close();
    }
    // NATS_URL instead of --servers.
    const child = spawn(process.execPath, [MAIN, 'doctor', topic], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NATS_URL: server.url },
    });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    assert.equal(code, 1, stdout);
    assert.match(stdout, /FAIL +stream .*memory storage on an envelope topic/);
  });

  it('tail stops cleanly on SIGINT with exit code 0', async () => {
    const topic = uniqueTopic('sigint');
    const bus = await natsBus(server.url, 'main-tail');
    try {
      await bus.publishEnvelope(topic, { aggregateId: 'a', eventType: 'T', eventVersion: 0, payload: 1 });
      await bus.flush();
    } finally {
      await bus.close();
    }
    let interrupted = false;
    const run = await eventbus(
      ['tail', topic, '--from', 'start', '--servers', server.url],
      (stdout, child) => {
        // Once the stored message is printed the tail waits for more: interrupt it (once; a second SIGINT kills).
        if (!interrupted && stdout.includes('seq=1 ')) {
          interrupted = true;
          child.kill('SIGINT');
        }
      },
    );
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^seq=1 eventId=\S+ aggregateId=a /);
    assert.match(run.stderr, /1 message\(s\) \(interrupted\)/);
  });
});
