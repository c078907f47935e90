/**
 * The raw official Kafka client (`@platformatic/kafka`) doing the same work as
 * our bus, the way an informed user of the client writes it:
 *
 * - Producer: idempotent, acks=all (-1), LZ4, record key = aggregate id, the
 *   same envelope JSON body and X-* headers per message (see workload.ts).
 *   Pipelined: `send({ messages })` batches of RAW_KAFKA_BATCH records with
 *   up to RAW_KAFKA_IN_FLIGHT sends outstanding. An idempotent producer keeps
 *   one produce request in flight per connection, so more outstanding sends
 *   only queue the next requests (no idle round trip between batches); the
 *   client numbers each batch's records per partition when it sends, in call
 *   order, so queued batches keep their order.
 * - Consumer: one member of a fresh group reading every topic of the workload
 *   from the committed offsets (earliest without), `JSON.parse` of each value
 *   (as our bus decodes it) and `message.commit()` per message: the client
 *   coalesces those into one OffsetCommit in flight per consumer, monotonic
 *   per partition.
 */
import { Consumer, type MessageToProduce, ProduceAcks, Producer } from '@platformatic/kafka';
import { createOrderChecker, type OrderChecker } from '../src/testing/checker.ts';
import { describeKafkaError } from '../src/transports/kafka/errors.ts';
import { clientOptions, commitsSettled, type KafkaEnv, rawGroup, readBackKafka } from './kafka-env.ts';
import { type Counter, deadlineFor, observer, type RunOutcome, within } from './measure.ts';
import { storedOrder } from './ours.ts';
import { decodeRaw, EVENT_TYPE, rawEnvelope, type Workload } from './workload.ts';

/** Records per `send()`: ~650 bytes each before LZ4, spread over every partition of the 4 topics. */
export const RAW_KAFKA_BATCH = 1_000;
/** `send()` calls outstanding at once (queued behind the one produce request in flight). */
export const RAW_KAFKA_IN_FLIGHT = 4;

export type RawRecord = MessageToProduce<Buffer, Buffer, Buffer, Buffer>;

const H_EVENT_ID = Buffer.from('X-Event-ID');
const H_AGGREGATE_ID = Buffer.from('X-Aggregate-ID');
const H_EVENT_TYPE = Buffer.from('X-Event-Type');
const H_EVENT_VERSION = Buffer.from('X-Event-Version');
const H_TIMESTAMP = Buffer.from('X-Timestamp');
const EVENT_TYPE_BYTES = Buffer.from(EVENT_TYPE);

/**
 * What a raw client user sends for message i: key = aggregate id, the
 * envelope JSON (same fields as the NATS raw side, a fresh timestamp) and the
 * same metadata headers our bus sets.
 */
export function kafkaRecord(w: Workload, i: number): RawRecord {
  const { eventId, aggregateId, eventVersion, timestamp, json } = rawEnvelope(w, i);
  const value = Buffer.from(json);
  const headers = new Map<Buffer, Buffer>([
    [H_EVENT_ID, Buffer.from(eventId)],
    [H_AGGREGATE_ID, Buffer.from(aggregateId)],
    [H_EVENT_TYPE, EVENT_TYPE_BYTES],
    [H_EVENT_VERSION, Buffer.from(String(eventVersion))],
    [H_TIMESTAMP, Buffer.from(timestamp)],
  ]);
  return { topic: w.topicOf(i), key: Buffer.from(aggregateId), value, headers };
}

/**
 * Calls `send(from, to)` for the consecutive ranges [0, batch), [batch, 2·batch)
 * … covering [0, n), in order, with at most `maxInFlight` of them unsettled at
 * once; resolves when all settled. `send` reports its own failures (it must
 * not reject; if it does, the rejection propagates and no further range starts).
 */
export async function pipelined(
  n: number,
  batch: number,
  maxInFlight: number,
  send: (from: number, to: number) => Promise<void>,
): Promise<void> {
  if (!(Number.isSafeInteger(batch) && batch > 0 && Number.isSafeInteger(maxInFlight) && maxInFlight > 0)) {
    throw new Error(`Expected a positive batch and maxInFlight, got ${batch} and ${maxInFlight}`);
  }
  const inFlight = new Set<Promise<void>>();
  for (let from = 0; from < n; from += batch) {
    const p: Promise<void> = send(from, Math.min(n, from + batch)).finally(() => inFlight.delete(p));
    inFlight.add(p);
    if (inFlight.size >= maxInFlight) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
}

type RawProducer = Producer<Buffer, Buffer, Buffer, Buffer>;

function rawProducer(env: KafkaEnv, clientId: string): RawProducer {
  return new Producer({
    ...clientOptions(env, clientId),
    idempotent: true,
    acks: ProduceAcks.ALL,
    compression: 'lz4',
  });
}

/**
 * Messages [0, n) through `producer`, pipelined; every message's outcome into
 * `checker` and `results`. Bounded by the run's deadline (an idempotent
 * producer retries forever by default): a note says what was missing.
 */
async function produceAll(
  producer: RawProducer,
  w: Workload,
  n: number,
  checker: OrderChecker,
  results: Counter,
  notes: string[],
): Promise<void> {
  const all = pipelined(n, RAW_KAFKA_BATCH, RAW_KAFKA_IN_FLIGHT, (from, to) => {
    const messages: RawRecord[] = [];
    for (let i = from; i < to; i++) {
      w.expect(checker, i);
      messages.push(kafkaRecord(w, i));
    }
    return new Promise<void>((resolve) => {
      producer.send({ messages }, (error) => {
        for (let i = from; i < to; i++) {
          if (error) checker.failed(w.eventIdOf(i));
          else checker.acknowledged(w.eventIdOf(i));
          results.inc();
        }
        if (error && notes.length < 3)
          notes.push(`send() failed for #${from}..${to - 1}: ${describeKafkaError(error)}`);
        resolve();
      });
    });
  });
  if (!(await within(all, deadlineFor(n)))) notes.push(`only ${results.n}/${n} send results`);
}

/**
 * Publish throughput: from the first send until every batch was acknowledged
 * (the producer id is obtained before, as our bus does when it opens).
 * Untimed read-back after.
 */
export async function rawKafkaPublish(
  env: KafkaEnv,
  w: Workload,
  n: number,
  results: Counter,
): Promise<RunOutcome> {
  const checker = createOrderChecker();
  const notes: string[] = [];
  const producer = rawProducer(env, 'bench-raw-pub');
  try {
    await producer.initIdempotentProducer({});
    const started = performance.now();
    await produceAll(producer, w, n, checker, results, notes);
    const elapsedMs = performance.now() - started;
    await readBackKafka(env, w.topics, checker);
    return { elapsedMs, checker, notes };
  } finally {
    await producer.close();
  }
}

/** Preloads a topic set (untimed) with the raw producer; marks every acknowledged message in `checker`. */
export async function rawKafkaPreload(
  env: KafkaEnv,
  w: Workload,
  n: number,
  checker: OrderChecker,
  counter: Counter,
): Promise<void> {
  const notes: string[] = [];
  const producer = rawProducer(env, 'bench-preload');
  try {
    await produceAll(producer, w, n, checker, counter, notes);
  } finally {
    await producer.close();
  }
  if (notes.length > 0) throw new Error(`Preload failed: ${notes.join('; ')}`);
}

interface RawSubscriber {
  /** Resolves once n messages were handled. */
  readonly finished: Promise<void>;
  /** Closes the stream (pending commits are flushed) and leaves the group. */
  close(): Promise<void>;
}

/** Joins the raw group on every topic of `w` (resolves once joined) and handles messages as they come. */
async function subscribeRaw(
  env: KafkaEnv,
  w: Workload,
  n: number,
  notes: string[],
  onEvent: (eventId: string, aggregateId: string, version: number) => void,
): Promise<RawSubscriber> {
  const consumer = new Consumer({ ...clientOptions(env, 'bench-raw-sub'), groupId: rawGroup(w) });
  // The client emits 'error' when a rejoin fails; without a listener that would end the process.
  consumer.on('error', (error) => notes.push(`consumer error: ${describeKafkaError(error)}`));
  let stream: Awaited<ReturnType<typeof consumer.consume>>;
  try {
    stream = await consumer.consume({
      topics: [...w.topics],
      mode: 'committed',
      fallbackMode: 'earliest',
      autocommit: false,
    });
  } catch (error) {
    await consumer.close(true);
    throw error;
  }
  let resolveFinished!: () => void;
  const finished = new Promise<void>((resolve) => {
    resolveFinished = resolve;
  });
  if (n === 0) resolveFinished();
  let commitErrors = 0;
  const onCommitted = (error?: Error | null): void => {
    if (error && commitErrors++ === 0) notes.push(`commit failed: ${describeKafkaError(error)}`);
  };
  let seen = 0;
  stream.on('data', (m) => {
    const e = decodeRaw(m.value);
    onEvent(e.eventId, e.aggregateId, e.eventVersion);
    m.commit(onCommitted);
    if (++seen === n) resolveFinished();
  });
  stream.on('error', (error) => notes.push(`consumer stream error: ${describeKafkaError(error)}`));
  return {
    finished,
    async close() {
      try {
        await stream.close();
      } finally {
        await consumer.close(true);
        if (commitErrors > 1) notes.push(`${commitErrors} commits failed`);
      }
    },
  };
}

/**
 * Consumption of a pre-loaded topic set: from the consumer's creation (group
 * join included) until every message was handled. Untimed afterwards: did
 * every offset get committed?
 */
export async function rawKafkaConsume(
  env: KafkaEnv,
  w: Workload,
  n: number,
  checker: OrderChecker,
  consumed: Counter,
): Promise<RunOutcome> {
  const notes: string[] = [];
  const started = performance.now();
  const sub = await subscribeRaw(env, w, n, notes, observer(checker, consumed));
  try {
    if (!(await within(sub.finished, deadlineFor(n)))) notes.push(`only ${consumed.n}/${n} consumed`);
    const elapsedMs = performance.now() - started;
    const settled = await commitsSettled(env, w.topics, () => rawGroup(w));
    if (!settled) notes.push('offsets were not all committed 5 s after the run');
    return { elapsedMs, checker, notes, acksSettled: settled };
  } finally {
    await sub.close();
  }
}

/** End to end, the raw pair: the consumer joined first (untimed), then the pipelined producer. */
export async function rawKafkaEndToEnd(
  env: KafkaEnv,
  w: Workload,
  n: number,
  consumed: Counter,
  results: Counter,
): Promise<RunOutcome> {
  const checker = createOrderChecker();
  const notes: string[] = [];
  const producer = rawProducer(env, 'bench-raw-pub');
  let sub: RawSubscriber | undefined;
  try {
    await producer.initIdempotentProducer({});
    sub = await subscribeRaw(env, w, n, notes, observer(checker, consumed));
    const started = performance.now();
    await produceAll(producer, w, n, checker, results, notes);
    if (!(await within(sub.finished, deadlineFor(n)))) notes.push(`only ${consumed.n}/${n} consumed`);
    const elapsedMs = performance.now() - started;
    return { elapsedMs, checker, notes, stored: await storedOrder({ kind: 'kafka', env }, w, n) };
  } finally {
    await Promise.all([producer.close(), sub?.close()]);
  }
}
