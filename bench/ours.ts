/**
 * Our bus doing the work: publishEnvelope with PublishResults, subscribeEnvelope
 * with the default actor pool, on NATS, Kafka or the in-memory transport. Each
 * runner opens its buses, measures, verifies, and closes everything it opened.
 */
import {
  createEventBus,
  type EnvelopeHandler,
  type EventBus,
  type Logger,
  type PublishResult,
} from '../src/index.ts';
import { createOrderChecker, type OrderChecker } from '../src/testing/checker.ts';
import type { MemoryBroker } from '../src/transports/memory/index.ts';
import { commitsSettled, type KafkaEnv, kafkaBusOptions, oursGroup, readBackKafka } from './kafka-env.ts';
import { createRecorder, type LatencyRecorder, paced } from './latency.ts';
import { Counter, deadlineFor, observer, type RunOutcome, type StoredOrder, within } from './measure.ts';
import { acksSettled, type NatsEnv, readBack } from './nats-env.ts';
import type { Workload } from './workload.ts';

/** Where our buses connect: a NATS server, a Kafka cluster, or a memory broker shared by the run's buses. */
export type OursTarget =
  | { readonly kind: 'nats'; readonly env: NatsEnv }
  | { readonly kind: 'kafka'; readonly env: KafkaEnv }
  | { readonly kind: 'memory'; readonly broker: MemoryBroker };

export const SUB_CLIENT = 'bench-sub';

/**
 * The NATS consumer ack policy of our bus in this run: BENCH_NATS_ACK_POLICY=all
 * measures the opt-in AckAll strategy (one member per group), default explicit.
 */
export function natsAckPolicy(): 'all' | 'explicit' {
  return process.env.BENCH_NATS_ACK_POLICY === 'all' ? 'all' : 'explicit';
}

/** Collects our buses' warnings and errors (disconnects, stale connections, ...) for the row's notes. */
export class BusLog implements Logger {
  readonly #counts = new Map<string, number>();
  #note(level: string, obj: object | string, msg?: string): void {
    const text = `${level}: ${typeof obj === 'string' ? obj : (msg ?? '')}`;
    this.#counts.set(text, (this.#counts.get(text) ?? 0) + 1);
  }
  debug(): void {}
  info(): void {}
  warn(obj: object | string, msg?: string): void {
    this.#note('warn', obj, msg);
  }
  error(obj: object | string, msg?: string): void {
    this.#note('error', obj, msg);
  }
  /** One note per distinct message, with its count. */
  summary(): string[] {
    return [...this.#counts].map(([text, count]) => `bus logged ${count}× ${text}`);
  }
}

export function openBus(
  target: OursTarget,
  clientId: string,
  log: BusLog,
  onPublishResult?: (r: PublishResult) => void,
): Promise<EventBus> {
  const common = {
    clientId,
    logger: log,
    metrics: { enabled: false },
    ...(onPublishResult ? { onPublishResult } : {}),
  };
  if (target.kind === 'kafka') {
    return createEventBus({ ...common, transport: 'kafka', kafka: kafkaBusOptions(target.env) });
  }
  return target.kind === 'nats'
    ? createEventBus({ ...common, transport: 'nats', nats: { servers: [target.env.url] } })
    : createEventBus({ ...common, transport: 'memory', memory: { broker: target.broker } });
}

function resultHandler(checker: OrderChecker, counter: Counter, notes: string[]): (r: PublishResult) => void {
  let firstError = true;
  return (r) => {
    if (r.success) checker.acknowledged(r.eventId);
    else {
      checker.failed(r.eventId);
      if (firstError) {
        firstError = false;
        notes.push(`publish failed: ${r.error?.code} ${r.error?.message}`);
      }
    }
    counter.inc();
  };
}

/** The publish loop as an application writes it: await each publishEnvelope (admission into the window). */
async function publishAll(
  bus: EventBus,
  w: Workload,
  n: number,
  checker: OrderChecker,
  notes: string[],
): Promise<void> {
  for (let i = 0; i < n; i++) {
    w.expect(checker, i);
    try {
      await bus.publishEnvelope(w.topicOf(i), w.envelope(i));
    } catch (error) {
      checker.failed(w.eventIdOf(i));
      notes.push(`publishEnvelope threw at #${i}: ${(error as Error).message}`);
      return;
    }
  }
}

/** Stored contents → checker (NATS: read the streams back; Kafka: the topics; memory: the broker's logs). */
async function verifyStored(target: OursTarget, w: Workload, checker: OrderChecker): Promise<void> {
  if (target.kind === 'nats') {
    await readBack(target.env, w.topics, checker);
    return;
  }
  if (target.kind === 'kafka') {
    await readBackKafka(target.env, w.topics, checker);
    return;
  }
  for (const topic of w.topics) {
    for (const m of target.broker.messages(topic)) {
      checker.observe(
        m.headers['X-Event-ID'] ?? '',
        m.headers['X-Aggregate-ID'] ?? '',
        Number(m.headers['X-Event-Version']),
      );
    }
  }
}

/** Reads back what the broker stored for messages 0..n-1 (untimed) and classifies its order. */
export async function storedOrder(target: OursTarget, w: Workload, n: number): Promise<StoredOrder> {
  const checker = createOrderChecker();
  for (let i = 0; i < n; i++) {
    w.expect(checker, i);
    checker.acknowledged(w.eventIdOf(i));
  }
  await verifyStored(target, w, checker);
  const r = checker.report();
  return {
    outOfOrder: r.outOfOrder,
    lost: r.lost,
    duplicated: r.duplicated,
    examples: [...r.examples.outOfOrder.slice(0, 3), ...r.examples.lost.slice(0, 3)],
  };
}

/**
 * Publish throughput: from the first publishEnvelope until every PublishResult
 * arrived. Then (untimed) the stored messages are read back into the checker.
 */
export async function oursPublish(
  target: OursTarget,
  w: Workload,
  n: number,
  results: Counter,
  verify = true,
): Promise<RunOutcome> {
  const checker = createOrderChecker();
  const notes: string[] = [];
  const log = new BusLog();
  const bus = await openBus(target, 'bench-pub', log, resultHandler(checker, results, notes));
  try {
    const started = performance.now();
    await publishAll(bus, w, n, checker, notes);
    if (!(await within(results.reached(n), deadlineFor(n)))) notes.push(`only ${results.n}/${n} results`);
    const elapsedMs = performance.now() - started;
    if (verify) await verifyStored(target, w, checker);
    return { elapsedMs, checker, notes };
  } finally {
    await bus.close();
    notes.push(...log.summary());
  }
}

/** Preloads a topic set (untimed): publish through a bus and wait for all results. */
export async function oursPreloadMemory(
  broker: MemoryBroker,
  w: Workload,
  n: number,
  checker: OrderChecker,
  counter: Counter,
): Promise<void> {
  const notes: string[] = [];
  const bus = await openBus(
    { kind: 'memory', broker },
    'bench-preload',
    new BusLog(),
    resultHandler(checker, counter, notes),
  );
  try {
    await publishAll(bus, w, n, checker, notes);
    await bus.flush();
  } finally {
    await bus.close();
  }
  if (notes.length > 0) throw new Error(`Preload failed: ${notes.join('; ')}`);
}

/**
 * Kafka: one consumer group per topic. @platformatic/kafka's group leader
 * assigns only the topics it subscribed itself, round-robin over every member,
 * so subscriptions of different topics sharing the bus's default group (the
 * clientId) would not get each other's partitions (see bench/README.md).
 */
function groupFor(target: OursTarget): ((topic: string) => string) | undefined {
  return target.kind === 'kafka' ? oursGroup : undefined;
}

function subscribeAll(
  bus: EventBus,
  w: Workload,
  onEvent: (eventId: string, aggregateId: string, version: number, deliveries: number) => void,
  groupOf?: (topic: string) => string,
): Promise<unknown[]> {
  return Promise.all(
    w.topics.map((topic) => {
      const handler: EnvelopeHandler<unknown> = (e, ctx) => {
        onEvent(e.eventId, e.aggregateId, e.eventVersion, ctx.deliveryCount);
      };
      return groupOf === undefined
        ? bus.subscribeEnvelope(topic, handler)
        : bus.subscribeEnvelope(topic, handler, { group: groupOf(topic) });
    }),
  );
}

/** After a consumption run (untimed): NATS ack floor / Kafka committed offsets at the end; memory: n/a. */
async function settledOf(target: OursTarget, w: Workload): Promise<boolean | undefined> {
  if (target.kind === 'nats') return acksSettled(target.env, w.topics, SUB_CLIENT);
  if (target.kind === 'kafka') return commitsSettled(target.env, w.topics, oursGroup);
  return undefined;
}

/**
 * Consumption of a pre-loaded topic set: from the first subscribeEnvelope call
 * (consumer creation included) until every message was handled; acks go out
 * as each handler returns. Untimed afterwards: did all acks reach the broker?
 */
export async function oursConsume(
  target: OursTarget,
  w: Workload,
  n: number,
  checker: OrderChecker,
  consumed: Counter,
): Promise<RunOutcome> {
  const notes: string[] = [];
  const log = new BusLog();
  const bus = await openBus(target, SUB_CLIENT, log);
  try {
    const started = performance.now();
    await subscribeAll(bus, w, observer(checker, consumed), groupFor(target));
    if (!(await within(consumed.reached(n), deadlineFor(n)))) notes.push(`only ${consumed.n}/${n} consumed`);
    const elapsedMs = performance.now() - started;
    const transportStats = bus.health().details;
    const settled = await settledOf(target, w);
    if (settled === false) {
      notes.push(
        target.kind === 'kafka'
          ? 'offsets were not all committed 5 s after the run'
          : 'acks had not all reached the broker 5 s after the run',
      );
    }
    const base =
      transportStats === undefined
        ? { elapsedMs, checker, notes }
        : { elapsedMs, checker, notes, transportStats };
    return settled === undefined ? base : { ...base, acksSettled: settled };
  } finally {
    await bus.close();
    notes.push(...log.summary());
  }
}

/**
 * End to end: subscriptions up first (untimed), then from the first publish
 * until every PublishResult arrived AND every message was handled.
 */
export async function oursEndToEnd(
  target: OursTarget,
  w: Workload,
  n: number,
  consumed: Counter,
  results: Counter,
  options: { readonly checker?: OrderChecker; readonly readBack?: boolean } = {},
): Promise<RunOutcome> {
  const checker = options.checker ?? createOrderChecker();
  const notes: string[] = [];
  const log = new BusLog();
  const pub = await openBus(target, 'bench-pub', log, resultHandler(checker, results, notes));
  const sub = await openBus(target, SUB_CLIENT, log);
  try {
    await subscribeAll(sub, w, observer(checker, consumed), groupFor(target));
    const started = performance.now();
    await publishAll(pub, w, n, checker, notes);
    const done = Promise.all([results.reached(n), consumed.reached(n)]);
    if (!(await within(done, deadlineFor(n)))) {
      notes.push(`only ${results.n}/${n} results and ${consumed.n}/${n} consumed`);
    }
    const elapsedMs = performance.now() - started;
    const transportStats = sub.health().details;
    const base =
      transportStats === undefined
        ? { elapsedMs, checker, notes }
        : { elapsedMs, checker, notes, transportStats };
    if (options.readBack === false) return base;
    return { ...base, stored: await storedOrder(target, w, n) };
  } finally {
    await Promise.all([pub.close(), sub.close()]);
    notes.push(...log.summary());
  }
}

export interface LatencyOutcome extends RunOutcome {
  readonly recorder: LatencyRecorder;
  readonly offerMs: number;
}

/** publish→handler latency at a fixed offered rate. */
export async function oursLatency(
  target: OursTarget,
  w: Workload,
  n: number,
  rate: number,
  consumed: Counter,
): Promise<LatencyOutcome> {
  const checker = createOrderChecker();
  const notes: string[] = [];
  const recorder = createRecorder(n);
  const results = new Counter(n, 'results');
  const log = new BusLog();
  const pub = await openBus(target, 'bench-pub', log, resultHandler(checker, results, notes));
  const sub = await openBus(target, SUB_CLIENT, log);
  try {
    await subscribeAll(
      sub,
      w,
      observer(checker, consumed, (id) => recorder.arrived(w.indexOf(id))),
      groupFor(target),
    );
    const started = performance.now();
    const offerMs = await paced(n, rate, recorder.sentAt, (i) => {
      w.expect(checker, i);
      return pub.publishEnvelope(w.topicOf(i), w.envelope(i));
    });
    if (!(await within(consumed.reached(n), deadlineFor(n)))) notes.push(`only ${consumed.n}/${n} consumed`);
    await pub.flush();
    return { elapsedMs: performance.now() - started, checker, notes, recorder, offerMs };
  } finally {
    await Promise.all([pub.close(), sub.close()]);
    notes.push(...log.summary());
  }
}
