import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  createEnvelope,
  createEventBus,
  createMemoryBroker,
  decodeEnvelope,
  type EnvelopeInput,
  InvalidArgumentError,
  ValidationError,
} from '../../src/index.ts';

const valid: EnvelopeInput = {
  eventId: 'e-1',
  aggregateId: 'Order:42/line_7.a-b',
  eventType: 'OrderPlaced',
  eventVersion: 1,
  payload: { x: 1 },
};

/** Inputs our default rules accept but the Go SDK's Validate() rejects, and the field it names. */
const goRejects: Array<[Partial<EnvelopeInput>, string]> = [
  [{ eventVersion: 0 }, 'eventVersion'],
  [{ eventId: '   ' }, 'eventId'],
  [{ eventType: '\t' }, 'eventType'],
  [{ aggregateId: 'order 42' }, 'aggregateId'],
  [{ aggregateId: ' order-42' }, 'aggregateId'],
  [{ aggregateId: 'order#42' }, 'aggregateId'],
  [{ aggregateId: 'zamówienie-42' }, 'aggregateId'],
  [{ aggregateId: 'a'.repeat(257) }, 'aggregateId'],
];

describe("interop 'jxt-go': the Go SDK's Validate() at publish", () => {
  it('rejects what a Go consumer would reject, naming the field; the default rules stay liberal', () => {
    assert.equal(createEnvelope(valid, 'jxt-go').aggregateId, valid.aggregateId);
    assert.equal(
      createEnvelope({ ...valid, aggregateId: 'a'.repeat(256) }, 'jxt-go').aggregateId.length,
      256,
    );
    for (const [change, field] of goRejects) {
      const input = { ...valid, ...change };
      if (field !== 'aggregateId' || input.aggregateId.length <= 256) {
        assert.doesNotThrow(() => createEnvelope(input), `default rules accept ${JSON.stringify(change)}`);
      }
      assert.throws(
        () => createEnvelope(input, 'jxt-go'),
        (e: unknown) => e instanceof ValidationError && e.field === field,
        `jxt-go rejects ${JSON.stringify(change)}`,
      );
    }
  });

  it('is a validated bus option, enforced by publishEnvelope', async () => {
    await assert.rejects(
      createEventBus({ transport: 'memory', clientId: 'x', interop: 'go' as never }),
      (e: unknown) =>
        e instanceof InvalidArgumentError && /`interop` to be 'none' or 'jxt-go'/.test(e.message),
    );
    const broker = createMemoryBroker();
    const open = (interop: 'none' | 'jxt-go') =>
      createEventBus({
        transport: 'memory',
        clientId: 'x',
        interop,
        memory: { broker },
        metrics: { enabled: false },
      });
    await using goBus = await open('jxt-go');
    await using plainBus = await open('none');
    for (const [change, field] of goRejects.slice(0, 4)) {
      await assert.rejects(
        goBus.publishEnvelope('t', { ...valid, ...change }),
        (e: unknown) => e instanceof ValidationError && e.field === field,
      );
    }
    await goBus.publishEnvelope('t', { ...valid, eventId: 'e-go' });
    await plainBus.publishEnvelope('t', { ...valid, eventId: 'e-plain', eventVersion: 0 });
    await goBus.flush();
    await plainBus.flush();
    const stored = broker.messages('t').map((m) => decodeEnvelope(m.data));
    assert.deepEqual(
      stored.map((e) => [e.eventId, e.eventVersion]),
      [
        ['e-go', 1],
        ['e-plain', 0],
      ],
      'only the valid envelope of the jxt-go bus and the liberal one of the default bus were stored',
    );
  });
});
