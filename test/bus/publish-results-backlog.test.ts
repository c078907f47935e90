/**
 * An unread publishResults() stream uses up the publish window; it must not
 * stall publishing silently: reaching half the window logs a warning naming
 * the cause, once, and again only after the reader caught up.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createEventBus, type Logger } from '../../src/index.ts';

function recordingLogger(): { logger: Logger; warnings: { obj: unknown; msg: string | undefined }[] } {
  const warnings: { obj: unknown; msg: string | undefined }[] = [];
  const noop = () => {};
  return {
    warnings,
    logger: { debug: noop, info: noop, error: noop, warn: (obj, msg) => warnings.push({ obj, msg }) },
  };
}

describe('publishResults() backlog', () => {
  it('warns once when an unread stream reaches half the window, again after it drained', async () => {
    const { logger, warnings } = recordingLogger();
    const bus = await createEventBus({
      transport: 'memory',
      clientId: 'backlog',
      maxPendingPublishes: 20,
      logger,
    });
    const stream = bus.publishResults();
    const iterator = stream[Symbol.asyncIterator]();
    const publish = async (from: number, count: number) => {
      for (let i = from; i < from + count; i++) {
        await bus.publishEnvelope('backlog', {
          aggregateId: `a-${i}`,
          eventType: 'T',
          eventVersion: 1,
          payload: {},
        });
      }
      await bus.flush({ timeoutMs: 10_000 });
    };
    const backlogWarnings = () =>
      warnings.filter((w) => w.msg?.includes('publishResults() stream is not being read'));
    try {
      await publish(0, 9);
      assert.equal(backlogWarnings().length, 0, 'below half the window: no warning');
      assert.equal(bus.health().unreadPublishResults, 9);
      assert.equal(bus.health().status, 'ok');
      await publish(9, 3);
      assert.equal(backlogWarnings().length, 1);
      // The stalling reader shows in health() too, where readiness probes look.
      assert.equal(bus.health().unreadPublishResults, 12);
      assert.equal(bus.health().status, 'degraded');
      assert.deepEqual(backlogWarnings()[0]?.obj, { backlog: 10, maxPendingPublishes: 20 });
      // Reading until the backlog is below a quarter of the window re-arms the warning.
      for (let i = 0; i < 8; i++) assert.equal((await iterator.next()).done, false);
      assert.equal(bus.health().status, 'ok', 'caught up: healthy again');
      await publish(12, 5);
      assert.equal(backlogWarnings().length, 1, 'backlog 9: still below half the window');
      await publish(17, 1);
      assert.equal(backlogWarnings().length, 2);
      assert.deepEqual(backlogWarnings()[1]?.obj, { backlog: 10, maxPendingPublishes: 20 });
    } finally {
      await iterator.return?.();
      await bus.close();
    }
  });
});
