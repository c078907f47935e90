/** Fakes for actor-pool tests: recording messages, metrics, logger; deferreds. */
import type { Logger } from '../../src/core/logger.ts';
import type { InboundMessage, MessageKind } from '../../src/core/transport.ts';
import type { SubscribeOptions } from '../../src/core/types.ts';
import { createActorPool } from '../../src/dispatch/actor-pool.ts';
import type { PoolHooks } from '../../src/dispatch/options.ts';
import { resolvePoolOptions } from '../../src/dispatch/options.ts';
import type {
  ActorPool,
  DeadLetterRequest,
  PoolTask,
  ResolvedPoolOptions,
} from '../../src/dispatch/types.ts';
import type { PoolMetrics } from '../../src/metrics/metrics.ts';

export interface Deferred<T = void> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T = void>(): Deferred<T> {
  const { promise, resolve, reject } = Promise.withResolvers<T>();
  return { promise, resolve, reject };
}

/** Lets every queued microtask and one macrotask turn run. Not a synchronisation sleep. */
export function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export interface FakeMessage extends InboundMessage {
  readonly id: string;
  /** Every settlement/working call in order: 'ack', 'nak', 'term:<reason>', 'working'. */
  readonly calls: string[];
  /** First settlement: 'ack' | 'nak' | 'term' | undefined. */
  readonly settled: 'ack' | 'nak' | 'term' | undefined;
  /** Resolves with the first settlement. */
  readonly whenSettled: Promise<'ack' | 'nak' | 'term'>;
  /** Resolves when working() has been called `n` times. */
  workingCalls(n: number): Promise<void>;
}

export function fakeMessage(id: string, topic = 'orders'): FakeMessage {
  const calls: string[] = [];
  let settled: 'ack' | 'nak' | 'term' | undefined;
  const done = deferred<'ack' | 'nak' | 'term'>();
  let working = 0;
  const workingWaiters: Array<{ n: number; resolve: () => void }> = [];
  const settle = (how: 'ack' | 'nak' | 'term', call: string): void => {
    calls.push(call);
    if (settled === undefined) {
      settled = how;
      done.resolve(how);
    }
  };
  return {
    id,
    topic,
    data: new Uint8Array(),
    headers: {},
    key: undefined,
    deliveryCount: 1,
    sequence: undefined,
    calls,
    get settled() {
      return settled;
    },
    whenSettled: done.promise,
    ack: () => settle('ack', 'ack'),
    nak: () => settle('nak', 'nak'),
    term: (reason: string) => settle('term', `term:${reason}`),
    working() {
      calls.push('working');
      working++;
      for (const waiter of workingWaiters) if (working >= waiter.n) waiter.resolve();
    },
    workingCalls(n: number) {
      if (working >= n) return Promise.resolve();
      return new Promise((resolve) => workingWaiters.push({ n, resolve }));
    },
  };
}

export type RunFn = (attempt: number, key: string, signal: AbortSignal) => Promise<void>;

export interface FakeTask extends PoolTask {
  readonly message: FakeMessage;
  /** Every run call: attempt, key, signal. */
  readonly runs: Array<{ attempt: number; key: string; signal: AbortSignal }>;
}

export function task(
  key: string | undefined,
  run: RunFn = () => Promise.resolve(),
  id = key ?? 'rr',
): FakeTask {
  const runs: FakeTask['runs'] = [];
  return {
    key,
    message: fakeMessage(id),
    runs,
    run(attempt, routed, signal) {
      runs.push({ attempt, key: routed, signal });
      return run(attempt, routed, signal);
    },
  };
}

export interface RecordingMetrics extends PoolMetrics {
  sent: number;
  processed: Array<{ success: boolean; seconds: number }>;
  depth: Array<{ depth: number; utilization: number }>;
  restarts: number;
  deadLetters: string[];
  rawFailures: number;
  /** Every stuck-handlers gauge value reported, in order. */
  stuck: number[];
  deadLetterFailures: number;
}

export function recordingMetrics(): RecordingMetrics {
  const m: RecordingMetrics = {
    sent: 0,
    processed: [],
    depth: [],
    restarts: 0,
    deadLetters: [],
    rawFailures: 0,
    stuck: [],
    deadLetterFailures: 0,
    messageSent() {
      m.sent++;
    },
    messageProcessed(success, seconds) {
      m.processed.push({ success, seconds });
    },
    inboxDepth(depth, utilization) {
      m.depth.push({ depth, utilization });
    },
    actorRestarted() {
      m.restarts++;
    },
    deadLettered(reason) {
      m.deadLetters.push(reason);
    },
    rawFailure() {
      m.rawFailures++;
    },
    stuckHandlers(count) {
      m.stuck.push(count);
    },
    deadLetterFailed() {
      m.deadLetterFailures++;
    },
  };
  return m;
}

export interface RecordingLogger extends Logger {
  readonly entries: Array<{ level: string; obj: object | string; msg: string | undefined }>;
}

export function recordingLogger(): RecordingLogger {
  const entries: RecordingLogger['entries'] = [];
  const at =
    (level: string) =>
    (obj: object | string, msg?: string): void => {
      entries.push({ level, obj, msg });
    };
  return { entries, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

export interface Harness {
  readonly pool: ActorPool;
  readonly options: ResolvedPoolOptions;
  readonly metrics: RecordingMetrics;
  readonly logger: RecordingLogger;
  readonly deadLetters: DeadLetterRequest[];
}

export interface HarnessOptions extends SubscribeOptions {
  readonly kind?: MessageKind;
  readonly deadLetter?: (request: DeadLetterRequest) => Promise<void>;
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  readonly workingIntervalMs?: number;
  readonly metrics?: RecordingMetrics;
}

/**
 * A pool with test-friendly defaults: instant backoff (sleep seam resolves at
 * once) unless a sleep is given, dead letters recorded and resolved.
 */
export function harness(overrides: HarnessOptions = {}): Harness {
  const metrics = overrides.metrics ?? recordingMetrics();
  const logger = recordingLogger();
  const deadLetters: DeadLetterRequest[] = [];
  const userDeadLetter = overrides.deadLetter ?? (() => Promise.resolve());
  const hooks: PoolHooks = {
    metrics,
    logger,
    deadLetter: (request) => {
      deadLetters.push(request);
      return userDeadLetter(request);
    },
    sleep: overrides.sleep ?? (() => Promise.resolve()),
    ...(overrides.workingIntervalMs === undefined ? {} : { workingIntervalMs: overrides.workingIntervalMs }),
  };
  const {
    kind = 'envelope',
    deadLetter: _d,
    sleep: _s,
    workingIntervalMs: _w,
    metrics: _m,
    ...user
  } = overrides;
  const options = resolvePoolOptions('orders', 'g1', kind, user, hooks);
  return { pool: createActorPool(options), options, metrics, logger, deadLetters };
}

/** Resolves once the pool is idle (drain with a deadline that never fires). */
export function settleAll(pool: ActorPool): Promise<unknown> {
  return pool.drain(new AbortController().signal);
}

/** Two different keys that the stable hash maps to the same actor (and one that does not). */
export function keysOnSameActor(
  actors: number,
  hash: (key: string, n: number) => number,
  make: (i: number) => string = (i) => `agg-${i}`,
): [string, string, string] {
  const first = make(0);
  const target = hash(first, actors);
  let same: string | undefined;
  let other: string | undefined;
  for (let i = 1; same === undefined || other === undefined; i++) {
    const key = make(i);
    if (hash(key, actors) === target) same ??= key;
    else other ??= key;
  }
  return [first, same, other];
}
