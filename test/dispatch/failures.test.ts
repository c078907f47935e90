import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DecodeError } from '../../src/core/errors.ts';
import { actorIndexFor } from '../../src/core/hash.ts';
import { deferred, flush, harness, settleAll, task } from './helpers.ts';

const boom = (): Promise<void> => Promise.reject(new Error('boom'));

/** A key the hash places on a different actor than `key`. */
function otherActorKey(key: string, actors: number): string {
  for (let i = 0; ; i++) {
    if (actorIndexFor(`other-${i}`, actors) !== actorIndexFor(key, actors)) return `other-${i}`;
  }
}

describe('raw failures (at-most-once)', () => {
  test('a failed raw handler is counted, logged and acked, never retried', async () => {
    const { pool, metrics, logger, deadLetters } = harness({ kind: 'raw' });
    const failed = task('a', boom);
    const next = task('a');
    pool.submit(failed);
    pool.submit(next);
    await settleAll(pool);
    assert.equal(failed.runs.length, 1);
    assert.deepEqual(failed.message.calls, ['ack']);
    assert.deepEqual(next.message.calls, ['ack']);
    assert.equal(metrics.rawFailures, 1);
    assert.equal(deadLetters.length, 0);
    assert.ok(
      logger.entries.some((e) => e.level === 'warn' && /Raw message handler failed/.test(e.msg ?? '')),
    );
  });
});

describe('envelope failures (retry in place, then dead letter)', () => {
  test('retries with exponential backoff and jitter until the handler succeeds', async () => {
    const delays: number[] = [];
    const { pool, deadLetters } = harness({
      sleep: (ms) => {
        delays.push(ms);
        return Promise.resolve();
      },
    });
    const t = task('a', (attempt) => (attempt < 3 ? boom() : Promise.resolve()));
    pool.submit(t);
    await settleAll(pool);
    assert.deepEqual(
      t.runs.map((r) => r.attempt),
      [1, 2, 3],
    );
    assert.deepEqual(t.message.calls, ['ack']);
    assert.equal(deadLetters.length, 0);
    // Defaults: 100 ms then 200 ms, each reduced by up to 20 % jitter.
    assert.equal(delays.length, 2);
    assert.ok(delays[0]! >= 80 && delays[0]! <= 100, `first delay ${delays[0]}`);
    assert.ok(delays[1]! >= 160 && delays[1]! <= 200, `second delay ${delays[1]}`);
  });

  test("holds the aggregate's later messages during retries while other actors keep flowing", {
    timeout: 5_000,
  }, async () => {
    const backoff = deferred();
    const sleeping = deferred();
    const { pool } = harness({
      actors: 8,
      sleep: () => {
        sleeping.resolve();
        return backoff.promise;
      },
    });
    const order: string[] = [];
    const failing = task('a', async (attempt) => {
      order.push(`a1#${attempt}`);
      if (attempt === 1) throw new Error('transient');
    });
    const later = task('a', async () => {
      order.push('a2');
    });
    const other = task(otherActorKey('a', 8), async () => {
      order.push('other');
    });
    pool.submit(failing);
    pool.submit(later);
    await sleeping.promise; // a1 failed and is backing off
    pool.submit(other);
    assert.equal(await other.message.whenSettled, 'ack');
    await flush();
    assert.equal(later.runs.length, 0, 'a2 must wait for a1');
    backoff.resolve();
    await settleAll(pool);
    assert.deepEqual(order, ['a1#1', 'other', 'a1#2', 'a2']);
  });

  test('after maxAttempts: dead-letters, terms only once that resolved, then continues with the next message', {
    timeout: 5_000,
  }, async () => {
    const published = deferred();
    const requested = deferred();
    const { pool, deadLetters, metrics } = harness({
      maxAttempts: 3,
      deadLetter: () => {
        requested.resolve();
        return published.promise;
      },
    });
    let attempt = 0;
    const poison = task('a', () => Promise.reject(new Error(`fail ${++attempt}`)));
    const next = task('a');
    pool.submit(poison);
    pool.submit(next);
    await requested.promise;
    const [request] = deadLetters;
    assert.equal(request?.task, poison);
    assert.equal(request?.key, 'a');
    assert.equal(request?.attempts, 3);
    assert.equal(request?.disposition, 'dead-letter');
    assert.equal(request?.error.message, 'fail 3');
    await flush();
    assert.deepEqual(poison.message.calls, [], 'not termed before the dead letter is durable');
    assert.equal(next.runs.length, 0, 'the next message waits for the dead letter');
    published.resolve();
    await settleAll(pool);
    assert.equal(poison.message.calls.length, 1);
    assert.match(poison.message.calls[0] ?? '', /^term:dead-lettered after 3 attempt\(s\): fail 3$/);
    assert.deepEqual(next.message.calls, ['ack']);
    assert.deepEqual(metrics.deadLetters, ['max-attempts']);
  });

  test('when dead-lettering fails the message stays held (no nak, no loop), its aggregate waits, and dead-lettering is retried', {
    timeout: 5_000,
  }, async () => {
    const secondCall = deferred();
    const gate = deferred();
    let calls = 0;
    const delays: number[] = [];
    const { pool, logger, metrics } = harness({
      maxAttempts: 1,
      sleep: (ms) => {
        delays.push(ms);
        return Promise.resolve();
      },
      deadLetter: async () => {
        calls++;
        if (calls === 1) throw new Error('DLQ publish failed');
        if (calls === 2) {
          secondCall.resolve();
          await gate.promise;
          throw new Error('DLQ publish failed again');
        }
      },
    });
    const poison = task('a', boom);
    const next = task('a');
    pool.submit(poison);
    pool.submit(next);
    await secondCall.promise;
    assert.deepEqual(
      poison.message.calls,
      [],
      'neither nak-ed nor termed while the dead letter is not durable',
    );
    assert.equal(next.runs.length, 0, "the aggregate's next event waits behind the failed one");
    assert.equal(pool.stats().deadLetterFailing, 1);
    assert.equal(metrics.deadLetterFailures, 1);
    gate.resolve();
    await settleAll(pool);
    assert.equal(calls, 3);
    assert.equal(poison.message.calls.length, 1);
    assert.match(poison.message.calls[0] ?? '', /^term:dead-lettered after 1 attempt\(s\): boom$/);
    assert.deepEqual(next.message.calls, ['ack']);
    assert.equal(metrics.deadLetterFailures, 2);
    assert.equal(pool.stats().deadLetterFailing, 0);
    assert.equal(delays.length, 2, 'each retry of the dead letter backs off');
    assert.ok(logger.entries.some((e) => e.level === 'error' && /Dead-lettering failed/.test(e.msg ?? '')));
  });

  test('a non-retryable EventBusError (DecodeError) goes straight to the dead letter', async () => {
    let slept = 0;
    const { pool, deadLetters, metrics } = harness({
      sleep: () => {
        slept++;
        return Promise.resolve();
      },
    });
    const error = new DecodeError('not an envelope');
    const t = task('a', () => Promise.reject(error));
    pool.submit(t);
    await settleAll(pool);
    assert.equal(t.runs.length, 1);
    assert.equal(slept, 0);
    assert.equal(deadLetters[0]?.attempts, 1);
    assert.equal(deadLetters[0]?.error, error);
    assert.equal(t.message.settled, 'term');
    assert.deepEqual(metrics.deadLetters, ['non-retryable']);
  });
});
