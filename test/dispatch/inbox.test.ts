import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Inbox } from '../../src/dispatch/inbox.ts';
import { task } from './helpers.ts';

test('Inbox is FIFO across wrap-around and growth, and clear() returns the rest in order', () => {
  const inbox = new Inbox(4);
  const seen: string[] = [];
  let next = 0;
  // Interleave pushes and shifts so the ring wraps, then overfill so it grows.
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 3 + (round % 5); i++) inbox.push(task(`k${next}`), `k${next++}`, round);
    for (let i = 0; i < 3; i++) {
      assert.equal(inbox.peek()?.key, inbox.headKey());
      seen.push(inbox.headKey());
      inbox.shift();
    }
  }
  const rest = inbox.clear().map((t) => t.key);
  assert.equal(inbox.length, 0);
  assert.equal(inbox.peek(), undefined);
  assert.deepEqual(
    [...seen, ...rest],
    Array.from({ length: next }, (_, i) => `k${i}`),
  );
});

test('Inbox.touchOlderThan restamps only old entries', () => {
  const inbox = new Inbox(2);
  inbox.push(task('a'), 'a', 10);
  inbox.push(task('b'), 'b', 50);
  inbox.push(task('c'), 'c', 20);
  const touched: string[] = [];
  inbox.touchOlderThan(20, 100, (t) => {
    touched.push(t.key ?? '');
  });
  assert.deepEqual(touched, ['a', 'c']);
  touched.length = 0;
  inbox.touchOlderThan(60, 200, (t) => {
    touched.push(t.key ?? '');
  });
  assert.deepEqual(touched, ['b']);
  assert.equal(inbox.headStamp(), 100);
});
