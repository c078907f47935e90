import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ConsumerInfo, JetStreamManager } from '@nats-io/jetstream';
import { TransportError } from '../../../src/core/errors.ts';
import { listConsumers } from '../../../src/transports/nats/consumer.ts';

/** The one call listConsumers makes, answering with these pages (nats-server 2.9 lists an unloaded consumer as null). */
function lister(entries: ReadonlyArray<ConsumerInfo | null>): JetStreamManager {
  return {
    consumers: {
      async *list() {
        yield* entries;
      },
    },
  } as unknown as JetStreamManager;
}

describe('listConsumers', () => {
  it('returns every consumer of a complete list', async () => {
    const a = { name: 'g_p0_1_0' } as ConsumerInfo;
    const b = { name: 'g_p1_2_0' } as ConsumerInfo;
    assert.deepEqual(await listConsumers(lister([a, b]), 'S'), [a, b]);
  });

  it('refuses a list with a consumer the server has not loaded yet: retryable, never a partial answer', async () => {
    const a = { name: 'g_p0_1_0' } as ConsumerInfo;
    await assert.rejects(listConsumers(lister([a, null]), 'EVENTBUS_t'), (error: unknown) => {
      assert.ok(error instanceof TransportError);
      assert.equal(error.retryable, true);
      assert.match(error.message, /consumer list of stream EVENTBUS_t is incomplete/);
      return true;
    });
  });
});
