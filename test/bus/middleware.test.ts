/**
 * Envelope middleware on the memory transport: composition order, a failing
 * middleware handled like a failing handler (retried in place, then
 * dead-lettered), a short-circuit, and per-aggregate ordering through a chain
 * that delays and fails (judged by the order checker).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  createEventBus,
  createMemoryBroker,
  type EventBus,
  type EventBusOptions,
  InvalidArgumentError,
  type Middleware,
} from '../../src/index.ts';
import { createOrderChecker, formatReport } from '../../src/testing/checker.ts';
import { deferred, until } from '../../src/testing/index.ts';
import { objectSchema } from './schema-kit.ts';

const open = (extra: Partial<EventBusOptions> = {}): Promise<EventBus> =>
  createEventBus({
    transport: 'memory',
    clientId: 'middleware',
    metrics: { enabled: false },
    memory: { broker: createMemoryBroker() },
    ...extra,
  });

const event = (aggregateId: string, eventType = 'Happened', payload: unknown = {}) => ({
  aggregateId,
  eventType,
  eventVersion: 1,
  payload,
});

/** Logs `name>` before and `<name` after the rest of the chain, then calls `after`. */
const tracing =
  (log: string[], name: string, after: () => void = () => {}): Middleware =>
  (next) =>
  async (envelope, ctx) => {
    log.push(`${name}>`);
    await next(envelope, ctx);
    log.push(`<${name}`);
    after();
  };

/** Collects dead letters of `topic` with their reason and attempts. */
async function watchDeadLetters(bus: EventBus, topic: string, onDead: () => void) {
  const dead: Array<{ eventId: string; reason: string; attempts: string }> = [];
  await bus.subscribeEnvelope(
    `${topic}.DLQ`,
    (e, ctx) => {
      dead.push({
        eventId: e.eventId,
        reason: ctx.headers['X-DLQ-Reason'] ?? '',
        attempts: ctx.headers['X-DLQ-Attempts'] ?? '',
      });
      onDead();
    },
    { group: 'dlq-watch' },
  );
  return dead;
}

describe('middleware', () => {
  it('runs bus middleware outside subscription middleware, each list first = outermost', async () => {
    const log: string[] = [];
    const done = deferred();
    const bus = await open({
      middleware: [tracing(log, 'bus1', done.resolve), tracing(log, 'bus2')],
    });
    await bus.subscribeEnvelope('t', () => void log.push('handler'), {
      middleware: [tracing(log, 'sub1'), tracing(log, 'sub2')],
    });
    await bus.publishEnvelope('t', event('a'));
    await done.promise;
    assert.deepEqual(log, [
      'bus1>',
      'bus2>',
      'sub1>',
      'sub2>',
      'handler',
      '<sub2',
      '<sub1',
      '<bus2',
      '<bus1',
    ]);
    await bus.close();
  });

  it('sees a schema failure as the chain’s failure, before the handler would run', async () => {
    const log: string[] = [];
    const broker = createMemoryBroker();
    const producer = await open({ memory: { broker } });
    const bus = await open({
      memory: { broker },
      topics: { t: { Happened: objectSchema({ n: 'number' }) } },
    });
    const dead = await watchDeadLetters(bus, 't', () => signal.check());
    const signal = until(
      () => dead.length === 1,
      () => `${dead.length} dead letters`,
    );
    await bus.subscribeEnvelope('t', () => void log.push('handler'), {
      middleware: [
        (next) => (envelope, ctx) =>
          next(envelope, ctx).catch((error: Error) => {
            log.push(error.name);
            throw error;
          }),
      ],
    });
    await producer.publishEnvelope('t', event('a', 'Happened', { n: 'x' }));
    await signal.wait(10_000);
    assert.deepEqual(log, ['SchemaValidationError']);
    assert.match(dead[0]?.reason ?? '', /n: Expected number, received string/);
    await producer.close();
    await bus.close();
  });

  it('a middleware that throws is a handler failure: retried in place, then dead-lettered with its message', async () => {
    const attemptsSeen: number[] = [];
    let handlerRuns = 0;
    const failing: Middleware = (next) => (envelope, ctx) => {
      attemptsSeen.push(ctx.attempt);
      if (envelope.eventType === 'Poison') throw new Error('tenant header missing'); // synchronous throw
      return next(envelope, ctx);
    };
    const bus = await open();
    const dead = await watchDeadLetters(bus, 't', () => signal.check());
    const handledKept = deferred();
    const signal = until(
      () => dead.length === 1,
      () => `${dead.length} dead letters`,
    );
    await bus.subscribeEnvelope(
      't',
      (e) => {
        handlerRuns++;
        if (e.eventType === 'Kept') handledKept.resolve();
      },
      { maxAttempts: 3, backoff: { initialMs: 1, maxMs: 1 }, middleware: [failing] },
    );
    await bus.publishEnvelope('t', event('a', 'Poison'));
    await bus.publishEnvelope('t', event('a', 'Kept'));
    await signal.wait(10_000);
    await handledKept.promise;
    assert.deepEqual(attemptsSeen, [1, 2, 3, 1], 'three attempts of Poison, then Kept');
    assert.equal(handlerRuns, 1, 'only Kept reached the handler');
    assert.equal(dead[0]?.attempts, '3');
    assert.match(dead[0]?.reason ?? '', /tenant header missing/);
    await bus.close();
  });

  it('a middleware that short-circuits settles the event as handled: not retried, not dead-lettered', async () => {
    const ran: string[] = [];
    // Outermost: what the pool gets back for each event and attempt.
    const outcomes: string[] = [];
    const recordOutcome: Middleware = (next) => (envelope, ctx) =>
      next(envelope, ctx).then(
        () => void outcomes.push(`${envelope.eventType}#${ctx.attempt} ok`),
        (error: Error) => {
          outcomes.push(`${envelope.eventType}#${ctx.attempt} failed`);
          throw error;
        },
      );
    const skipTests: Middleware = (next) => async (envelope, ctx) => {
      if (envelope.eventType.startsWith('Test')) return; // never calls next
      await next(envelope, ctx);
    };
    const bus = await open();
    const last = deferred();
    await bus.subscribeEnvelope(
      't',
      (e) => {
        ran.push(e.eventType);
        if (e.eventType === 'Last') last.resolve();
      },
      { middleware: [recordOutcome, skipTests] },
    );
    for (const type of ['First', 'TestPing', 'Second', 'TestPong', 'Last']) {
      await bus.publishEnvelope('t', event('same-aggregate', type));
    }
    await last.promise;
    await bus.close(); // drains: every outcome is recorded
    assert.deepEqual(ran, ['First', 'Second', 'Last']);
    // Each event once, at attempt 1, successful: the skipped ones were settled as handled.
    assert.deepEqual(outcomes, ['First#1 ok', 'TestPing#1 ok', 'Second#1 ok', 'TestPong#1 ok', 'Last#1 ok']);
  });

  it('keeps per-aggregate order through middleware that awaits and fails first attempts (checker)', async () => {
    const checker = createOrderChecker();
    // Delays of different lengths per event and a failure of every fifth event's
    // first attempt: a chain that could reorder, if ordering depended on it.
    const jitter: Middleware = (next) => async (envelope, ctx) => {
      const index = (envelope.payload as { index: number }).index;
      await new Promise((resolve) => setImmediate(resolve));
      if (index % 3 === 0) await Promise.resolve();
      await next(envelope, ctx);
    };
    const flaky: Middleware = (next) => async (envelope, ctx) => {
      const index = (envelope.payload as { index: number }).index;
      if (index % 5 === 0 && ctx.attempt === 1) throw new Error('transient');
      await next(envelope, ctx);
    };
    const bus = await open({ middleware: [jitter] });
    const AGGREGATES = 20;
    const PER_AGGREGATE = 25;
    const signal = until(
      () => checker.expectedCount() === AGGREGATES * PER_AGGREGATE && checker.outstanding() === 0,
      () => `${checker.outstanding()} outstanding`,
    );
    await bus.subscribeEnvelope<{ index: number }>(
      'ordered',
      (e) => {
        checker.observe(e.eventId, e.aggregateId, e.payload.index);
        signal.check();
      },
      { middleware: [flaky], actors: 4, backoff: { initialMs: 1, maxMs: 2 } },
    );
    for (let index = 0; index < PER_AGGREGATE; index++) {
      for (let a = 0; a < AGGREGATES; a++) {
        const eventId = randomUUID();
        checker.expect(eventId, `agg-${a}`, index);
        await bus.publishEnvelope('ordered', { ...event(`agg-${a}`, 'Numbered', { index }), eventId });
        checker.acknowledged(eventId);
      }
    }
    await signal.wait(30_000);
    const report = checker.report();
    assert.equal(report.ok, AGGREGATES * PER_AGGREGATE, formatReport(report));
    assert.equal(report.lost, 0, formatReport(report));
    assert.equal(report.outOfOrder, 0, formatReport(report));
    assert.equal(report.unexpected, 0, formatReport(report));
    await bus.close();
  });

  it('rejects middleware that is not a function, or a factory that does not return a handler', async () => {
    await assert.rejects(
      open({ middleware: ['log' as never] }),
      (e: unknown) => e instanceof InvalidArgumentError && /`middleware\[0\]`/.test(e.message),
    );
    const bus = await open();
    await assert.rejects(
      bus.subscribeEnvelope('t', () => {}, { middleware: [() => undefined as never] }),
      (e: unknown) => e instanceof InvalidArgumentError && /to return a handler function/.test(e.message),
    );
    await assert.rejects(
      bus.subscribeEnvelope('t', () => {}, {
        middleware: [
          () => {
            throw new Error('misconfigured');
          },
        ],
      }),
      (e: unknown) => e instanceof InvalidArgumentError && (e.cause as Error).message === 'misconfigured',
    );
    await assert.rejects(
      bus.subscribeEnvelope('t', () => {}, { middleware: {} as never }),
      (e: unknown) => e instanceof InvalidArgumentError && /array of middleware/.test(e.message),
    );
    await bus.close();
  });
});
