/**
 * A subscription's health signals describe the present: a transport error
 * counts until the transport delivers again; a message delivered many times
 * (a redelivery loop) is reported. Before, one transient error left the bus
 * `degraded` for ever and a redelivery loop was `ok`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BusSubscription, redeliveryLoopCount } from '../../src/bus/subscription.ts';
import { TransportError } from '../../src/core/errors.ts';
import type { FlowControl, InboundMessage, Transport } from '../../src/core/transport.ts';
import { fakeMessage, harness } from '../dispatch/helpers.ts';

async function started(): Promise<{ subscription: BusSubscription; flow: FlowControl }> {
  let flow: FlowControl | undefined;
  const transport = {
    subscribe: async (_options: unknown, f: FlowControl) => {
      flow = f;
      return { stop: async () => {}, close: async () => {} };
    },
  } as unknown as Transport;
  const { pool, options, logger } = harness();
  const subscription = new BusSubscription({
    transport,
    pool,
    options,
    makeTask: (message) => ({ key: 'k', message, run: () => Promise.resolve() }),
    logger,
    defaultCloseTimeoutMs: 1_000,
    onClosed: () => {},
  });
  await subscription.start();
  return { subscription, flow: flow as FlowControl };
}

function delivered(count: number): InboundMessage {
  return { ...fakeMessage(`m${count}`), deliveryCount: count };
}

describe('subscription health signals', () => {
  it('a transport error is current until the transport delivers again', async () => {
    const { subscription, flow } = await started();
    const current = (): string | undefined => subscription.lastError?.message;
    assert.equal(current(), undefined);
    flow.reportError(new TransportError('pull failed'));
    assert.equal(current(), 'pull failed');
    flow.deliver(delivered(1));
    assert.equal(current(), undefined, 'recovered: delivering again');
    await subscription.close();
  });

  it(`a message delivered ${redeliveryLoopCount} times is reported as a redelivery loop`, async () => {
    const { subscription, flow } = await started();
    const loop = (): string | undefined => subscription.redeliveryLoop;
    flow.deliver(delivered(redeliveryLoopCount - 1));
    assert.equal(loop(), undefined);
    flow.deliver(delivered(redeliveryLoopCount + 2));
    assert.match(loop() ?? '', /delivered 12 times/);
    await subscription.close();
  });
});
