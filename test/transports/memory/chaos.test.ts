import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { createEventBus, createMemoryBroker, InvalidArgumentError } from '../../../src/index.ts';
import { createOrderChecker, formatReport, until } from '../../../src/testing/index.ts';

describe('memory transport chaos mode', () => {
  it('injects duplicates and delays; ordering per aggregate and no loss still hold', async () => {
    const broker = createMemoryBroker();
    const checker = createOrderChecker();
    const producer = await createEventBus({
      transport: 'memory',
      clientId: 'chaos-p',
      memory: { broker },
      metrics: { enabled: false },
      onPublishResult: (r) => (r.success ? checker.acknowledged(r.eventId) : checker.failed(r.eventId)),
    });
    const consumer = await createEventBus({
      transport: 'memory',
      clientId: 'chaos-c',
      memory: { broker, chaos: { duplicateRate: 0.2, maxDelayMs: 2, seed: 42 } },
      metrics: { enabled: false },
    });
    const total = 2000;
    const done = until(
      () => checker.expectedCount() === total && checker.outstanding() === 0,
      () => formatReport(checker.report()),
    );
    await consumer.subscribeEnvelope('chaos', (e) => {
      checker.observe(e.eventId, e.aggregateId, e.eventVersion);
      done.check();
    });
    for (let i = 0; i < total; i++) {
      const eventId = randomUUID();
      const key = `a${i % 20}`;
      checker.expect(eventId, key, Math.floor(i / 20));
      await producer.publishEnvelope('chaos', {
        eventId,
        aggregateId: key,
        eventType: 'T',
        eventVersion: i,
        payload: i,
      });
    }
    await producer.flush();
    done.check();
    await done.wait(20_000);
    await Promise.all([producer.close(), consumer.close()]);
    const r = checker.report();
    assert.equal(r.lost, 0, formatReport(r));
    assert.equal(r.outOfOrder, 0, formatReport(r));
    assert.ok(r.duplicated > 100, `chaos should have produced duplicates: ${formatReport(r)}`);
  });

  it('validates chaos options', async () => {
    await assert.rejects(
      createEventBus({ transport: 'memory', clientId: 'x', memory: { chaos: { duplicateRate: 2 } } }),
      InvalidArgumentError,
    );
  });
});
