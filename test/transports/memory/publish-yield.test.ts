/**
 * A publisher that awaits every result in a loop must not starve the event
 * loop on the memory transport: its results are a microtask away, so without
 * a turn of the event loop now and then no timer ran until the loop ended
 * (the bench's 100k publish loop lost every partition lease it held).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createEventBus, createMemoryBroker } from '../../../src/index.ts';

describe('memory transport: a tight publish loop', () => {
  it('lets timers run while it publishes', async () => {
    const bus = await createEventBus({
      transport: 'memory',
      clientId: 'tight-loop',
      memory: { broker: createMemoryBroker() },
      metrics: { enabled: false },
    });
    try {
      let timerRan = false;
      setTimeout(() => {
        timerRan = true;
      }, 0);
      // Bounded: far more publishes than any machine does before a 0 ms timer is due
      // once the event loop turns (the loop ends as soon as the timer ran).
      const limit = 200_000;
      let published = 0;
      while (!timerRan && published < limit) {
        await bus.publishEnvelope('tight.loop', {
          aggregateId: `a-${published % 100}`,
          eventType: 'T',
          eventVersion: Math.floor(published / 100),
          payload: { n: published },
        });
        published++;
      }
      assert.ok(timerRan, `a 0 ms timer did not run during ${published} awaited publishes`);
    } finally {
      await bus.close();
    }
  });
});
