/**
 * The workload every system runs: message i belongs to aggregate i % A (its
 * topic fixed by the aggregate), carries eventVersion floor(i / A) (its index
 * within the aggregate) and the same 256-byte JSON payload. Event ids are
 * `<prefix><i>`, so a handler recovers i without a lookup table.
 *
 * Ours and raw send the same bytes: the raw side builds the same envelope
 * JSON and the same X-* headers per message (the work a raw user would do).
 *
 * Latency: the paced sender issues message i at (or right after)
 * start + i/rate; the handler records now − sentAt[i] in an HDR histogram
 * (µs, 3 significant digits); the first 10% of messages are not recorded.
 */
import { type MsgHdrs, headers as natsHeaders } from '@nats-io/transport-node';
import { build, type Histogram } from 'hdr-histogram-js';
import type { EnvelopeInput } from '../src/index.ts';
import type { OrderChecker } from '../src/testing/checker.ts';

export const EVENT_TYPE = 'BenchEvent';

export interface Workload {
  readonly topics: readonly string[];
  readonly aggregates: number;
  readonly prefix: string;
  readonly payload: Readonly<Record<string, unknown>>;
  topicOf(i: number): string;
  aggregateOf(i: number): string;
  versionOf(i: number): number;
  eventIdOf(i: number): string;
  /** Message index of an event id of this workload (NaN for a foreign id). */
  indexOf(eventId: string): number;
  /** What `publishEnvelope` gets for message i. */
  envelope(i: number): EnvelopeInput<Readonly<Record<string, unknown>>>;
  /** Registers message i with the order checker before it is published. */
  expect(checker: OrderChecker, i: number): void;
  /** How many of the first n messages go to each topic. */
  countsPerTopic(n: number): Map<string, number>;
}

/** A JSON object whose encoding is exactly `bytes` long. */
export function payloadOfSize(bytes: number): Record<string, unknown> {
  const base = { amount: 1234, currency: 'EUR', note: '' };
  const overhead = JSON.stringify(base).length;
  if (bytes < overhead) throw new Error(`Expected a payload size >= ${overhead}, got ${bytes}`);
  return { ...base, note: 'x'.repeat(bytes - overhead) };
}

export function createWorkload(options: {
  readonly name: string;
  readonly topics: number;
  readonly aggregates: number;
  readonly payloadBytes: number;
}): Workload {
  const topics = Array.from({ length: options.topics }, (_, t) => `bench.${options.name}.t${t}`);
  const aggregateIds = Array.from({ length: options.aggregates }, (_, a) => `agg-${a}`);
  const aggregateTopic = Array.from(
    { length: options.aggregates },
    (_, a) => topics[a % topics.length] as string,
  );
  const prefix = `${options.name}-`;
  const payload = Object.freeze(payloadOfSize(options.payloadBytes));
  const A = options.aggregates;
  const w: Workload = {
    topics,
    aggregates: A,
    prefix,
    payload,
    topicOf: (i) => aggregateTopic[i % A] as string,
    aggregateOf: (i) => aggregateIds[i % A] as string,
    versionOf: (i) => Math.floor(i / A),
    eventIdOf: (i) => prefix + i,
    indexOf: (eventId) => (eventId.startsWith(prefix) ? Number(eventId.slice(prefix.length)) : Number.NaN),
    envelope: (i) => ({
      eventId: prefix + i,
      aggregateId: aggregateIds[i % A] as string,
      eventType: EVENT_TYPE,
      eventVersion: Math.floor(i / A),
      payload,
    }),
    expect(checker, i) {
      checker.expect(prefix + i, aggregateIds[i % A] as string, Math.floor(i / A));
    },
    countsPerTopic(n) {
      const counts = new Map<string, number>(topics.map((t) => [t, 0]));
      for (let a = 0; a < Math.min(A, n); a++) {
        const perAggregate = Math.floor(n / A) + (a < n % A ? 1 : 0);
        const topic = aggregateTopic[a] as string;
        counts.set(topic, (counts.get(topic) ?? 0) + perAggregate);
      }
      return counts;
    },
  };
  return w;
}

const encoder = new TextEncoder();

export interface RawMessage {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly msgID: string;
  readonly headers: MsgHdrs;
}

/** The envelope fields and JSON body a raw client user builds for message i (a fresh timestamp). */
export interface RawEnvelope {
  readonly eventId: string;
  readonly aggregateId: string;
  readonly eventVersion: number;
  readonly timestamp: string;
  readonly json: string;
}

export function rawEnvelope(w: Workload, i: number): RawEnvelope {
  const eventId = w.eventIdOf(i);
  const aggregateId = w.aggregateOf(i);
  const eventVersion = w.versionOf(i);
  const timestamp = new Date().toISOString();
  const json = JSON.stringify({
    eventId,
    aggregateId,
    eventType: EVENT_TYPE,
    eventVersion,
    timestamp,
    payload: w.payload,
  });
  return { eventId, aggregateId, eventVersion, timestamp, json };
}

/**
 * What a raw NATS client user sends for message i: the envelope JSON and the
 * same metadata headers our bus sets.
 */
export function rawMessage(w: Workload, i: number): RawMessage {
  const { eventId, aggregateId, eventVersion, timestamp, json } = rawEnvelope(w, i);
  const headers = natsHeaders();
  headers.set('X-Event-ID', eventId);
  headers.set('X-Aggregate-ID', aggregateId);
  headers.set('X-Event-Type', EVENT_TYPE);
  headers.set('X-Event-Version', String(eventVersion));
  headers.set('X-Timestamp', timestamp);
  return { subject: w.topicOf(i), data: encoder.encode(json), msgID: eventId, headers };
}

const decoder = new TextDecoder();

/** What a raw consumer does with a body: decode the envelope JSON. */
export function decodeRaw(data: Uint8Array): { eventId: string; aggregateId: string; eventVersion: number } {
  return JSON.parse(decoder.decode(data)) as { eventId: string; aggregateId: string; eventVersion: number };
}

export interface LatencyRecorder {
  readonly sentAt: Float64Array;
  readonly histogram: Histogram;
  readonly warmup: number;
  /** Records message i's arrival at a handler (first arrival only). */
  arrived(i: number): void;
}

export function createRecorder(total: number): LatencyRecorder {
  const sentAt = new Float64Array(total);
  const seen = new Uint8Array(total);
  const histogram = build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 600_000_000,
    numberOfSignificantValueDigits: 3,
  });
  const warmup = Math.floor(total / 10);
  return {
    sentAt,
    histogram,
    warmup,
    arrived(i) {
      if (!(i >= 0 && i < total) || seen[i] === 1) return;
      seen[i] = 1;
      if (i < warmup) return;
      const micros = (performance.now() - (sentAt[i] as number)) * 1000;
      histogram.recordValue(Math.max(1, Math.round(micros)));
    },
  };
}

export interface LatencySummary {
  readonly recorded: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly mean: number;
}

/** Percentiles in milliseconds. */
export function summarize(h: Histogram): LatencySummary {
  const ms = (micros: number): number => Math.round(micros) / 1000;
  return {
    recorded: h.totalCount,
    p50: ms(h.getValueAtPercentile(50)),
    p90: ms(h.getValueAtPercentile(90)),
    p99: ms(h.getValueAtPercentile(99)),
    p999: ms(h.getValueAtPercentile(99.9)),
    max: ms(h.maxValue),
    mean: ms(h.mean),
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Sends `total` messages at `rate` msg/s: each wake-up sends every message
 * that is due by now, then sleeps until the next one is due. `send` may
 * return a promise (awaited before the next message: admission, not the ack).
 * Returns the time it took to offer everything.
 */
export async function paced(
  total: number,
  rate: number,
  sentAt: Float64Array,
  send: (i: number) => Promise<unknown> | undefined,
): Promise<number> {
  const interval = 1000 / rate;
  const start = performance.now();
  let i = 0;
  while (i < total) {
    const due = Math.min(total, Math.floor((performance.now() - start) / interval) + 1);
    for (; i < due; i++) {
      sentAt[i] = performance.now();
      const pending = send(i);
      if (pending !== undefined) await pending;
    }
    if (i < total) {
      const wait = start + i * interval - performance.now();
      await sleep(Math.max(0, wait));
    }
  }
  return performance.now() - start;
}
