/**
 * One lifecycle: subscriptions and the bus close with `{ signal, timeoutMs }`
 * (whichever ends first), subscriptions are `AsyncDisposable`, and `closed`
 * resolves once they are closed. Real memory bus.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createEventBus, createMemoryBroker, InvalidArgumentError, memory } from '../../src/index.ts';
import { deferred, until } from '../../src/testing/index.ts';

// Long enough that a close ignoring its signal outlives the test's own timeout.
const closeTimeoutMs = 600_000;

const memoryBus = (broker = createMemoryBroker()) =>
  createEventBus({
    transport: memory({ broker }),
    clientId: 'close',
    closeTimeoutMs,
    metrics: { enabled: false },
  });

/** A subscription whose handler never finishes on its own (it ends when its signal aborts). */
async function blockedSubscription(bus: Awaited<ReturnType<typeof memoryBus>>, topic: string) {
  const entered = deferred();
  const aborted: unknown[] = [];
  const subscription = await bus.subscribeEnvelope(topic, async (_env, ctx) => {
    entered.resolve();
    await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
    aborted.push(ctx.signal.reason);
    throw new Error('aborted');
  });
  await bus.publishEnvelope(topic, { aggregateId: 'a', eventType: 'T', eventVersion: 0, payload: 0 });
  await entered.promise;
  return { subscription, aborted };
}

describe('close({ signal, timeoutMs }) and Symbol.asyncDispose', { timeout: 60_000 }, () => {
  it('a subscription is disposed by `await using`, and `closed` resolves', async () => {
    await using bus = await memoryBus();
    let closed = false;
    {
      await using subscription = await bus.subscribeEnvelope('dispose', () => {});
      void subscription.closed.then(() => {
        closed = true;
      });
    }
    assert.equal(closed, true);
    assert.equal(bus.health().subscriptions.length, 0);
  });

  it("a subscription's close ends when its signal aborts, not at its timeout", async () => {
    await using bus = await memoryBus();
    const { subscription, aborted } = await blockedSubscription(bus, 'sub-signal');
    const stop = new AbortController();
    const closing = subscription.close({ signal: stop.signal });
    stop.abort();
    await closing;
    await subscription.closed;
    assert.equal(aborted.length, 1, 'the running handler was told to stop');
  });

  it("the bus's close passes its signal down to every subscription and the transport", async () => {
    const broker = createMemoryBroker();
    const bus = await memoryBus(broker);
    const { aborted } = await blockedSubscription(bus, 'bus-signal');
    await bus.close({ signal: AbortSignal.abort() });
    await bus.closed;
    assert.equal(aborted.length, 1);
    assert.equal(bus.health().status, 'closed');
    // The unfinished event was released: the group's next member gets it.
    await using next = await memoryBus(broker);
    const got: number[] = [];
    const arrived = until(
      () => got.length === 1,
      () => 'the released event never came back',
    );
    await next.subscribeEnvelope<number>('bus-signal', (env) => {
      got.push(env.payload);
      arrived.check();
    });
    await arrived.wait(30_000);
  });

  it('rejects bad close options with a typed error', async () => {
    await using bus = await memoryBus();
    const subscription = await bus.subscribeEnvelope('bad-options', () => {});
    await assert.rejects(subscription.close({ timeoutMs: -1 }), InvalidArgumentError);
    await assert.rejects(subscription.close({ signal: 'soon' as never }), InvalidArgumentError);
    await subscription.close();
  });
});
