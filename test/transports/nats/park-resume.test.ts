/**
 * Park that can be resumed, on a real nats-server (issue 12): the parked
 * aggregates live in the `<prefix>_PARKED` KV bucket and their events in
 * `<topic>.PARKED`, so a consumer that restarts still holds the aggregate's
 * newer events back; resume() replays the parked events in order before the
 * newer ones, deletes them from the parked stream and unparks.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import type { Envelope, EventBus, Subscription } from '../../../src/index.ts';
import { createOrderChecker, formatReport } from '../../../src/testing/checker.ts';
import { type Signal, until } from '../../../src/testing/index.ts';
import { streamNameFor } from '../../../src/transports/nats/names.ts';
import { NATS_DEFAULTS } from '../../../src/transports/nats/options.ts';
import { useNatsBuses } from './helpers.ts';

interface Payload {
  readonly index: number;
}

describe('nats: park, restart, resume', () => {
  const nats = useNatsBuses();
  const { open } = nats;

  it('parked state survives a consumer restart; resume replays the parked events in order, before newer ones', {
    timeout: 60_000,
  }, async () => {
    const topic = `park-${randomUUID().slice(0, 6)}`;
    const checker = createOrderChecker();
    const signals: Signal[] = [];
    const seen: string[] = [];
    let poisoned = true;
    const handler = (e: Envelope<Payload>): void => {
      if (e.aggregateId === 'a' && e.payload.index === 1 && poisoned) throw new Error('poison');
      checker.observe(e.eventId, e.aggregateId, e.payload.index);
      seen.push(`${e.aggregateId}${e.payload.index}`);
      for (const s of signals) s.check();
    };
    const subscribe = (bus: EventBus): Promise<Subscription> =>
      bus.subscribeEnvelope<Payload>(topic, handler, {
        group: 'g',
        deadLetterPolicy: 'park',
        maxAttempts: 2,
        backoff: { initialMs: 1, maxMs: 1 },
      });
    const producer = await open(`producer-${topic}`);
    let parkedSeen = 0;
    await producer.subscribe(
      `${topic}.PARKED`,
      () => {
        parkedSeen++;
        for (const s of signals) s.check();
      },
      { group: 'watch' },
    );
    const next = { a: 0, b: 0 };
    const publish = async (aggregateId: 'a' | 'b'): Promise<void> => {
      const index = next[aggregateId]++;
      // Announced before publishing: delivery may come before publishEnvelope resolves.
      const eventId = randomUUID();
      checker.expect(eventId, aggregateId, index);
      await producer.publishEnvelope(topic, {
        eventId,
        aggregateId,
        eventType: 'T',
        eventVersion: 1,
        payload: { index },
      });
      checker.acknowledged(eventId);
    };
    const waitFor = async (what: () => boolean, describe: string): Promise<void> => {
      const signal = until(
        what,
        () => `${describe}: ${formatReport(checker.report())} seen=${seen.join(',')} parked=${parkedSeen}`,
      );
      signals.push(signal);
      await signal.wait(20_000);
    };

    let consumer = await open(`consumer-1-${topic}`);
    await subscribe(consumer);
    for (let i = 0; i < 4; i++) await publish('a'); // a0 ok, a1 poison → DLQ + parked, a2 a3 parked
    await publish('b');
    await waitFor(() => seen.includes('b0') && parkedSeen === 2, 'a parked, b flowing');
    assert.deepEqual(
      seen.filter((s) => s.startsWith('a')),
      ['a0'],
    );

    await consumer.close({ timeoutMs: 5_000 });
    consumer = await open(`consumer-2-${topic}`);
    const subscription = await subscribe(consumer);
    await publish('a'); // a4: parked by the new process, not run
    await publish('b');
    await waitFor(() => seen.includes('b1') && parkedSeen === 3, 'a4 parked after the restart');
    assert.deepEqual(
      seen.filter((s) => s.startsWith('a')),
      ['a0'],
      'after the restart the aggregate is still parked',
    );

    poisoned = false;
    assert.deepEqual(await subscription.resume('a'), { resumed: true, replayed: 3 });
    await publish('a'); // a5 runs after the replay
    await waitFor(() => seen.includes('a5'), 'a5 handled');
    assert.deepEqual(
      seen.filter((s) => s.startsWith('a')),
      ['a0', 'a2', 'a3', 'a4', 'a5'],
    );
    const report = checker.report();
    assert.equal(report.outOfOrder, 0, formatReport(report));
    assert.equal(report.lost, 1, `only the poison event (in the DLQ) is unconsumed: ${formatReport(report)}`);
    const parkedStream = await nats.inspect.jsm.streams.info(
      streamNameFor(NATS_DEFAULTS.streamPrefix, `${topic}.PARKED`),
    );
    assert.equal(parkedStream.state.messages, 0, 'replayed events were deleted from the parked stream');
    assert.equal(parkedStream.config.storage, 'file');
    assert.deepEqual(await subscription.resume('a'), { resumed: false, replayed: 0 });
  });
});
