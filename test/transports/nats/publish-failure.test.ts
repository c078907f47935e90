/**
 * When a publish fails for good (real nats-server; here a broker rejection):
 * the event gets exactly one failure result carrying its envelope; with scope
 * 'aggregate' the events of its aggregate queued behind it fail with it
 * (PublishHeldError), with scope 'event' they are stored; publishes accepted
 * afterwards flow in both. `publishEnvelopeAndWait` resolves on the ack and
 * rejects with the typed error.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  type Envelope,
  type EventBus,
  PublishHeldError,
  PublishRejectedError,
  type PublishResult,
} from '../../../src/index.ts';
import { deferred } from '../../../src/testing/index.ts';
import { useNatsBuses } from './helpers.ts';

describe('nats bus: a publish that fails for good', () => {
  const nats = useNatsBuses();
  const results = new Map<string, (r: PublishResult) => void>();
  const resultCount = new Map<string, number>();

  const open = (scope: 'aggregate' | 'event'): Promise<EventBus> =>
    nats.open(`fail-${scope}`, {
      publishFailureScope: scope,
      onPublishResult: (r) => {
        resultCount.set(r.eventId, (resultCount.get(r.eventId) ?? 0) + 1);
        results.get(r.eventId)?.(r);
      },
    });

  /** Accepts the event and returns (without waiting) the promise of its result. */
  const accept = async (
    bus: EventBus,
    topic: string,
    aggregateId: string,
    version: number,
    size = 10,
  ): Promise<{ result: Promise<PublishResult> }> => {
    const eventId = `${aggregateId}-${version}-${randomUUID().slice(0, 8)}`;
    const result = new Promise<PublishResult>((resolve) => results.set(eventId, resolve));
    await bus.publishEnvelope(topic, {
      eventId,
      aggregateId,
      eventType: 'T',
      eventVersion: version,
      payload: 'x'.repeat(size),
    });
    return { result }; // wrapped: an async function would otherwise wait for it
  };

  const setup = async (bus: EventBus) => {
    const topic = `fail-${randomUUID().slice(0, 6)}`;
    // The stream refuses messages over 2 KiB: a real broker rejection (not retryable).
    await nats.inspect.jsm.streams.add({
      name: `EVENTBUS_${topic}`,
      subjects: [topic, `${topic}.>`],
      max_msg_size: 2048,
    });
    const seen: Array<[string, number]> = [];
    const waits = new Map<string, () => void>();
    await bus.subscribeEnvelope(topic, (e: Envelope) => {
      seen.push([e.aggregateId, e.eventVersion]);
      waits.get(`${e.aggregateId}-${e.eventVersion}`)?.();
    });
    const consumed = (aggregateId: string, version: number): Promise<void> => {
      const d = deferred<void>();
      waits.set(`${aggregateId}-${version}`, () => d.resolve());
      return d.promise;
    };
    return { topic, seen, consumed };
  };

  it("scope 'aggregate': the queue behind the failed event fails with it, once each, in order; later ones flow", async () => {
    const bus = await open('aggregate');
    const { topic, seen, consumed } = await setup(bus);
    const a3 = consumed('A', 3);
    const b0 = consumed('B', 0);
    assert.equal((await (await accept(bus, topic, 'A', 0)).result).success, true);
    // A1 is rejected; A2 is accepted while A1 is still on the wire, so it waits behind it.
    const r1 = await accept(bus, topic, 'A', 1, 4096);
    const r2 = await accept(bus, topic, 'A', 2);
    const rb = await accept(bus, topic, 'B', 0);
    const [failed, held, other] = await Promise.all([r1.result, r2.result, rb.result]);
    assert.equal(failed.success, false);
    assert.ok(failed.error instanceof PublishRejectedError, String(failed.error));
    assert.equal(failed.envelope?.eventVersion, 1, 'the failure carries the envelope');
    assert.equal(failed.attempts, 1, 'a rejection is not retried');
    assert.ok(held.error instanceof PublishHeldError, JSON.stringify(held));
    assert.equal(held.error.heldBy, failed.eventId);
    assert.equal(held.attempts, 0, 'never sent');
    assert.equal(other.success, true, 'other aggregates are not affected');
    // Accepted after the failure: sent normally.
    assert.equal((await (await accept(bus, topic, 'A', 3)).result).success, true);
    await Promise.all([a3, b0]);
    assert.deepEqual(
      seen.filter(([id]) => id === 'A').map(([, v]) => v),
      [0, 3],
      'nothing after the failed event was stored before the failure was known',
    );
    for (const r of [failed, held, other])
      assert.equal(resultCount.get(r.eventId), 1, 'one result per event');
  });

  it("scope 'event': only the failed event fails; the queue behind it is stored in order", async () => {
    const bus = await open('event');
    const { topic, seen, consumed } = await setup(bus);
    const a2 = consumed('A', 2);
    const r1 = await accept(bus, topic, 'A', 1, 4096);
    const r2 = await accept(bus, topic, 'A', 2);
    const [failed, next] = await Promise.all([r1.result, r2.result]);
    assert.ok(failed.error instanceof PublishRejectedError);
    assert.equal(next.success, true);
    await a2;
    assert.deepEqual(seen, [['A', 2]]);
  });

  it('publishEnvelopeAndWait resolves once stored and rejects with the typed error', async () => {
    const bus = await open('aggregate');
    const { topic, consumed } = await setup(bus);
    const stored = consumed('W', 1);
    const ok = await bus.publishEnvelopeAndWait(topic, {
      aggregateId: 'W',
      eventType: 'T',
      eventVersion: 1,
      payload: {},
    });
    assert.equal(ok.success, true);
    assert.equal(typeof ok.sequence, 'number');
    await stored;
    await assert.rejects(
      bus.publishEnvelopeAndWait(topic, {
        aggregateId: 'W',
        eventType: 'T',
        eventVersion: 2,
        payload: 'x'.repeat(4096),
      }),
      (error: unknown) => error instanceof PublishRejectedError,
    );
    const raw = await bus.publishAndWait(`${topic}-raw`, new Uint8Array([1, 2, 3]));
    assert.equal(raw.success, true);
  });
});
