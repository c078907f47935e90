/**
 * The raw official client doing the same work as our bus, used the way its
 * docs recommend for throughput: `js.publish()` with a window of concurrent
 * promises (msgID + the same headers; the suite sweeps the window and reports
 * the best), and `consumer.consume()` on one durable explicit-ack consumer per
 * stream (no filter: the whole stream, partition subjects included) with one
 * `m.ack()` per message. Same bytes as ours (see workload.ts), same server,
 * fresh streams.
 */
import { type JetStreamClient, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { createOrderChecker, type OrderChecker } from '../src/testing/checker.ts';
import { createRecorder, paced } from './latency.ts';
import { Counter, deadlineFor, observer, type RunOutcome, within } from './measure.ts';
import {
  acksSettled,
  addRawConsumer,
  type NatsEnv,
  partitionedSubject,
  rawConnect,
  readBack,
  STREAM_PREFIX,
  streamNameFor,
} from './nats-env.ts';
import { type LatencyOutcome, storedOrder } from './ours.ts';
import { decodeRaw, rawMessage, type Workload } from './workload.ts';

export const RAW_DURABLE = 'bench-raw';
/** consume() batch: the same 500 our transport pulls per request (the client's default is 100). */
export const RAW_CONSUME_BATCH = 500;
/** Windows of concurrent js.publish promises the publish scenario sweeps; the row reports the best. */
export const RAW_PUBLISH_WINDOWS = [100, 1_000, 5_000] as const;
/** The raw end-to-end publisher's window when the publish scenario did not pick one at this level. */
export const RAW_DEFAULT_WINDOW = 1_000;

async function publishOne(
  js: JetStreamClient,
  w: Workload,
  i: number,
  checker: OrderChecker,
  notes: string[],
): Promise<void> {
  const m = rawMessage(w, i);
  w.expect(checker, i);
  try {
    await js.publish(m.subject, m.data, { msgID: m.msgID, headers: m.headers });
    checker.acknowledged(m.msgID);
  } catch (error) {
    checker.failed(m.msgID);
    if (notes.length < 3) notes.push(`js.publish failed at #${i}: ${(error as Error).message}`);
  }
}

/**
 * Messages 0..n-1 with at most `window` js.publish promises in flight (a new
 * one starts as soon as any settles); resolves when every PubAck (or error) is in.
 */
async function publishWindowed(
  js: JetStreamClient,
  w: Workload,
  n: number,
  window: number,
  checker: OrderChecker,
  notes: string[],
  settled: Counter,
  subjectOf?: (i: number) => string,
): Promise<void> {
  let inFlight = 0;
  let wake: (() => void) | undefined;
  const done = () => {
    inFlight--;
    settled.inc();
    if (wake !== undefined) {
      const resume = wake;
      wake = undefined;
      resume();
    }
  };
  for (let i = 0; i < n; i++) {
    if (inFlight >= window) await new Promise<void>((resolve) => (wake = resolve));
    inFlight++;
    const m = rawMessage(w, i);
    w.expect(checker, i);
    js.publish(subjectOf?.(i) ?? m.subject, m.data, { msgID: m.msgID, headers: m.headers }).then(
      () => {
        checker.acknowledged(m.msgID);
        done();
      },
      (error: unknown) => {
        checker.failed(m.msgID);
        if (notes.length < 3) notes.push(`js.publish failed at #${i}: ${(error as Error).message}`);
        done();
      },
    );
  }
  await settled.reached(n);
}

/** Publish throughput: js.publish with `window` promises in flight. Untimed read-back after. */
export async function rawPublish(
  env: NatsEnv,
  w: Workload,
  n: number,
  results: Counter,
  window: number,
): Promise<RunOutcome> {
  const checker = createOrderChecker();
  const notes: string[] = [];
  const nc = await rawConnect(env, 'bench-raw-pub');
  try {
    const js = jetstream(nc);
    const started = performance.now();
    await publishWindowed(js, w, n, window, checker, notes, results);
    const elapsedMs = performance.now() - started;
    await readBack(env, w.topics, checker);
    return { elapsedMs, checker, notes };
  } finally {
    await nc.close();
  }
}

/**
 * Preloads a topic set (untimed) with up to `window` js.publish promises in
 * flight, each message on the partition subject our publisher would use;
 * marks every stored message as acknowledged in `checker`.
 */
export async function rawPreload(
  env: NatsEnv,
  w: Workload,
  n: number,
  checker: OrderChecker,
  counter: Counter,
  window = 4_000,
): Promise<void> {
  const nc = await rawConnect(env, 'bench-preload');
  try {
    const js = jetstream(nc);
    const notes: string[] = [];
    await publishWindowed(js, w, n, window, checker, notes, counter, (i) =>
      partitionedSubject(w.topicOf(i), w.aggregateOf(i)),
    );
    if (notes.length > 0) throw new Error(`Preload failed, e.g. ${notes[0]}`);
  } finally {
    await nc.close();
  }
}

/** One consume() loop per topic, explicit ack per message, until each topic's share arrived. */
async function consumeTopics(
  nc: NatsConnection,
  w: Workload,
  n: number,
  onEvent: (eventId: string, aggregateId: string, version: number, deliveries: number) => void,
): Promise<{ started: Promise<void>; finished: Promise<void> }> {
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const counts = w.countsPerTopic(n);
  const loops = w.topics.map(async (topic) => {
    const expected = counts.get(topic) ?? 0;
    await addRawConsumer(jsm, topic, RAW_DURABLE);
    const consumer = await js.consumers.get(streamNameFor(STREAM_PREFIX, topic), RAW_DURABLE);
    const messages = await consumer.consume({ max_messages: RAW_CONSUME_BATCH });
    return async () => {
      let seen = 0;
      if (expected > 0) {
        for await (const m of messages) {
          const e = decodeRaw(m.data);
          // Delivery count 1: parsing m.info per message would add work a raw user does not do.
          onEvent(e.eventId, e.aggregateId, e.eventVersion, 1);
          m.ack();
          if (++seen >= expected) break;
        }
      }
      await messages.close();
    };
  });
  const ready = Promise.all(loops);
  return {
    started: ready.then(() => undefined),
    finished: ready.then((runs) => Promise.all(runs.map((run) => run())).then(() => undefined)),
  };
}

/** Consumption of a pre-loaded topic set: from consumer creation until every message was handled. */
export async function rawConsume(
  env: NatsEnv,
  w: Workload,
  n: number,
  checker: OrderChecker,
  consumed: Counter,
): Promise<RunOutcome> {
  const notes: string[] = [];
  const nc = await rawConnect(env, 'bench-raw-sub');
  try {
    const started = performance.now();
    const { finished } = await consumeTopics(nc, w, n, observer(checker, consumed));
    if (!(await within(finished, deadlineFor(n)))) notes.push(`only ${consumed.n}/${n} consumed`);
    const elapsedMs = performance.now() - started;
    const settled = await acksSettled(env, w.topics, RAW_DURABLE);
    if (!settled) notes.push('acks had not all reached the broker 5 s after the run');
    return { elapsedMs, checker, notes, acksSettled: settled };
  } finally {
    await nc.close();
  }
}

/** End to end, the raw pair: consume loops up first (untimed), then js.publish with `window` in flight. */
export async function rawEndToEnd(
  env: NatsEnv,
  w: Workload,
  n: number,
  consumed: Counter,
  results: Counter,
  window: number,
): Promise<RunOutcome> {
  const checker = createOrderChecker();
  const notes: string[] = [];
  const pubNc = await rawConnect(env, 'bench-raw-pub');
  const subNc = await rawConnect(env, 'bench-raw-sub');
  try {
    const { started: ready, finished } = await consumeTopics(subNc, w, n, observer(checker, consumed));
    await ready;
    const js = jetstream(pubNc);
    const started = performance.now();
    await publishWindowed(js, w, n, window, checker, notes, results);
    if (!(await within(finished, deadlineFor(n)))) notes.push(`only ${consumed.n}/${n} consumed`);
    const elapsedMs = performance.now() - started;
    return { elapsedMs, checker, notes, stored: await storedOrder({ kind: 'nats', env }, w, n) };
  } finally {
    await Promise.all([pubNc.close(), subNc.close()]);
  }
}

/** publish→handler latency, raw pair: paced js.publish calls (each awaited on its own), consume() loops. */
export async function rawLatency(
  env: NatsEnv,
  w: Workload,
  n: number,
  rate: number,
  consumed: Counter,
): Promise<LatencyOutcome> {
  const checker = createOrderChecker();
  const notes: string[] = [];
  const recorder = createRecorder(n);
  const pubNc = await rawConnect(env, 'bench-raw-pub');
  const subNc = await rawConnect(env, 'bench-raw-sub');
  try {
    const { started: ready, finished } = await consumeTopics(
      subNc,
      w,
      n,
      observer(checker, consumed, (id) => recorder.arrived(w.indexOf(id))),
    );
    await ready;
    const js = jetstream(pubNc);
    const acks = new Counter(n, 'acks');
    const started = performance.now();
    const offerMs = await paced(n, rate, recorder.sentAt, (i) => {
      void publishOne(js, w, i, checker, notes).then(() => acks.inc());
      return undefined;
    });
    if (!(await within(Promise.all([finished, acks.reached(n)]), deadlineFor(n)))) {
      notes.push(`only ${consumed.n}/${n} consumed, ${acks.n}/${n} acked`);
    }
    return { elapsedMs: performance.now() - started, checker, notes, recorder, offerMs };
  } finally {
    await Promise.all([pubNc.close(), subNc.close()]);
  }
}
