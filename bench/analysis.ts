/** Ratios (ours ÷ raw, same run) and the issue-5 targets, from the measured rows. */
import type {
  BenchReport,
  LatencyRow,
  MemoryGrowth,
  RatioRow,
  TargetResult,
  ThroughputRow,
  ThroughputScenario,
} from './types.ts';

const SCENARIO_ORDER: readonly ThroughputScenario[] = ['publish', 'consume', 'e2e'];

/** ours ÷ raw, two decimals; undefined unless both ran. */
function ratioOf(ours: number | undefined, raw: number | undefined): number | undefined {
  return ours !== undefined && raw !== undefined && raw > 0
    ? Math.round((ours / raw) * 100) / 100
    : undefined;
}

export function ratios(rows: readonly ThroughputRow[]): RatioRow[] {
  const out: RatioRow[] = [];
  for (const scenario of SCENARIO_ORDER) {
    const levels = [
      ...new Map(rows.filter((r) => r.scenario === scenario).map((r) => [r.level, r.messages])),
    ];
    for (const [level, messages] of levels) {
      const find = (system: string) =>
        rows.find((r) => r.scenario === scenario && r.level === level && r.system === system)?.msgPerSec;
      const ours = find('ours-nats');
      const raw = find('raw-nats');
      const go = find('go-nats');
      const rawWindow = rows.find(
        (r) => r.scenario === scenario && r.level === level && r.system === 'raw-nats',
      )?.window;
      const oursKafka = find('ours-kafka');
      const rawKafka = find('raw-kafka');
      out.push({
        scenario,
        level,
        messages,
        oursMsgPerSec: ours,
        rawMsgPerSec: raw,
        memoryMsgPerSec: find('ours-memory'),
        ratio: ratioOf(ours, raw),
        ...(rawWindow === undefined ? {} : { rawWindow }),
        ...(go === undefined ? {} : { goMsgPerSec: go, goRatio: ratioOf(ours, go) }),
        ...(oursKafka === undefined && rawKafka === undefined
          ? {}
          : {
              oursKafkaMsgPerSec: oursKafka,
              rawKafkaMsgPerSec: rawKafka,
              kafkaRatio: ratioOf(oursKafka, rawKafka),
            }),
      });
    }
  }
  return out;
}

function ratioTarget(
  all: readonly RatioRow[],
  scenario: ThroughputScenario,
  id: string,
  description: string,
  threshold: number,
): TargetResult {
  const rows = all.filter((r) => r.scenario === scenario && r.ratio !== undefined);
  const headline = [...rows].sort((a, b) => b.messages - a.messages)[0];
  if (headline === undefined) return { id, description, measured: 'not run', holds: undefined };
  const perLevel = rows.map((r) => `${r.level} ${r.ratio?.toFixed(2)}×`).join(', ');
  return {
    id,
    description,
    measured: `${headline.ratio?.toFixed(2)}× at ${headline.level} (all levels: ${perLevel})`,
    holds: (headline.ratio ?? 0) >= threshold,
  };
}

/** Publish against the physical anchor: ≥ 0.7× the Go client's PublishAsync (stretch 0.9×). */
function goTarget(all: readonly RatioRow[]): TargetResult {
  const id = 'publish-go';
  const description = 'envelope publish ≥ 0.7× the Go client (PublishAsync)';
  const rows = all.filter((r) => r.scenario === 'publish' && r.goRatio !== undefined);
  const headline = [...rows].sort((a, b) => b.messages - a.messages)[0];
  if (headline === undefined) return { id, description, measured: 'not run (no Go)', holds: undefined };
  return {
    id,
    description,
    measured: `${headline.goRatio?.toFixed(2)}× at ${headline.level} (all levels: ${rows.map((r) => `${r.level} ${r.goRatio?.toFixed(2)}×`).join(', ')})`,
    holds: (headline.goRatio ?? 0) >= 0.7,
  };
}

export function memoryGrowth(rows: readonly ThroughputRow[], soak: ThroughputRow | undefined): MemoryGrowth {
  if (soak !== undefined) {
    const at = (processed: number) => soak.resources.checkpoints.find((c) => c.processed === processed);
    return {
      source: 'soak',
      rssAt100k: at(100_000)?.rss,
      rssAtEnd: at(soak.messages)?.rss,
      heapAt100k: at(100_000)?.heapUsed,
      heapAtEnd: at(soak.messages)?.heapUsed,
      endMessages: soak.messages,
    };
  }
  const e2e = (messages: number) =>
    rows.find((r) => r.scenario === 'e2e' && r.system === 'ours-nats' && r.messages === messages);
  const r100k = e2e(100_000);
  const r1M = e2e(1_000_000);
  if (r100k === undefined || r1M === undefined) {
    return {
      source: 'none',
      rssAt100k: undefined,
      rssAtEnd: undefined,
      heapAt100k: undefined,
      heapAtEnd: undefined,
      endMessages: undefined,
    };
  }
  return {
    source: 'e2e rows',
    rssAt100k: r100k.resources.after.rss,
    rssAtEnd: r1M.resources.after.rss,
    heapAt100k: r100k.resources.after.heapUsed,
    heapAtEnd: r1M.resources.after.heapUsed,
    endMessages: 1_000_000,
  };
}

const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;

export function targets(
  throughput: readonly ThroughputRow[],
  latency: readonly LatencyRow[],
  ratioRows: readonly RatioRow[],
  growth: MemoryGrowth,
  soak?: ThroughputRow,
): TargetResult[] {
  const out: TargetResult[] = [
    ratioTarget(ratioRows, 'publish', 'publish', 'envelope publish ≥ 3.0× raw js.publish (best window)', 3.0),
    goTarget(ratioRows),
  ];
  const consume = ratioTarget(
    ratioRows,
    'consume',
    'consume',
    'consumption ≥ 2.0× raw consume() with acks, 0 order violations',
    2.0,
  );
  const violations = throughput
    .filter((r) => r.scenario === 'consume' && r.system === 'ours-nats')
    .reduce((sum, r) => sum + r.checker.outOfOrder, 0);
  out.push({
    ...consume,
    measured: `${consume.measured}; order violations ${violations}`,
    holds: consume.holds === undefined ? undefined : consume.holds && violations === 0,
  });
  out.push(ratioTarget(ratioRows, 'e2e', 'e2e', 'end-to-end ≥ 2.5× the raw pair', 2.5));

  const p99 = latency.find((r) => r.system === 'ours-nats' && r.rate === 5_000);
  out.push({
    id: 'latency',
    description: 'p99 publish→handler ≤ 5 ms at 5,000 msg/s',
    measured: p99 ? `p99 ${p99.p99} ms (p50 ${p99.p50}, max ${p99.max})` : 'not run',
    holds: p99 ? p99.p99 <= 5 : undefined,
  });

  const a = growth.rssAt100k;
  const b = growth.rssAtEnd;
  const heap =
    growth.heapAt100k !== undefined && growth.heapAtEnd !== undefined
      ? `; heap used ${mib(growth.heapAtEnd)} vs ${mib(growth.heapAt100k)}`
      : '';
  out.push({
    id: 'rss',
    description: 'RSS after 1,000,000 within 10% of RSS after 100,000',
    measured:
      a !== undefined && b !== undefined
        ? `${mib(b)} at ${(growth.endMessages ?? 0).toLocaleString('en-US')} vs ${mib(a)} at 100,000 (${(((b - a) / a) * 100).toFixed(1)}%${heap}; ${growth.source === 'soak' ? 'memory soak, GC before each sample' : 'after the 100k and 1M e2e runs'})`
        : 'needs --1m (or --soak N)',
    holds: a !== undefined && b !== undefined ? b <= a * 1.1 : undefined,
  });

  const ours = [...throughput, ...latency, ...(soak ? [soak] : [])].filter((r) =>
    r.system.startsWith('ours-'),
  );
  const leaking = ours.filter((r) => r.resources.handleDelta > 0);
  out.push({
    id: 'handles',
    description: 'active handles back to baseline after close',
    measured:
      ours.length === 0
        ? 'not run'
        : leaking.length === 0
          ? `all ${ours.length} runs of our bus back to baseline`
          : `${leaking.length}/${ours.length} runs above baseline, e.g. ${JSON.stringify(leaking[0]?.resources.leakedHandleTypes)}`,
    holds: ours.length === 0 ? undefined : leaking.length === 0,
  });
  return out;
}

export function analyse(
  throughput: readonly ThroughputRow[],
  latency: readonly LatencyRow[],
  soak?: ThroughputRow,
): Pick<BenchReport, 'ratios' | 'targets' | 'memoryGrowth'> {
  const ratioRows = ratios(throughput);
  const growth = memoryGrowth(throughput, soak);
  return {
    ratios: ratioRows,
    targets: targets(throughput, latency, ratioRows, growth, soak),
    memoryGrowth: growth,
  };
}
