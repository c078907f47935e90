import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EventBusError } from '../../src/core/errors.ts';
import { actorIndexFor } from '../../src/core/hash.ts';
import type { DeadLetterRequest } from '../../src/dispatch/types.ts';
import {
  type Deferred,
  deferred,
  type FakeMessage,
  flush,
  harness,
  keysOnSameActor,
  settleAll,
  task,
} from './helpers.ts';

describe('park policy', () => {
  test('after a poison event the aggregate is parked: later tasks are moved, not run, and termed once moved', {
    timeout: 5_000,
  }, async () => {
    const [poisoned, neighbour] = keysOnSameActor(4, actorIndexFor);
    const moves: Array<{ request: DeadLetterRequest; done: Deferred }> = [];
    const requested = [deferred(), deferred()];
    const { pool, metrics } = harness({
      actors: 4,
      maxAttempts: 2,
      deadLetterPolicy: 'park',
      deadLetter: (request) => {
        if (request.disposition === 'dead-letter') return Promise.resolve();
        const done = deferred();
        moves.push({ request, done });
        requested[moves.length - 1]?.resolve();
        return done.promise;
      },
    });
    const poison = task(poisoned, () => Promise.reject(new Error('poison')));
    const parked1 = task(poisoned);
    const parked2 = task(poisoned);
    const other = task(neighbour);
    for (const t of [poison, parked1, parked2, other]) pool.submit(t);

    // The neighbour on the same actor completes while the parked moves are
    // still pending: parked tasks hold neither the actor nor the ack floor.
    assert.equal(await other.message.whenSettled, 'ack');
    assert.equal(poison.message.settled, 'term');
    assert.equal(parked1.runs.length + parked2.runs.length, 0, 'parked tasks never run');
    await requested[0]?.promise;
    await flush();
    assert.deepEqual(
      moves.map((m) => [m.request.task, m.request.disposition, m.request.key, m.request.attempts]),
      [[parked1, 'parked', poisoned, 0]],
      "an aggregate's moves run one at a time, in order",
    );
    assert.ok(moves[0]?.request.error instanceof EventBusError);
    assert.equal((moves[0]!.request.error.cause as Error).message, 'poison');
    await flush();
    assert.deepEqual(parked1.message.calls, [], 'termed only after the move resolved');
    assert.deepEqual(pool.parkedKeys(), [poisoned]);
    assert.equal(pool.stats().parkedAggregates, 1);

    moves[0]?.done.resolve();
    assert.equal(await parked1.message.whenSettled, 'term');
    await requested[1]?.promise;
    assert.equal(moves[1]?.request.task, parked2);
    moves[1]?.done.resolve();
    assert.equal(await parked2.message.whenSettled, 'term');
    assert.match(parked1.message.calls[0] ?? '', /^term:parked/);
    await settleAll(pool);
    assert.deepEqual(metrics.deadLetters, ['max-attempts', 'parked', 'parked']);
  });

  test('unpark(key) lets the aggregate flow again', async () => {
    const { pool } = harness({ maxAttempts: 1, deadLetterPolicy: 'park' });
    pool.submit(task('a', () => Promise.reject(new Error('poison'))));
    const parked = task('a');
    pool.submit(parked);
    assert.equal(await parked.message.whenSettled, 'term');
    assert.deepEqual(pool.parkedKeys(), ['a']);
    assert.equal(pool.unpark('a'), true);
    assert.equal(pool.unpark('a'), false);
    assert.deepEqual(pool.parkedKeys(), []);
    const resumed = task('a');
    pool.submit(resumed);
    assert.equal(await resumed.message.whenSettled, 'ack');
    assert.equal(resumed.runs.length, 1);
    await settleAll(pool);
  });

  test("a parked task whose move fails waits and is retried, in order (no nak loop); the 'continue' policy parks nothing", async () => {
    const moved: string[] = [];
    let failures = 0;
    const parking = harness({
      maxAttempts: 1,
      deadLetterPolicy: 'park',
      deadLetter: (r) => {
        if (r.disposition !== 'parked') return Promise.resolve();
        const id = (r.task.message as FakeMessage).id;
        if (id === 'p1' && failures < 2) {
          failures++;
          return Promise.reject(new Error('PARKED publish failed'));
        }
        moved.push(id);
        return Promise.resolve();
      },
    });
    parking.pool.submit(task('a', () => Promise.reject(new Error('poison'))));
    const parked1 = task('a', undefined, 'p1');
    const parked2 = task('a', undefined, 'p2');
    parking.pool.submit(parked1);
    parking.pool.submit(parked2);
    assert.equal(await parked2.message.whenSettled, 'term');
    await settleAll(parking.pool);
    assert.deepEqual(moved, ['p1', 'p2'], 'moved in order although the first move failed twice');
    assert.match(parked1.message.calls.join(), /^term:parked/);
    assert.equal(parked1.runs.length + parked2.runs.length, 0);
    assert.equal(parking.metrics.deadLetterFailures, 2);
    assert.equal(parking.pool.stats().deadLetterFailing, 0);

    const continuing = harness({ maxAttempts: 1 });
    continuing.pool.submit(task('a', () => Promise.reject(new Error('poison'))));
    const next = task('a');
    continuing.pool.submit(next);
    await settleAll(continuing.pool);
    assert.deepEqual(next.message.calls, ['ack']);
    assert.deepEqual(continuing.pool.parkedKeys(), []);
  });
});
