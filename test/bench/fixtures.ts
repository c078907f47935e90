/** Report rows and reports for the bench's pure parts (ratios, targets, the terminal table). */
import type { SystemName } from '../../bench/config.ts';
import {
  analyse,
  type BenchReport,
  type ThroughputRow,
  type ThroughputScenario,
} from '../../bench/report.ts';

export function row(
  scenario: ThroughputScenario,
  system: SystemName,
  msgPerSec: number,
  extra: Partial<ThroughputRow> & { readonly handleDelta?: number } = {},
): ThroughputRow {
  const { handleDelta = 0, ...rest } = extra;
  const memory = { rss: 100 << 20, heapUsed: 50 << 20, handles: 5 };
  return {
    scenario,
    level: '100k',
    messages: 100_000,
    system,
    elapsedMs: (100_000 / msgPerSec) * 1000,
    msgPerSec,
    checker: {
      published: 100,
      acknowledged: 100,
      consumed: 100,
      ok: 100,
      lost: 0,
      duplicated: 0,
      outOfOrder: 0,
      unexpected: 0,
      unknown: 0,
      recovered: 0,
      successRate: 1,
      examples: { lost: [], outOfOrder: [], unexpected: [] },
    },
    resources: {
      before: memory,
      during: { rssMax: 120 << 20, heapUsedMax: 55 << 20, handlesMax: 9 },
      after: { ...memory, handles: 5 + handleDelta },
      handleDelta,
      leakedHandleTypes: {},
      checkpoints: [],
    },
    stalls: { redelivered: 0, count: 0, totalMs: 0, longestGapMs: 0 },
    notes: [],
    ...rest,
  };
}

export function report(throughput: ThroughputRow[], kafka?: BenchReport['meta']['kafka']): BenchReport {
  return {
    meta: {
      date: '2026-01-01T00:00:00.000Z',
      node: 'v24.0.0',
      platform: 'linux x64',
      cpus: 2,
      cpuModel: 'test',
      totalMemoryBytes: 4 << 30,
      loadAverage: { start: [0.5], end: [0.5] },
      natsServer: '2.9.10',
      ...(kafka === undefined ? {} : { kafka }),
      gitCommit: 'abc1234',
      gitDirtySrc: [],
      quick: false,
      levels: [{ name: '100k', messages: 100_000 }],
      latencyRates: [],
      latencySeconds: 1,
      topics: 4,
      aggregates: 1_000,
      payloadBytes: 256,
      warmupMessages: 0,
      repeat: 1,
      durationMs: 1_000,
      argv: [],
    },
    throughput,
    latency: [],
    profiles: [],
    ...analyse(throughput, []),
  };
}
