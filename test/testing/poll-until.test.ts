/** pollUntil (src/testing/waiters.ts) on mock timers: the test moves the clock. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as turn } from 'node:timers/promises';
import { pollUntil } from '../../src/testing/waiters.ts';

describe('pollUntil', () => {
  it('re-reads the state each interval and resolves once it holds', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    let reads = 0;
    let ready = false;
    let done = false;
    void pollUntil(
      () => {
        reads++;
        return ready;
      },
      { what: 'ready', intervalMs: 20 },
    ).then(() => {
      done = true;
    });
    await turn();
    assert.equal(reads, 1);
    t.mock.timers.tick(20);
    await turn();
    assert.equal(reads, 2);
    ready = true;
    t.mock.timers.tick(20);
    await turn();
    assert.equal(done, true);
    assert.equal(reads, 3);
  });

  it('rejects after the deadline, naming what it waited for and the detail', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    const waited = pollUntil(async () => false, {
      what: 'the relay to drain',
      timeoutMs: 100,
      intervalMs: 50,
      describe: () => '3 rows left',
    });
    const outcome = waited.then(
      () => 'resolved',
      (error: Error) => error.message,
    );
    for (let i = 0; i < 3; i++) {
      await turn();
      t.mock.timers.tick(50);
    }
    await turn();
    assert.equal(await outcome, 'Timed out after 100 ms waiting for the relay to drain: 3 rows left');
  });
});
