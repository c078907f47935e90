/**
 * The workload every system runs: message i belongs to aggregate i % A (its
 * topic fixed by the aggregate), carries eventVersion floor(i / A) (its index
 * within the aggregate) and the same 256-byte JSON payload. Event ids are
 * `<prefix><i>`, so a handler recovers i without a lookup table. Ours and raw
 * send the same bytes: the raw side builds the same envelope JSON and the
 * same X-* headers per message (the work a raw user would do).
 */
import { headers as natsHeaders } from '@nats-io/transport-node';
import { build, type Histogram } from 'hdr-histogram-js';
import type { OrderChecker } from '../src/testing/checker.ts';

export const EVENT_TYPE = 'BenchEvent';

export type Workload = ReturnType<typeof createWorkload>;

export function createWorkload(options: {
  readonly name: string;
  readonly topics: number;
  readonly aggregates: number;
  readonly payloadBytes: number;
}) {
  const { aggregates, payloadBytes } = options;
  const topics = Array.from({ length: options.topics }, (_, t) => `bench.${options.name}.t${t}`);
  const aggregateIds = Array.from({ length: aggregates }, (_, a) => `agg-${a}`);
  const prefix = `${options.name}-`;
  const base = { amount: 1234, currency: 'EUR', note: '' };
  const pad = payloadBytes - JSON.stringify(base).length;
  if (pad < 0) throw new Error(`Expected a payload size >= ${payloadBytes - pad}, got ${payloadBytes}`);
  /** A JSON object whose encoding is exactly payloadBytes long. */
  const payload: Readonly<Record<string, unknown>> = Object.freeze({ ...base, note: 'x'.repeat(pad) });
  const topicOf = (i: number): string => topics[(i % aggregates) % topics.length] as string;
  const aggregateOf = (i: number): string => aggregateIds[i % aggregates] as string;
  const versionOf = (i: number): number => Math.floor(i / aggregates);
  const eventIdOf = (i: number): string => prefix + i;
  return {
    topics: topics as readonly string[],
    aggregates,
    prefix,
    payload,
    topicOf,
    aggregateOf,
    versionOf,
    eventIdOf,
    /** Message index of an event id of this workload (NaN for a foreign id). */
    indexOf: (id: string): number => (id.startsWith(prefix) ? Number(id.slice(prefix.length)) : Number.NaN),
    /** What `publishEnvelope` gets for message i. */
    envelope: (i: number) => ({
      eventId: eventIdOf(i),
      aggregateId: aggregateOf(i),
      eventType: EVENT_TYPE,
      eventVersion: versionOf(i),
      payload,
    }),
    /** Registers message i with the order checker before it is published. */
    expect: (checker: OrderChecker, i: number): void =>
      checker.expect(eventIdOf(i), aggregateOf(i), versionOf(i)),
    /** How many of the first n messages go to each topic. */
    countsPerTopic(n: number): Map<string, number> {
      const counts = new Map<string, number>(topics.map((t) => [t, 0]));
      for (let a = 0; a < Math.min(aggregates, n); a++) {
        const topic = topicOf(a);
        const messages = Math.floor(n / aggregates) + (a < n % aggregates ? 1 : 0);
        counts.set(topic, (counts.get(topic) ?? 0) + messages);
      }
      return counts;
    },
  };
}

/** The envelope fields and JSON body a raw client user builds for message i (a fresh timestamp). */
export function rawEnvelope(w: Workload, i: number) {
  const [eventId, aggregateId, eventVersion] = [w.eventIdOf(i), w.aggregateOf(i), w.versionOf(i)];
  const timestamp = new Date().toISOString();
  const body = { eventId, aggregateId, eventType: EVENT_TYPE, eventVersion, timestamp, payload: w.payload };
  return { eventId, aggregateId, eventVersion, timestamp, json: JSON.stringify(body) };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What a raw NATS client user sends for message i: the envelope JSON and the headers our bus sets. */
export function rawMessage(w: Workload, i: number) {
  const { eventId, aggregateId, eventVersion, timestamp, json } = rawEnvelope(w, i);
  const headers = natsHeaders();
  headers.set('X-Event-ID', eventId);
  headers.set('X-Aggregate-ID', aggregateId);
  headers.set('X-Event-Type', EVENT_TYPE);
  headers.set('X-Event-Version', String(eventVersion));
  headers.set('X-Timestamp', timestamp);
  return { subject: w.topicOf(i), data: encoder.encode(json), msgID: eventId, headers };
}

/** What a raw consumer does with a body: decode the envelope JSON. */
export function decodeRaw(data: Uint8Array): { eventId: string; aggregateId: string; eventVersion: number } {
  return JSON.parse(decoder.decode(data));
}

export type LatencyRecorder = ReturnType<typeof createRecorder>;

/** Latency: now − sentAt[i] at message i's first arrival, in µs (3 significant digits), past the first 10%. */
export function createRecorder(total: number) {
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
    /** Records message i's first arrival at a handler. */
    arrived(i: number): void {
      if (!(i >= 0 && i < total) || seen[i] === 1) return;
      seen[i] = 1;
      if (i >= warmup)
        histogram.recordValue(Math.max(1, Math.round((performance.now() - (sentAt[i] as number)) * 1000)));
    },
  };
}

/** Count recorded and percentiles in milliseconds. */
export function summarize(h: Histogram) {
  const ms = (micros: number): number => Math.round(micros) / 1000;
  const at = (p: number): number => ms(h.getValueAtPercentile(p));
  return {
    recorded: h.totalCount,
    p50: at(50),
    p90: at(90),
    p99: at(99),
    p999: at(99.9),
    max: ms(h.maxValue),
    mean: ms(h.mean),
  };
}

/**
 * Sends `total` messages at `rate` msg/s: each wake-up sends every message
 * due by now, then sleeps until the next is due. A promise `send` returns is
 * awaited before the next message (admission, not the ack). Returns the time
 * it took to offer everything.
 */
export async function paced(
  total: number,
  rate: number,
  sentAt: Float64Array,
  send: (i: number) => Promise<unknown> | undefined,
): Promise<number> {
  const interval = 1000 / rate;
  const start = performance.now();
  for (let i = 0; i < total; ) {
    const due = Math.min(total, Math.floor((performance.now() - start) / interval) + 1);
    for (; i < due; i++) {
      sentAt[i] = performance.now();
      const pending = send(i);
      if (pending !== undefined) await pending;
    }
    if (i < total)
      await new Promise((r) => setTimeout(r, Math.max(0, start + i * interval - performance.now())));
  }
  return performance.now() - start;
}
