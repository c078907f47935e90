/** The terminal report: ratio table per scenario and level, latency, resources, targets. */
import type { StallStats } from '../measure.ts';
import type { BenchReport, CheckerCounts, RatioRow, ThroughputRow } from '../types.ts';

const int = (n: number | undefined): string =>
  n === undefined ? '—' : Math.round(n).toLocaleString('en-US');
const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(0)}`;

/** order violations / lost / duplicated. */
function old(c: CheckerCounts | undefined): string {
  return c === undefined ? '—' : `${c.outOfOrder}/${c.lost}/${c.duplicated}`;
}

/** Intake stalls (> 500 ms without a message): count and total seconds. */
function stalls(r: { readonly stalls: StallStats; readonly publishStalls?: StallStats } | undefined): string {
  if (r === undefined) return '—';
  const text = (x: StallStats) => (x.count === 0 ? '0' : `${x.count} (${(x.totalMs / 1000).toFixed(1)} s)`);
  const pub =
    r.publishStalls !== undefined && r.publishStalls.count > 0 ? `, publish ${text(r.publishStalls)}` : '';
  const redelivered = r.stalls.redelivered > 0 ? `, ${r.stalls.redelivered} redelivered` : '';
  return `${text(r.stalls)}${pub}${redelivered}`;
}

function pct(c: CheckerCounts | undefined): string {
  return c === undefined ? '—' : `${(c.successRate * 100).toFixed(1)}%`;
}

function table(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  rightAlign: readonly boolean[],
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (rightAlign[i] ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '─'.repeat(w))), ...rows.map(line)].join('\n');
}

/** A ratio row with a NATS or memory measurement (Kafka-only rows have their own table). */
export function hasNatsOrMemory(r: RatioRow): boolean {
  return r.oursMsgPerSec !== undefined || r.rawMsgPerSec !== undefined || r.memoryMsgPerSec !== undefined;
}

export function formatReport(report: BenchReport): string {
  const out: string[] = [];
  const find = (r: { scenario: string; level: string }, system: string): ThroughputRow | undefined =>
    report.throughput.find((t) => t.scenario === r.scenario && t.level === r.level && t.system === system);

  out.push(
    `jxt-eventbus bench — ${report.meta.date} — node ${report.meta.node}, nats-server ${report.meta.natsServer}, ` +
      `${report.meta.cpus} CPUs (load ${report.meta.loadAverage.start[0]} → ${report.meta.loadAverage.end[0]}), ` +
      `${report.meta.topics} topics, ${report.meta.aggregates} aggregates, ${report.meta.payloadBytes}-byte payloads`,
    `code: ${report.meta.gitCommit ?? 'unknown commit'}${report.meta.gitDirtySrc.length > 0 ? ` + uncommitted ${report.meta.gitDirtySrc.join(', ')}` : ''}` +
      (report.meta.gitAtEnd
        ? ` (the tree changed during the run; at the end: ${report.meta.gitAtEnd.commit})`
        : ''),
    '',
    'Throughput (msg/s), one run, one server. RATIO = ours-nats ÷ raw-nats; raw-nats publishes with a window of',
    'concurrent js.publish promises (publish rows: the best of the sweep, its window in "win"; e2e: that window),',
    'go-nats = the Go client (PublishAsync, Fetch(500) + Ack), "÷go" = ours-nats ÷ go-nats. o/l/d = order violations / lost / duplicated.',
    'stalls = gaps > 500 ms between two consecutive handled messages (count, total time); e2e adds the gaps between publish results.',
  );
  out.push(
    table(
      [
        'scenario',
        'level',
        'messages',
        'ours-nats',
        'raw-nats',
        'win',
        'RATIO',
        'go-nats',
        '÷go',
        'ours-memory',
        'ours o/l/d',
        'raw o/l/d',
        'go o/l/d',
        'mem o/l/d',
        'ours ok',
        'stalls ours / raw',
      ],
      report.ratios
        .filter(hasNatsOrMemory)
        .map((r) => [
          r.scenario,
          r.level,
          int(r.messages),
          int(r.oursMsgPerSec),
          int(r.rawMsgPerSec),
          int(r.rawWindow),
          r.ratio === undefined ? '—' : `${r.ratio.toFixed(2)}×`,
          int(r.goMsgPerSec),
          r.goRatio === undefined ? '—' : `${r.goRatio.toFixed(2)}×`,
          int(r.memoryMsgPerSec),
          old(find(r, 'ours-nats')?.checker),
          old(find(r, 'raw-nats')?.checker),
          old(find(r, 'go-nats')?.checker),
          old(find(r, 'ours-memory')?.checker),
          pct(find(r, 'ours-nats')?.checker),
          `${stalls(find(r, 'ours-nats'))} / ${stalls(find(r, 'raw-nats'))}`,
        ]),
      [false, false, true, true, true, true, true, true, true, true, true, true, true, true, true, true],
    ),
  );
  const sweeps = report.throughput.filter((t) => t.windowSweep !== undefined);
  if (sweeps.length > 0) {
    out.push(
      'raw-nats publish window sweep (msg/s): ' +
        sweeps
          .map(
            (t) =>
              `${t.level}: ${(t.windowSweep ?? []).map((s) => `w${s.window} ${int(s.msgPerSec)}`).join(', ')}`,
          )
          .join('; '),
    );
  }

  const kafka = report.ratios.filter(
    (r) => r.oursKafkaMsgPerSec !== undefined || r.rawKafkaMsgPerSec !== undefined,
  );
  if (kafka.length > 0) {
    const where =
      report.meta.kafka && 'cluster' in report.meta.kafka ? `, cluster ${report.meta.kafka.cluster}` : '';
    out.push(
      '',
      `Kafka (msg/s${where}). ratio = ours-kafka ÷ raw-kafka (@platformatic/kafka, pipelined send() batches) in this run.`,
    );
    out.push(
      table(
        [
          'scenario',
          'level',
          'messages',
          'ours-kafka',
          'raw-kafka',
          'RATIO',
          'ours o/l/d',
          'raw o/l/d',
          'ours ok',
          'stalls ours / raw',
        ],
        kafka.map((r) => [
          r.scenario,
          r.level,
          int(r.messages),
          int(r.oursKafkaMsgPerSec),
          int(r.rawKafkaMsgPerSec),
          r.kafkaRatio === undefined ? '—' : `${r.kafkaRatio.toFixed(2)}×`,
          old(find(r, 'ours-kafka')?.checker),
          old(find(r, 'raw-kafka')?.checker),
          pct(find(r, 'ours-kafka')?.checker),
          `${stalls(find(r, 'ours-kafka'))} / ${stalls(find(r, 'raw-kafka'))}`,
        ]),
        [false, false, true, true, true, true, true, true, true, true],
      ),
    );
  }

  if (report.latency.length > 0) {
    out.push('', 'Latency publish→handler (ms, HDR histogram, first 10% of each run not recorded)');
    const rates = [...new Set(report.latency.map((r) => r.rate))];
    const rows: string[][] = [];
    for (const rate of rates) {
      const raw = report.latency.find((r) => r.rate === rate && r.system === 'raw-nats');
      for (const r of report.latency.filter((l) => l.rate === rate)) {
        rows.push([
          int(rate),
          r.system,
          int(r.achievedRate),
          r.p50.toFixed(2),
          r.p90.toFixed(2),
          r.p99.toFixed(2),
          r.p999.toFixed(2),
          r.max.toFixed(2),
          r.system === 'ours-nats' && raw && raw.p99 > 0 ? `${(r.p99 / raw.p99).toFixed(2)}×` : '',
          old(r.checker),
          stalls(r),
        ]);
      }
    }
    out.push(
      table(
        [
          'offered/s',
          'system',
          'achieved/s',
          'p50',
          'p90',
          'p99',
          'p99.9',
          'max',
          'p99 ours/raw',
          'o/l/d',
          'stalls',
        ],
        rows,
        [true, false, true, true, true, true, true, true, true, true, true],
      ),
    );
  }

  out.push('', 'Resources of our bus on NATS (MiB; handles = process.getActiveResourcesInfo().length)');
  const ours = report.throughput.filter((r) => r.system === 'ours-nats');
  out.push(
    table(
      [
        'scenario',
        'level',
        'rss before',
        'rss max',
        'rss after',
        'heap before',
        'heap after',
        'handles before/max/after',
      ],
      ours.map((r) => [
        r.scenario,
        r.level,
        mib(r.resources.before.rss),
        mib(r.resources.during.rssMax),
        mib(r.resources.after.rss),
        mib(r.resources.before.heapUsed),
        mib(r.resources.after.heapUsed),
        `${r.resources.before.handles.total}/${r.resources.during.handlesMax}/${r.resources.after.handles.total}`,
      ]),
      [false, false, true, true, true, true, true, true],
    ),
  );

  const soak = report.soak;
  if (soak !== undefined) {
    out.push(
      '',
      `Memory soak: our bus on NATS, end to end, ${int(soak.messages)} messages at ${int(soak.msgPerSec)} msg/s ` +
        `(compact checker, full GC before each sample; o/l/d ${old(soak.checker)}, stalls ${stalls(soak)})`,
    );
    out.push(
      table(
        ['handled', 'rss MiB', 'heap used MiB', 'handles'],
        soak.resources.checkpoints.map((c) => [
          int(c.processed),
          mib(c.rss),
          mib(c.heapUsed),
          String(c.handles),
        ]),
        [true, true, true, true],
      ),
    );
  }

  out.push('', 'Targets (issue 5)');
  out.push(
    table(
      ['', 'target', 'measured'],
      report.targets.map((t) => [
        t.holds === undefined ? 'n/a ' : t.holds ? 'HOLDS' : 'MISSES',
        t.description,
        t.measured,
      ]),
      [false, false, false],
    ),
  );

  const notes = [...report.throughput, ...report.latency, ...(report.soak ? [report.soak] : [])].filter(
    (r) => r.notes.length > 0,
  );
  if (notes.length > 0) {
    out.push('', 'Notes');
    for (const r of notes) {
      const what = 'scenario' in r ? `${r.scenario} ${r.level}` : `latency ${r.rate}/s`;
      out.push(`  ${what} ${r.system}: ${r.notes.join('; ')}`);
    }
  }
  return out.join('\n');
}
