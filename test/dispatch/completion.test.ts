import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deferred, flush, harness, settleAll, task } from './helpers.ts';

test('a message is acked only after its handler finished successfully', async () => {
  const { pool } = harness();
  const gate = deferred();
  const t = task('a', async () => {
    await gate.promise;
    await Promise.resolve();
    t.message.calls.push('handler-finished');
  });
  pool.submit(t);
  await flush();
  await flush();
  assert.deepEqual(t.message.calls, [], 'nothing settled while the handler runs');
  gate.resolve();
  assert.equal(await t.message.whenSettled, 'ack');
  assert.deepEqual(t.message.calls, ['handler-finished', 'ack']);
  await settleAll(pool);
});

test('a failing envelope handler is never acked', async () => {
  const { pool } = harness({ maxAttempts: 2 });
  const t = task('a', () => Promise.reject(new Error('boom')));
  pool.submit(t);
  await settleAll(pool);
  assert.equal(t.runs.length, 2);
  assert.equal(t.message.calls.includes('ack'), false);
  assert.equal(t.message.settled, 'term');
});
