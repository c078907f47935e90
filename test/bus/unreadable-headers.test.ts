/**
 * A message whose headers the client cannot parse (the transport decodes them
 * lazily and throws): building its task must not throw out of delivery (it
 * stayed in flight for ever), and it is dead-lettered with a precise reason,
 * also on a raw subscription (acking it would drop it without a trace).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { envelopeTaskFactory, rawTaskFactory } from '../../src/bus/tasks.ts';
import type { InboundMessage } from '../../src/core/transport.ts';
import { type FakeMessage, fakeMessage, harness, settleAll } from '../dispatch/helpers.ts';

function unreadable(id: string): FakeMessage {
  const message = fakeMessage(id);
  Object.defineProperty(message, 'headers', {
    get() {
      throw new Error("'Bad Name' is not a valid header name");
    },
  });
  return message;
}

describe('unreadable headers', () => {
  for (const kind of ['raw', 'envelope'] as const) {
    it(`${kind}: dead-lettered (not acked, not stranded) with the parse error as reason`, async () => {
      let handlerRuns = 0;
      const makeTask =
        kind === 'raw'
          ? rawTaskFactory('t', 'g', () => {
              handlerRuns++;
            })
          : envelopeTaskFactory('t', 'g', () => {
              handlerRuns++;
            });
      const { pool, deadLetters } = harness({ kind, maxAttempts: 3 });
      const bad = unreadable('bad');
      const task = makeTask(bad as InboundMessage); // must not throw
      pool.submit(task);
      await settleAll(pool);
      assert.equal(handlerRuns, 0);
      assert.equal(deadLetters.length, 1);
      assert.match(
        deadLetters[0]?.error.message ?? '',
        /^Expected message headers this client can parse, got: 'Bad Name' is not a valid header name$/,
      );
      assert.equal(deadLetters[0]?.attempts, 1, 'not retried: the input will not get better');
      assert.equal(bad.settled, 'term');
    });
  }
});
