/**
 * Pathological handlers on the memory transport (issue 12): each case failed
 * on the code before it. Good events are judged by the order checker (0 lost,
 * 0 out of order); each bad event must be in the DLQ with its reason; "no
 * loop" is checked by the bad event's handler runs staying at maxAttempts.
 */

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import type { Logger } from '../../src/core/logger.ts';
import {
  createEventBus,
  createMemoryBroker,
  type Envelope,
  type EventBus,
  InvalidArgumentError,
  type MemoryBroker,
  PayloadTooLargeError,
  type PublishResult,
} from '../../src/index.ts';
import { createOrderChecker, formatReport, type OrderChecker } from '../../src/testing/checker.ts';
import { type Signal, until } from '../../src/testing/index.ts';

interface Payload {
  readonly index: number;
  readonly bad?: boolean;
}

interface Run {
  readonly bus: EventBus;
  readonly checker: OrderChecker;
  readonly dead: Array<{ eventId: string; reason: string }>;
  readonly signals: Signal[];
  readonly errors: string[];
  publish(aggregateId: string, index: number, bad?: boolean): Promise<string>;
}

const logInto = (errors: string[], signals: Signal[]): Logger => {
  const at = (obj: object | string, msg?: string): void => {
    errors.push(msg ?? String(obj));
    for (const s of signals) s.check();
  };
  return { debug() {}, info() {}, warn: at, error: at };
};

async function open(
  topic: string,
  broker: MemoryBroker = createMemoryBroker(),
  extra: { maxPayloadBytes?: number; onPublishResult?: (r: PublishResult) => void } = {},
): Promise<Run> {
  const signals: Signal[] = [];
  const errors: string[] = [];
  const bus = await createEventBus({
    transport: 'memory',
    clientId: 'pathology',
    metrics: { enabled: false },
    logger: logInto(errors, signals),
    memory: {
      broker,
      ...(extra.maxPayloadBytes === undefined ? {} : { maxPayloadBytes: extra.maxPayloadBytes }),
    },
    ...(extra.onPublishResult ? { onPublishResult: extra.onPublishResult } : {}),
  });
  const checker = createOrderChecker();
  const dead: Run['dead'] = [];
  await bus.subscribeEnvelope(
    `${topic}.DLQ`,
    (e, ctx) => {
      dead.push({ eventId: e.eventId, reason: ctx.headers['X-DLQ-Reason'] ?? '' });
      for (const s of signals) s.check();
    },
    { group: 'dlq-watch' },
  );
  const publish = async (aggregateId: string, index: number, bad = false): Promise<string> => {
    // Announced before publishing: on the memory transport the handler may run
    // before publishEnvelope's promise resolves.
    const eventId = randomUUID();
    if (!bad) checker.expect(eventId, aggregateId, index);
    await bus.publishEnvelope<Payload>(topic, {
      eventId,
      aggregateId,
      eventType: 'Tested',
      eventVersion: 1,
      payload: bad ? { index, bad } : { index },
    });
    if (!bad) checker.acknowledged(eventId);
    return eventId;
  };
  return { bus, checker, dead, signals, errors, publish };
}

function observe(run: Run, e: Envelope<Payload>): void {
  if (!e.payload.bad) run.checker.observe(e.eventId, e.aggregateId, e.payload.index);
  for (const s of run.signals) s.check();
}

function assertClean(run: Run): void {
  const report = run.checker.report();
  assert.equal(report.lost, 0, formatReport(report));
  assert.equal(report.outOfOrder, 0, formatReport(report));
  assert.equal(report.unexpected, 0, formatReport(report));
}

/** A thenable that is not a native Promise (another promise library, a hand-written one). */
function thenable(settle: (resolve: () => void, reject: (e: unknown) => void) => void): PromiseLike<void> {
  return {
    // biome-ignore lint/suspicious/noThenProperty: a thenable is the point of the test
    then(onFulfilled, onRejected) {
      return new Promise<void>(settle).then(onFulfilled, onRejected);
    },
  } as PromiseLike<void>;
}

describe('pathological handlers (memory transport)', () => {
  it('a handler returning a non-native thenable is awaited: its rejection is retried, never two executions at once', async () => {
    const run = await open('thenable');
    let running = 0;
    let mostAtOnce = 0;
    const runsOf = new Map<number, number>();
    await run.bus.subscribeEnvelope<Payload>(
      'thenable',
      (e, ctx) => {
        running++;
        mostAtOnce = Math.max(mostAtOnce, running);
        runsOf.set(e.payload.index, (runsOf.get(e.payload.index) ?? 0) + 1);
        return thenable((resolve, reject) => {
          setImmediate(() => {
            running--;
            if (e.payload.index === 1 && ctx.attempt === 1) reject(new Error('first attempt fails'));
            else {
              observe(run, e);
              resolve();
            }
          });
        }) as unknown as Promise<void>;
      },
      { group: 'g', backoff: { initialMs: 1, maxMs: 1 } },
    );
    for (let i = 0; i < 5; i++) await run.publish('a', i);
    const done = until(
      () => run.checker.outstanding() === 0,
      () => formatReport(run.checker.report()),
    );
    run.signals.push(done);
    await done.wait(10_000);
    assert.equal(runsOf.get(1), 2, 'the rejected thenable was retried');
    assert.equal(mostAtOnce, 1, 'one execution at a time for the aggregate');
    assertClean(run);
    await run.bus.close();
  });

  it('a rejection with a value that cannot be printed (Object.create(null)) is dead-lettered, no crash loop', async () => {
    const run = await open('unprintable');
    let badRuns = 0;
    await run.bus.subscribeEnvelope<Payload>(
      'unprintable',
      (e) => {
        if (e.payload.bad) {
          badRuns++;
          return Promise.reject(Object.create(null));
        }
        observe(run, e);
      },
      { group: 'g', maxAttempts: 3, backoff: { initialMs: 1, maxMs: 1 } },
    );
    await run.publish('a', 0);
    const badId = await run.publish('a', 1, true);
    await run.publish('a', 2);
    const done = until(
      () => run.checker.outstanding() === 0 && run.dead.length === 1,
      () => `${formatReport(run.checker.report())} dead=${run.dead.length}`,
    );
    run.signals.push(done);
    await done.wait(10_000);
    assert.equal(run.dead[0]?.eventId, badId);
    assert.match(run.dead[0]?.reason ?? '', /^Non-error thrown: \[object Object\]$/);
    assert.equal(badRuns, 3, 'tried maxAttempts times, then dead-lettered: no crash loop');
    assert.ok(!run.errors.some((m) => /Actor crashed/.test(m)), run.errors.join('\n'));
    assertClean(run);
    await run.bus.close();
  });

  it('a thrown value whose message getter throws is dead-lettered with a readable reason', async () => {
    const run = await open('hostile');
    await run.bus.subscribeEnvelope<Payload>(
      'hostile',
      (e) => {
        if (!e.payload.bad) return observe(run, e);
        const error = new Error('x');
        Object.defineProperty(error, 'message', {
          get() {
            throw new Error('gotcha');
          },
        });
        throw error;
      },
      { group: 'g', maxAttempts: 2, backoff: { initialMs: 1, maxMs: 1 } },
    );
    const badId = await run.publish('a', 0, true);
    await run.publish('a', 1);
    const done = until(
      () => run.checker.outstanding() === 0 && run.dead.length === 1,
      () => `${formatReport(run.checker.report())} dead=${run.dead.length}`,
    );
    run.signals.push(done);
    await done.wait(10_000);
    assert.equal(run.dead[0]?.eventId, badId);
    assert.match(run.dead[0]?.reason ?? '', /^Non-error thrown: /);
    assertClean(run);
    await run.bus.close();
  });

  it('subscribe and subscribeEnvelope refuse a handler that is not a function (typed error)', async () => {
    const run = await open('typecheck');
    await assert.rejects(run.bus.subscribe('typecheck', 'nope' as never), InvalidArgumentError);
    await assert.rejects(
      run.bus.subscribeEnvelope('typecheck', { handle() {} } as never),
      /Expected the handler to be a function, got object/,
    );
    await run.bus.close();
  });

  it('a publish exactly at the limit is sent; one byte more is refused up front', async () => {
    const limit = 4096;
    const results: PublishResult[] = [];
    const run = await open('limit', createMemoryBroker(), {
      maxPayloadBytes: limit,
      onPublishResult: (r) => results.push(r),
    });
    // Headers: one custom header plus the Nats-Msg-Id the transport adds.
    const msgId = 'id-exact';
    const headers = { 'X-Pad': 'p' };
    const overhead = 'NATS/1.0\r\n'.length + `X-Pad: p\r\n`.length + `Nats-Msg-Id: ${msgId}\r\n`.length + 2;
    const exact = new Uint8Array(limit - overhead);
    await run.bus.publish('limit', exact, { msgId, headers });
    await run.bus.flush();
    assert.equal(results.length, 1);
    assert.equal(results[0]?.success, true, String(results[0]?.error));
    await assert.rejects(
      run.bus.publish('limit', new Uint8Array(limit - overhead + 1), { msgId: 'id-exact', headers }),
      (e: unknown) => e instanceof PayloadTooLargeError && e.size === limit + 1 && e.limit === limit,
    );
    await run.bus.close();
  });

  it('a dead letter that cannot fit even without copied headers: the message is held (no loop), the aggregate waits, health says why', async () => {
    const limit = 2048;
    const run = await open('nofit', createMemoryBroker(), { maxPayloadBytes: limit });
    let badRuns = 0;
    await run.bus.subscribeEnvelope<Payload & { pad?: string }>(
      'nofit',
      (e) => {
        if (e.payload.pad !== undefined) {
          badRuns++;
          throw new Error('poison');
        }
        observe(run, e);
      },
      { group: 'g', maxAttempts: 2, backoff: { initialMs: 5, maxMs: 20 } },
    );
    // An event filling the limit almost exactly: its dead letter (longer id,
    // X-DLQ-* headers) cannot fit, whatever is dropped.
    const base = { aggregateId: 'a', eventType: 'Tested', eventVersion: 1 } as const;
    let pad = 'x'.repeat(limit);
    for (;;) {
      try {
        await run.bus.publishEnvelope('nofit', { ...base, payload: { index: 0, pad } });
        break;
      } catch (error) {
        if (!(error instanceof PayloadTooLargeError)) throw error;
        pad = pad.slice(0, pad.length - (error.size - error.limit));
      }
    }
    await run.publish('a', 1);
    await run.publish('b', 0);
    const failing = until(
      () =>
        run.errors.filter((m) => /Dead-lettering failed/.test(m)).length >= 3 &&
        run.checker.report().consumed === 1,
      () => `errors=${run.errors.length} ${formatReport(run.checker.report())}`,
    );
    run.signals.push(failing);
    await failing.wait(10_000);
    assert.equal(badRuns, 2, 'the handler ran maxAttempts times; dead-lettering is what is retried');
    const report = run.checker.report();
    assert.equal(report.outOfOrder, 0, formatReport(report));
    assert.equal(run.checker.outstanding(), 1, "a's next event waits behind the held one; b flowed");
    const health = run.bus.health();
    assert.equal(health.status, 'degraded');
    const sub = health.subscriptions.find((s) => s.topic === 'nofit');
    assert.equal(sub?.deadLetterFailing, 1);
    assert.ok(sub?.problems?.some((p) => /dead letter/.test(p)));
    await run.bus.close({ timeoutMs: 1_000 });
  });
});
