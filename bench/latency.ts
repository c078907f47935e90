/**
 * Fixed offered rate and publish→handler latency. The paced sender issues
 * message i at (or right after) start + i/rate; the handler records
 * now − sentAt[i] in an HDR histogram (microseconds, 3 significant digits).
 * The first 10% of messages are warm-up and not recorded.
 */
import { build, type Histogram } from 'hdr-histogram-js';

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
  onSent?: (i: number) => void,
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
      onSent?.(i);
    }
    if (i < total) {
      const wait = start + i * interval - performance.now();
      await sleep(Math.max(0, wait));
    }
  }
  return performance.now() - start;
}
