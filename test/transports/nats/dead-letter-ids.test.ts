/**
 * Dead letters are de-duplicated by message id (a crash between the DLQ ack and
 * settling the original dead-letters it again). The id must not collide for a
 * *different* message: after a stream is recreated its sequences start at 1
 * again, and a dead letter for the new sequence 1 inside the DLQ's duplicate
 * window was dropped as a duplicate while its original was terminated — lost.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { until } from '../../../src/testing/index.ts';
import { streamNameFor } from '../../../src/transports/nats/names.ts';
import { NATS_DEFAULTS } from '../../../src/transports/nats/options.ts';
import { useNatsBuses } from './helpers.ts';

describe('nats bus: dead-letter ids', () => {
  const nats = useNatsBuses();
  const { open } = nats;

  it('a recreated stream reusing sequence 1: both dead letters are kept, with their group', async () => {
    const topic = `dlqid-${randomUUID().slice(0, 6)}`;
    const letters = new Map<string, Readonly<Record<string, string>>>();
    const signals: Array<{ check(): void }> = [];
    const watcher = await open('watcher');
    await watcher.subscribeEnvelope(
      `${topic}.DLQ`,
      (e, ctx) => {
        letters.set(e.eventId, ctx.headers);
        for (const signal of signals) signal.check();
      },
      { group: 'watch' },
    );
    const fail = (): never => {
      throw new Error('always fails');
    };

    const first = await open('first');
    await first.subscribeEnvelope(topic, fail, { group: 'g', maxAttempts: 1 });
    const a = await first.publishEnvelope(topic, {
      aggregateId: 'A',
      eventType: 'T',
      eventVersion: 0,
      payload: 1,
    });
    const one = until(
      () => letters.has(a.eventId),
      () => 'first dead letter',
    );
    signals.push(one);
    await one.wait(15_000);
    await first.close({ timeoutMs: 5_000 });

    // Someone deletes and recreates the stream: sequences restart at 1.
    await nats.inspect.jsm.streams.delete(streamNameFor(NATS_DEFAULTS.streamPrefix, topic));
    const second = await open('second');
    await second.subscribeEnvelope(topic, fail, { group: 'g', maxAttempts: 1 });
    const both = until(
      () => letters.size === 2,
      () => `dead letters: ${[...letters.keys()].join(', ')}`,
    );
    signals.push(both);
    const b = await second.publishEnvelope(topic, {
      aggregateId: 'B',
      eventType: 'T',
      eventVersion: 0,
      payload: 2,
    });
    await both.wait(15_000);
    assert.ok(letters.has(b.eventId), 'the second dead letter was stored, not dropped as a duplicate');
    assert.equal(letters.get(b.eventId)?.['X-DLQ-Original-Sequence'], '1');
    assert.equal(letters.get(a.eventId)?.['X-DLQ-Original-Sequence'], '1');
    assert.equal(letters.get(b.eventId)?.['X-DLQ-Group'], 'g');
  });
});
