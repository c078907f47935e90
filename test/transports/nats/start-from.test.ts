/**
 * SubscribeOptions.startFrom on a real nats-server (see
 * test/bus/start-from-kit.ts), and the group's recorded start floor: taken
 * once, the same for every later member, kept for groups that existed before.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { silentLogger } from '../../../src/core/logger.ts';
import { createEventBus } from '../../../src/index.ts';
import type { ConsumerSpec } from '../../../src/transports/nats/consumer.ts';
import { groupStartFloor, startMarkerName } from '../../../src/transports/nats/group-start.ts';
import { runStartFromSuite } from '../../bus/start-from-kit.ts';
import { type NatsServerHandle, startNatsServer } from '../../harness/nats-server.ts';

let server: NatsServerHandle;
before(async () => {
  server = await startNatsServer({ jetstream: true });
});
after(async () => {
  await server?.stop();
});

runStartFromSuite({
  name: 'nats',
  createBus: (clientId) =>
    createEventBus({
      transport: 'nats',
      clientId,
      nats: { servers: server.url, group: { leaseMs: 1_000 } },
      metrics: { enabled: false },
    }),
});

describe('group start floor (nats)', () => {
  let nc: NatsConnection;
  before(async () => {
    nc = await connect({ servers: server.url });
  });
  after(async () => {
    await nc?.close();
  });

  const spec = (stream: string, durable: string): ConsumerSpec => ({
    stream,
    durable,
    ackWaitMs: 30_000,
    maxAckPending: 10_000,
    maxWaiting: 1_000,
    ackPolicy: 'explicit',
  });

  async function streamWith(messages: number): Promise<string> {
    const jsm = await jetstreamManager(nc);
    const name = `FLOOR_${randomUUID().slice(0, 8)}`;
    await jsm.streams.add({ name, subjects: [`${name}.>`] });
    const js = jsm.jetstream();
    for (let i = 0; i < messages; i++) await js.publish(`${name}.x`, 'm');
    return name;
  }

  it("'latest' records the floor once: later members get the same floor, not the new end", async () => {
    const jsm = await jetstreamManager(nc);
    const stream = await streamWith(5);
    const ask = () =>
      groupStartFloor(jsm, {
        base: spec(stream, 'g'),
        lanes: ['p0'],
        startFrom: 'latest',
        logger: silentLogger,
      });
    const [a, b] = await Promise.all([ask(), ask()]);
    assert.equal(a, 5);
    assert.equal(b, 5, 'two members starting together agree');
    await jsm.jetstream().publish(`${stream}.x`, 'later');
    assert.equal(await ask(), 5, 'a member joining later continues from the group floor');
    assert.equal(
      await groupStartFloor(jsm, {
        base: spec(stream, 'g'),
        lanes: ['p0'],
        startFrom: 'earliest',
        logger: silentLogger,
      }),
      5,
      "also when it asks for 'earliest': the group exists",
    );
    const marker = await jsm.consumers.info(stream, startMarkerName('g'));
    assert.equal(marker.config.opt_start_seq, 6);
    assert.equal(
      marker.config.max_ack_pending,
      10_000,
      'the group settings, so `eventbus doctor` sees nothing odd',
    );
  });

  it("'earliest' and groups that already have consumers start at 0 and record nothing", async () => {
    const jsm = await jetstreamManager(nc);
    const stream = await streamWith(3);
    const floor = (durable: string, startFrom: 'earliest' | 'latest') =>
      groupStartFloor(jsm, {
        base: spec(stream, durable),
        lanes: ['p0', 'p1'],
        startFrom,
        logger: silentLogger,
      });
    assert.equal(await floor('fresh', 'earliest'), 0);
    // A group that ran before (a lane generation exists): 'latest' does not move it.
    await jsm.consumers.add(stream, { durable_name: 'old_p1_7_0' });
    assert.equal(await floor('old', 'latest'), 0);
    // A group named like a lane of another ('old_p1' is not group 'old'): its own floor.
    await jsm.consumers.add(stream, { durable_name: 'other_p1_p0_3_0' });
    assert.equal(await floor('other', 'latest'), 3, "'other_p1_p0_3_0' is group other_p1's, lane p0");
    const names: string[] = [];
    for await (const c of jsm.consumers.list(stream)) names.push(c.name);
    assert.deepEqual(names.sort(), ['old_p1_7_0', 'other_p1_p0_3_0', 'other_start']);
  });
});
