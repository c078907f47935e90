/**
 * health() through the bus (memory transport), for two cases of issue 12 the
 * unit tests only check below the bus: a timed-out handler that ignores its
 * abort signal makes the bus `degraded` with a "stuck handler" problem while
 * it runs and `ok` once it settled (before, health() said `ok` throughout);
 * and the library installs no process-wide error handlers (the README says
 * so: an error a handler leaves outside its promise is the application's).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createEventBus, createMemoryBroker } from '../../src/index.ts';
import { deferred, until } from '../../src/testing/index.ts';

describe('health() now, through the bus', () => {
  it('a handler that ignores its abort: degraded with a stuck-handler problem while it runs, ok once it settled', async () => {
    const bus = await createEventBus({
      transport: 'memory',
      clientId: 'health-now',
      metrics: { enabled: false },
      memory: { broker: createMemoryBroker() },
      logger: { debug() {}, info() {}, warn() {}, error() {} },
    });
    const release = deferred();
    const started = deferred();
    let runs = 0;
    await bus.subscribeEnvelope(
      'stuck',
      async () => {
        runs++;
        started.resolve();
        if (runs === 1) await release.promise; // ignores ctx.signal
      },
      { group: 'g', handlerTimeoutMs: 20, maxAttempts: 2 },
    );
    try {
      await stuckThenRecovered();
    } finally {
      release.resolve(); // a failed assertion must not leave the handler (and the test process) waiting
      await bus.close({ timeoutMs: 1_000 });
    }

    async function stuckThenRecovered(): Promise<void> {
      await bus.publishEnvelope('stuck', { aggregateId: 'a', eventType: 'T', eventVersion: 1, payload: {} });
      await started.promise;
      const stuck = until(
        () => bus.health().subscriptions[0]?.stuckHandlers === 1,
        () => JSON.stringify(bus.health()),
      );
      // The sweep reports it: check on its own schedule (no event to hook into from outside the pool).
      const poll = setInterval(() => stuck.check(), 10);
      try {
        await stuck.wait(5_000);
      } finally {
        clearInterval(poll);
      }
      const during = bus.health();
      assert.equal(during.status, 'degraded');
      assert.match(during.subscriptions[0]?.problems?.join('\n') ?? '', /1 stuck handler/);

      release.resolve();
      const recovered = until(
        () => runs === 2 && bus.health().status === 'ok',
        () => `runs=${runs} ${JSON.stringify(bus.health())}`,
      );
      const poll2 = setInterval(() => recovered.check(), 10);
      try {
        await recovered.wait(5_000);
      } finally {
        clearInterval(poll2);
      }
      assert.equal(bus.health().subscriptions[0]?.problems, undefined);
    }
  });

  it('installs no process-wide error handlers', async () => {
    const events = ['uncaughtException', 'unhandledRejection', 'uncaughtExceptionMonitor'] as const;
    const before = events.map((e) => process.listenerCount(e));
    const bus = await createEventBus({
      transport: 'memory',
      clientId: 'no-global-handlers',
      metrics: { enabled: false },
      memory: { broker: createMemoryBroker() },
    });
    await bus.subscribeEnvelope('t', () => {}, { group: 'g' });
    await bus.subscribe('r', () => {});
    assert.deepEqual(
      events.map((e) => process.listenerCount(e)),
      before,
    );
    await bus.close();
  });
});
