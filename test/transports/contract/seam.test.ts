/**
 * The transport seam of createEventBus: a factory or a built-in's name, one
 * registry, options validated once, and what the bus reads from a transport
 * (kind, features, ownedHeaders).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  createEventBus,
  createMemoryBroker,
  Headers,
  InvalidArgumentError,
  memory,
  type OutboundMessage,
  type PublishCallback,
  type Transport,
  type TransportFactory,
} from '../../../src/index.ts';
import { until } from '../../../src/testing/index.ts';
import { kafka } from '../../../src/transports/kafka/index.ts';
import { nats } from '../../../src/transports/nats/index.ts';
import { LogBroker, logTransport } from './log-transport.ts';

describe('createEventBus({ transport })', () => {
  it('takes a factory: the bus reports its kind and declared features', async () => {
    const bus = await createEventBus({
      transport: memory({ broker: createMemoryBroker() }),
      clientId: 'seam',
      metrics: { enabled: false },
    });
    await using _ = bus;
    assert.equal(bus.transport, 'memory');
    assert.equal(bus.features.nakRedelivers, true);
    assert.equal(bus.health().transport, 'memory');
  });

  it('takes a transport written outside the package under its own kind', async () => {
    const bus = await createEventBus({
      transport: logTransport(new LogBroker()),
      clientId: 'seam',
      metrics: { enabled: false },
    });
    await using _ = bus;
    assert.equal(bus.transport, 'log');
    assert.equal(bus.features.nakDelay, false);
  });

  it('the built-in factories name their kind without connecting', () => {
    assert.equal(nats({ servers: 'nats://127.0.0.1:1' }).kind, 'nats');
    assert.equal(kafka({ brokers: ['127.0.0.1:1'] }).kind, 'kafka');
    assert.equal(memory().kind, 'memory');
  });

  it('rejects what is neither a built-in name nor a factory, and shorthand options beside a factory', async () => {
    await assert.rejects(
      createEventBus({ transport: 'carrier-pigeon' as never, clientId: 'x' }),
      /Expected `transport` to be one of memory, nats, kafka or a transport factory/,
    );
    await assert.rejects(
      createEventBus({ transport: { kind: 'half' } as never, clientId: 'x' }),
      InvalidArgumentError,
    );
    await assert.rejects(
      createEventBus({ transport: memory(), memory: { partitions: 2 }, clientId: 'x' }),
      /Expected no `memory` options with a transport factory/,
    );
  });

  it("drops the transport's own wire headers (ownedHeaders) from a dead letter, and keeps every other header", async () => {
    const inner = logTransport(new LogBroker());
    const handedToSend: Array<{ topic: string; headers: Readonly<Record<string, string>> }> = [];
    // A transport that adds X-Log-Offset on the wire, as NATS adds Nats-Msg-Id.
    const withOwnedHeader: TransportFactory = {
      kind: 'log',
      create: async (ctx) => {
        const transport = await inner.create(ctx);
        let offset = 0;
        const wrapped: Transport = {
          kind: transport.kind,
          features: transport.features,
          maxPayloadBytes: transport.maxPayloadBytes,
          ownedHeaders: ['X-Log-Offset'],
          ensureTopic: (topic, kind) => transport.ensureTopic(topic, kind),
          subscribe: (options, flow) => transport.subscribe(options, flow),
          health: () => transport.health(),
          close: (deadline) => transport.close(deadline),
          send: (message: OutboundMessage, done: PublishCallback) => {
            handedToSend.push({ topic: message.topic, headers: message.headers });
            const headers = { ...message.headers, 'X-Log-Offset': String(++offset) };
            transport.send({ ...message, headers }, done);
          },
        };
        return wrapped;
      },
    };
    const bus = await createEventBus({
      transport: withOwnedHeader,
      clientId: 'seam',
      metrics: { enabled: false },
    });
    await using _ = bus;
    const dead: Array<Record<string, string>> = [];
    const arrived = until(
      () => dead.length === 1,
      () => `${dead.length} dead letters`,
    );
    await bus.subscribe('seam.DLQ', (_data, ctx) => {
      dead.push({ ...ctx.headers });
      arrived.check();
    });
    await bus.subscribeEnvelope(
      'seam',
      () => {
        throw new Error('poison');
      },
      { maxAttempts: 1 },
    );
    await bus.publishEnvelope(
      'seam',
      { aggregateId: 'a', eventType: 'T', eventVersion: 0, payload: 0 },
      { headers: { 'X-Mine': 'kept' } },
    );
    await arrived.wait(30_000);
    const letter = handedToSend.find((m) => m.topic === 'seam.DLQ');
    assert.ok(letter, 'the dead letter was sent');
    assert.equal(letter.headers['X-Mine'], 'kept');
    assert.equal(letter.headers[Headers.aggregateId], 'a');
    assert.equal(letter.headers['X-Log-Offset'], undefined, "the delivered copy's wire header was copied");
  });
});
