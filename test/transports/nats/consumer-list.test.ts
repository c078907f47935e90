import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ConsumerInfo, JetStreamManager } from '@nats-io/jetstream';
import { TransportError } from '../../../src/core/errors.ts';
import { ConsumerListing, listConsumers } from '../../../src/transports/nats/consumer.ts';

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

/** A server whose listings the test answers one by one: `sent` holds each listing's release. */
function heldLister(): { jsm: JetStreamManager; sent: Array<(names: string[]) => void> } {
  const sent: Array<(names: string[]) => void> = [];
  const jsm = {
    consumers: {
      list() {
        const answer = new Promise<string[]>((resolve) => sent.push(resolve));
        return (async function* () {
          for (const name of await answer) yield { name } as ConsumerInfo;
        })();
      },
    },
  } as unknown as JetStreamManager;
  return { jsm, sent };
}

const names = (infos: ConsumerInfo[]): string[] => infos.map((i) => i.name);

describe('ConsumerListing', () => {
  it('callers that ask while a listing is out share the next one, sent after they asked', async () => {
    const { jsm, sent } = heldLister();
    const listing = new ConsumerListing(jsm, 'S');
    const first = listing.list();
    const waiting = [listing.list(), listing.list(), listing.list()];
    assert.equal(sent.length, 1, 'one listing on the wire');
    sent[0]?.(['a']);
    assert.deepEqual(names(await first), ['a']);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(sent.length, 2, 'the three callers share one listing, sent after the first returned');
    sent[1]?.(['a', 'b']);
    for (const answer of await Promise.all(waiting)) assert.deepEqual(names(answer), ['a', 'b']);
    const later = listing.list();
    assert.equal(sent.length, 3, 'nothing out: a new caller sends at once');
    sent[2]?.(['a', 'b', 'c']);
    assert.deepEqual(names(await later), ['a', 'b', 'c']);
  });

  it('a failed listing fails its callers only; the next one is sent all the same', async () => {
    const jsm = {
      consumers: {
        list: () =>
          (async function* () {
            yield null; // an incomplete list (a restart)
          })(),
      },
    } as unknown as JetStreamManager;
    const listing = new ConsumerListing(jsm, 'S');
    const first = listing.list();
    const second = listing.list();
    await assert.rejects(first, TransportError);
    await assert.rejects(second, TransportError);
  });
});
