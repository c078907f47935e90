/**
 * One runner shape for every system. A `Client` (our bus on NATS, Kafka or memory; the raw NATS or Kafka
 * client) only opens a publisher, a subscriber and reads back what the broker stored; the four scenarios
 * (publish, consume, e2e, latency) are written once on top of it, with the same clocks and checks for
 * every system. The Go anchor (a child process that times itself) implements the scenarios directly.
 */
import { createEventBus, type EnvelopeHandler, type EventBusOptions, type Logger } from '../src/index.ts';
import { createOrderChecker, type OrderChecker } from '../src/testing/checker.ts';
import { createMemoryBroker, type MemoryBroker } from '../src/transports/memory/index.ts';
import type { SystemName } from './config.ts';
import { type GoAnchor, goSystem } from './go-anchor.ts';
import * as kafka from './kafka.ts';
import { Counter, deadlineFor, type OnEvent, observer, type RunOutcome, within } from './measure.ts';
import * as nats from './nats.ts';
import { createRecorder, type LatencyRecorder, paced, type Workload } from './workload.ts';

export interface Publisher {
  /** Sends messages 0..n-1; returns once all are sent or admitted (results arrive on the counter). */
  sendAll(n: number): Promise<void>;
  /** Latency runs: sends message i; a returned promise is awaited before the next (admission). */
  sendOne(i: number): Promise<unknown> | undefined;
  close(): Promise<void>;
}
export interface Subscriber {
  /** Subscribes every topic (consumer creation included); resolves once they are up. */
  subscribe(): Promise<void>;
  /** Untimed, after a consumption run: every ack / offset commit reached the broker (undefined: n/a). */
  settled(): Promise<boolean | undefined>;
  stats?(): unknown;
  close(): Promise<void>;
}
export interface Client {
  /** Connected and ready to send; every result goes to `checker` (acknowledged / failed) and `results`. */
  publisher(
    w: Workload,
    checker: OrderChecker,
    results: Counter,
    notes: string[],
    window?: number,
  ): Promise<Publisher>;
  /** Connected, not yet subscribed; expects n messages. */
  subscriber(w: Workload, n: number, onEvent: OnEvent, notes: string[]): Promise<Subscriber>;
  /** What the broker stored → checker.observe (untimed). */
  readBack(w: Workload, checker: OrderChecker): Promise<void>;
}

type LatencyOutcome = RunOutcome & { readonly recorder: LatencyRecorder; readonly offerMs: number };

export interface System {
  readonly name: SystemName;
  /** Which broker it uses: the consume scenario loads every set of one backend before consuming any. */
  readonly backend: 'nats' | 'kafka' | 'memory';
  /** raw-nats: publish windows swept, the row is the best; e2e reuses the best. */
  readonly windows?: readonly number[];
  /** Fresh topics / streams (untimed) and their removal. */
  fresh(w: Workload): Promise<void>;
  drop(w: Workload): Promise<void>;
  /** Untimed bulk load (NATS: on the partition subjects our publisher uses); marks every message acknowledged. */
  preload(w: Workload, n: number, checker: OrderChecker, counter: Counter): Promise<void>;
  /** First publish → last result; then the stored messages are read back into the checker (`verify`). */
  publish(w: Workload, n: number, results: Counter, window?: number, verify?: boolean): Promise<RunOutcome>;
  /** Of a preloaded set: first subscribe / consumer creation → last message handled. */
  consume(w: Workload, n: number, checker: OrderChecker, consumed: Counter): Promise<RunOutcome>;
  /** Subscribed first; first publish → every result in and every message handled. */
  e2e(
    w: Workload,
    n: number,
    consumed: Counter,
    results: Counter,
    window?: number,
    checker?: OrderChecker,
  ): Promise<RunOutcome>;
  /** Paced publish at `rate` into a running subscription; publish call → handler. */
  latency?(w: Workload, n: number, rate: number, consumed: Counter): Promise<LatencyOutcome>;
}

/** What the broker stored for messages 0..n-1, classified (e2e rows: publish side vs consume side). */
export async function storedOrder(client: Pick<Client, 'readBack'>, w: Workload, n: number) {
  const checker = createOrderChecker();
  for (let i = 0; i < n; i++) {
    w.expect(checker, i);
    checker.acknowledged(w.eventIdOf(i));
  }
  await client.readBack(w, checker);
  const r = checker.report();
  const examples = [...r.examples.outOfOrder.slice(0, 3), ...r.examples.lost.slice(0, 3)];
  return { outOfOrder: r.outOfOrder, lost: r.lost, duplicated: r.duplicated, examples };
}

/** Sends messages 0..n-1 and waits (bounded) for every result; a shortfall becomes a note. */
async function sendAll(pub: Publisher, n: number, results: Counter, notes: string[]): Promise<void> {
  await pub.sendAll(n);
  if (!(await within(results.reached(n), deadlineFor(n)))) notes.push(`only ${results.n}/${n} results`);
}

/** A preload through `open`'s publisher; throws on any failure. */
function preloadVia(open: Client['publisher']): System['preload'] {
  return async (w, n, checker, counter) => {
    const notes: string[] = [];
    const pub = await open(w, checker, counter, notes);
    await sendAll(pub, n, counter, notes).finally(() => pub.close());
    if (notes.length > 0) throw new Error(`Preload failed: ${notes.join('; ')}`);
  };
}

/** The four scenarios over a client: one implementation, the same clocks for every system. */
function clientSystem(
  name: SystemName,
  backend: System['backend'],
  client: Client,
  topics: Pick<System, 'fresh' | 'drop' | 'preload' | 'windows'>,
  withLatency: boolean,
): System {
  const system: System = {
    name,
    backend,
    ...topics,
    async publish(w, n, results, window, verify = true) {
      const checker = createOrderChecker();
      const notes: string[] = [];
      const pub = await client.publisher(w, checker, results, notes, window);
      try {
        const started = performance.now();
        await sendAll(pub, n, results, notes);
        const elapsedMs = performance.now() - started;
        if (verify) await client.readBack(w, checker);
        return { elapsedMs, checker, notes };
      } finally {
        await pub.close();
      }
    },
    async consume(w, n, checker, consumed) {
      const notes: string[] = [];
      const sub = await client.subscriber(w, n, observer(checker, consumed), notes);
      try {
        const started = performance.now();
        await sub.subscribe();
        if (!(await within(consumed.reached(n), deadlineFor(n))))
          notes.push(`only ${consumed.n}/${n} consumed`);
        const elapsedMs = performance.now() - started;
        const outcome = { elapsedMs, checker, notes, transportStats: sub.stats?.() };
        const settled = await sub.settled();
        if (settled === false)
          notes.push('acks (offset commits) had not all reached the broker 5 s after the run');
        return settled === undefined ? outcome : { ...outcome, acksSettled: settled };
      } finally {
        await sub.close();
      }
    },
    async e2e(w, n, consumed, results, window, given) {
      const checker = given ?? createOrderChecker();
      const notes: string[] = [];
      const sub = await client.subscriber(w, n, observer(checker, consumed), notes);
      let pub: Publisher | undefined;
      try {
        await sub.subscribe();
        pub = await client.publisher(w, checker, results, notes, window);
        const started = performance.now();
        await pub.sendAll(n);
        if (!(await within(Promise.all([results.reached(n), consumed.reached(n)]), deadlineFor(n)))) {
          notes.push(`only ${results.n}/${n} results and ${consumed.n}/${n} consumed`);
        }
        const elapsedMs = performance.now() - started;
        const transportStats = sub.stats?.();
        return { elapsedMs, checker, notes, transportStats, stored: await storedOrder(client, w, n) };
      } finally {
        await Promise.all([pub?.close(), sub.close()]);
      }
    },
  };
  if (!withLatency) return system;
  system.latency = async (w, n, rate, consumed) => {
    const checker = createOrderChecker();
    const notes: string[] = [];
    const recorder = createRecorder(n);
    const results = new Counter(n);
    const onEvent = observer(checker, consumed, (id) => recorder.arrived(w.indexOf(id)));
    const sub = await client.subscriber(w, n, onEvent, notes);
    let pub: Publisher | undefined;
    try {
      await sub.subscribe();
      const opened = await client.publisher(w, checker, results, notes);
      pub = opened;
      const started = performance.now();
      const offerMs = await paced(n, rate, recorder.sentAt, (i) => opened.sendOne(i));
      if (!(await within(Promise.all([consumed.reached(n), results.reached(n)]), deadlineFor(n)))) {
        notes.push(`only ${consumed.n}/${n} consumed, ${results.n}/${n} results`);
      }
      return { elapsedMs: performance.now() - started, checker, notes, recorder, offerMs };
    } finally {
      await Promise.all([pub?.close(), sub.close()]);
    }
  };
  return system;
}

export const SUB_CLIENT = 'bench-sub';

/**
 * Our bus: `await publishEnvelope()` in a loop (admission into the publish window), every PublishResult
 * counted; `subscribeEnvelope` on every topic, default actor pool (Kafka: one group per topic, see README).
 */
function oursClient(
  transport: (w: Workload) => Pick<EventBusOptions, 'transport' | 'nats' | 'kafka' | 'memory'>,
  readBackOf: Client['readBack'],
  settledOf: (w: Workload) => Promise<boolean | undefined>,
  groupOf?: (topic: string) => string,
): Client {
  /** A bus whose warnings and errors go into `notes` on close (once per distinct message, with its count). */
  async function open(w: Workload, clientId: string, notes: string[], extra: Partial<EventBusOptions> = {}) {
    const counts = new Map<string, number>();
    const note = (level: string) => (obj: object | string, msg?: string) => {
      const text = `${level}: ${typeof obj === 'string' ? obj : (msg ?? '')}`;
      counts.set(text, (counts.get(text) ?? 0) + 1);
    };
    const logger: Logger = { debug: () => {}, info: () => {}, warn: note('warn'), error: note('error') };
    const options = { ...transport(w), clientId, logger, metrics: { enabled: false }, ...extra };
    const bus = await createEventBus(options as EventBusOptions);
    const close = async (): Promise<void> => {
      await bus.close();
      for (const [text, count] of counts) notes.push(`bus logged ${count}× ${text}`);
    };
    return { bus, close };
  }
  return {
    async publisher(w, checker, results, notes) {
      const { bus, close } = await open(w, 'bench-pub', notes, {
        onPublishResult(r) {
          if (r.success) checker.acknowledged(r.eventId);
          else {
            checker.failed(r.eventId);
            if (notes.length < 3) notes.push(`publish failed: ${r.error?.code} ${r.error?.message}`);
          }
          results.inc();
        },
      });
      const sendOne = (i: number): Promise<unknown> => {
        w.expect(checker, i);
        return bus.publishEnvelope(w.topicOf(i), w.envelope(i));
      };
      return {
        async sendAll(n) {
          for (let i = 0; i < n; i++) {
            try {
              await sendOne(i);
            } catch (error) {
              checker.failed(w.eventIdOf(i));
              notes.push(`publishEnvelope threw at #${i}: ${(error as Error).message}`);
              return;
            }
          }
        },
        sendOne,
        close,
      };
    },
    async subscriber(w, _n, onEvent, notes) {
      const { bus, close } = await open(w, SUB_CLIENT, notes);
      const handler: EnvelopeHandler = (e, ctx) =>
        onEvent(e.eventId, e.aggregateId, e.eventVersion, ctx.deliveryCount);
      const options = (topic: string) => (groupOf === undefined ? {} : { group: groupOf(topic) });
      return {
        async subscribe() {
          await Promise.all(w.topics.map((topic) => bus.subscribeEnvelope(topic, handler, options(topic))));
        },
        settled: () => settledOf(w),
        stats: () => bus.health().details,
        close,
      };
    },
    readBack: readBackOf,
  };
}

function natsSystems(env: nats.NatsEnv, go: GoAnchor | undefined): System[] {
  const topics = {
    fresh: (w: Workload) => nats.createStreams(env, w.topics),
    drop: (w: Workload) => nats.deleteStreams(env, w.topics),
    preload: preloadVia((w, c, r, notes) => nats.rawPublisher(env, w, c, r, notes, 4_000, true)),
  };
  const ours = oursClient(
    () => ({ transport: 'nats', nats: { servers: [env.url] } }),
    (w, checker) => nats.readBack(env, w.topics, checker),
    (w) => nats.acksSettled(env, w.topics, SUB_CLIENT),
  );
  const swept = { ...topics, windows: nats.RAW_PUBLISH_WINDOWS };
  return [
    clientSystem('ours-nats', 'nats', ours, topics, true),
    clientSystem('raw-nats', 'nats', nats.rawNatsClient(env), swept, true),
    ...(go === undefined ? [] : [{ ...goSystem(go, env), ...topics, backend: 'nats' as const }]),
  ];
}

function memorySystem(): System {
  const brokers = new Map<string, MemoryBroker>();
  const brokerOf = (w: Workload): MemoryBroker => {
    const broker = brokers.get(w.prefix) ?? createMemoryBroker();
    brokers.set(w.prefix, broker);
    return broker;
  };
  const ours = oursClient(
    (w) => ({ transport: 'memory', memory: { broker: brokerOf(w) } }),
    async (w, checker) => {
      for (const topic of w.topics) {
        for (const { headers: h } of brokerOf(w).messages(topic)) {
          checker.observe(h['X-Event-ID'] ?? '', h['X-Aggregate-ID'] ?? '', Number(h['X-Event-Version']));
        }
      }
    },
    async () => undefined,
  );
  const topics = {
    fresh: async (w: Workload) => void brokerOf(w),
    drop: async (w: Workload) => void brokers.delete(w.prefix),
    preload: preloadVia(ours.publisher),
  };
  return clientSystem('ours-memory', 'memory', ours, topics, true);
}

function kafkaSystems(env: kafka.KafkaEnv): System[] {
  const topics = {
    fresh: (w: Workload) => kafka.createKafkaTopics(env, w.topics),
    drop: (w: Workload) => kafka.deleteKafkaTopics(env, w),
    preload: preloadVia((w, c, r, notes) => kafka.rawKafkaPublisher(env, w, c, r, notes, false)),
  };
  const ours = oursClient(
    () => ({ transport: 'kafka', kafka: kafka.kafkaBusOptions(env) }),
    (w, checker) => kafka.readBackKafka(env, w.topics, checker),
    (w) => kafka.commitsSettled(env, w.topics, kafka.oursGroup),
    kafka.oursGroup,
  );
  return [
    clientSystem('ours-kafka', 'kafka', ours, topics, false),
    clientSystem('raw-kafka', 'kafka', kafka.rawKafkaClient(env), topics, false),
  ];
}

/** The systems that can run with these environments, in report order. */
export function createSystems(envs: {
  readonly nats?: nats.NatsEnv | undefined;
  readonly kafka?: kafka.KafkaEnv | undefined;
  readonly go?: GoAnchor | undefined;
}): System[] {
  return [
    ...(envs.nats ? natsSystems(envs.nats, envs.go) : []),
    memorySystem(),
    ...(envs.kafka ? kafkaSystems(envs.kafka) : []),
  ];
}
