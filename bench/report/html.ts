/**
 * The self-contained HTML report: inline CSS and inline SVG charts drawn by
 * svg.ts, no scripts, no external resources, so it opens offline.
 */
import type { SystemName } from '../config.ts';
import type { StallStats } from '../measure.ts';
import type { BenchReport, CheckerCounts, RatioRow, ThroughputScenario } from '../types.ts';
import { barChart, compact, esc, lineChart } from './svg.ts';
import { hasNatsOrMemory } from './table.ts';

const COLORS: Record<SystemName, string> = {
  'ours-nats': '#2e86de',
  'raw-nats': '#8395a7',
  'go-nats': '#5f27cd',
  'ours-memory': '#10ac84',
  'ours-kafka': '#e67e22',
  'raw-kafka': '#b8a590',
};

/** A system's msg/s in a ratio row. */
function msgPerSec(r: RatioRow, system: SystemName): number | undefined {
  switch (system) {
    case 'ours-nats':
      return r.oursMsgPerSec;
    case 'raw-nats':
      return r.rawMsgPerSec;
    case 'go-nats':
      return r.goMsgPerSec;
    case 'ours-memory':
      return r.memoryMsgPerSec;
    case 'ours-kafka':
      return r.oursKafkaMsgPerSec;
    case 'raw-kafka':
      return r.rawKafkaMsgPerSec;
  }
}

const hasKafka = (r: RatioRow): boolean =>
  r.oursKafkaMsgPerSec !== undefined || r.rawKafkaMsgPerSec !== undefined;

const BAND_COLORS: Record<string, string> = {
  publish: '#dfe9f7',
  consume: '#fdf0d5',
  e2e: '#e3f4ea',
  latency: '#f3e1f7',
  preload: '#eeeeee',
  other: '#f7f7f7',
};

const SCENARIO_TITLES: Record<ThroughputScenario, string> = {
  publish: 'Publish throughput (every publish acknowledged)',
  consume: 'Consumption of a pre-loaded stream (ordered, acked)',
  e2e: 'End to end (publishing and consuming at once)',
};

const TARGETS: Record<ThroughputScenario, number> = { publish: 3.0, consume: 2.0, e2e: 2.5 };

const int = (n: number | undefined): string =>
  n === undefined ? '—' : Math.round(n).toLocaleString('en-US');
const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(0);
const old = (c: CheckerCounts | undefined): string =>
  c === undefined ? '—' : `${c.outOfOrder} / ${c.lost} / ${c.duplicated}`;

function stalls(r: { readonly stalls: StallStats; readonly publishStalls?: StallStats } | undefined): string {
  if (r === undefined) return '—';
  const text = (x: StallStats) => (x.count === 0 ? '0' : `${x.count} (${(x.totalMs / 1000).toFixed(1)} s)`);
  const pub =
    r.publishStalls !== undefined && r.publishStalls.count > 0 ? `, publish ${text(r.publishStalls)}` : '';
  const redelivered = r.stalls.redelivered > 0 ? `, ${r.stalls.redelivered} redelivered` : '';
  return `${text(r.stalls)}${pub}${redelivered}`;
}

function bandKind(phase: string): string {
  const first = phase.split(' ')[0] ?? '';
  if (
    first === 'publish' ||
    first === 'consume' ||
    first === 'e2e' ||
    first === 'latency' ||
    first === 'preload'
  ) {
    return first;
  }
  return 'other';
}

function throughputCharts(report: BenchReport): string {
  const out: string[] = [];
  const systems: SystemName[] = [
    'ours-nats',
    'raw-nats',
    'go-nats',
    'ours-memory',
    'ours-kafka',
    'raw-kafka',
  ];
  for (const scenario of ['publish', 'consume', 'e2e'] as const) {
    const ratios = report.ratios.filter((r) => r.scenario === scenario);
    if (ratios.length === 0) continue;
    const categories = ratios.map((r) => `${r.level} (${compact(r.messages)})`);
    out.push(
      barChart({
        title: `${SCENARIO_TITLES[scenario]} — msg/s, log scale`,
        categories,
        series: systems
          .filter((s) => report.throughput.some((r) => r.scenario === scenario && r.system === s))
          .map((s) => ({
            name: s,
            color: COLORS[s],
            values: ratios.map((r) => msgPerSec(r, s)),
          })),
        yLabel: 'messages per second',
        log: true,
        groupLabels: ratios.map((r) => {
          const labels = [
            ...(r.ratio === undefined ? [] : [`ours/raw ${r.ratio.toFixed(2)}×`]),
            ...(r.kafkaRatio === undefined ? [] : [`Kafka ${r.kafkaRatio.toFixed(2)}×`]),
          ];
          return labels.length === 0 ? undefined : labels.join(' · ');
        }),
      }),
    );
  }
  const levels = [...new Set(report.ratios.map((r) => r.level))];
  const ratioSeries = (['publish', 'consume', 'e2e'] as const)
    .filter((s) => report.ratios.some((r) => r.scenario === s && r.ratio !== undefined))
    .map((scenario, i) => ({
      name: `${scenario} (target ${TARGETS[scenario].toFixed(1)}×)`,
      color: ['#2e86de', '#f39c12', '#27ae60'][i] as string,
      values: levels.map((l) => report.ratios.find((r) => r.scenario === scenario && r.level === l)?.ratio),
    }));
  if (ratioSeries.length > 0) {
    out.push(
      barChart({
        title: 'Ratio ours-nats ÷ raw-nats per level (same run)',
        categories: levels,
        series: ratioSeries,
        yLabel: 'ratio',
        format: (v) => `${+v.toFixed(2)}×`,
        thresholds: [
          { value: 1, label: 'parity' },
          ...(['publish', 'consume', 'e2e'] as const).map((s) => ({
            value: TARGETS[s],
            label: `${s} target ${TARGETS[s]}×`,
          })),
        ],
      }),
    );
  }
  const kafkaSeries = (['publish', 'consume', 'e2e'] as const)
    .filter((s) => report.ratios.some((r) => r.scenario === s && r.kafkaRatio !== undefined))
    .map((scenario, i) => ({
      name: scenario,
      color: ['#e67e22', '#8e44ad', '#16a085'][i] as string,
      values: levels.map(
        (l) => report.ratios.find((r) => r.scenario === scenario && r.level === l)?.kafkaRatio,
      ),
    }));
  if (kafkaSeries.length > 0) {
    out.push(
      barChart({
        title: 'Ratio ours-kafka ÷ raw-kafka per level (same run)',
        categories: levels,
        series: kafkaSeries,
        yLabel: 'ratio',
        format: (v) => `${+v.toFixed(2)}×`,
        thresholds: [{ value: 1, label: 'parity' }],
      }),
    );
  }
  return out.join('\n');
}

function latencyCharts(report: BenchReport): string {
  const rates = [...new Set(report.latency.map((r) => r.rate))];
  const percentiles = ['p50', 'p90', 'p99', 'p999', 'max'] as const;
  return rates
    .map((rate) => {
      const rows = report.latency.filter((r) => r.rate === rate);
      return barChart({
        title: `Latency publish→handler at ${rate.toLocaleString('en-US')} msg/s offered (ms, log)`,
        categories: percentiles.map((p) => (p === 'p999' ? 'p99.9' : p)),
        series: rows.map((r) => ({
          name: r.system,
          color: COLORS[r.system],
          values: percentiles.map((p) => r[p]),
        })),
        yLabel: 'milliseconds',
        log: true,
        format: (v) => (v >= 10 ? compact(v) : `${+v.toFixed(2)}`),
        thresholds: rate === 5_000 ? [{ value: 5, label: 'target p99 ≤ 5 ms' }] : [],
        width: 560,
      });
    })
    .join('\n');
}

function memoryChart(report: BenchReport): string {
  const samples = report.timeline;
  if (samples.length < 2) return '<p>No timeline samples.</p>';
  const stride = Math.max(1, Math.ceil(samples.length / 1500));
  const thin = samples.filter((_, i) => i % stride === 0 || i === samples.length - 1);
  const bands: { from: number; to: number; label: string; color: string }[] = [];
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i];
    if (s === undefined) continue;
    const last = bands.at(-1);
    const t = s.t / 1000;
    if (last !== undefined && last.label === s.phase) last.to = t;
    else {
      if (last !== undefined) last.to = t;
      bands.push({ from: t, to: t, label: s.phase, color: BAND_COLORS[bandKind(s.phase)] as string });
    }
  }
  const memory = lineChart({
    title: 'Memory of the bench process over time (MiB); bands = phases (hover for the phase)',
    xLabel: 'seconds since start',
    yLabel: 'MiB',
    series: [
      { name: 'RSS', color: '#c0392b', points: thin.map((s) => [s.t / 1000, s.rss / 1048576] as const) },
      {
        name: 'heap used',
        color: '#2e86de',
        points: thin.map((s) => [s.t / 1000, s.heapUsed / 1048576] as const),
      },
      {
        name: 'external',
        color: '#8e44ad',
        points: thin.map((s) => [s.t / 1000, s.external / 1048576] as const),
      },
    ],
    bands,
    bandLegend: Object.entries(BAND_COLORS)
      .filter(([k]) => k !== 'other')
      .map(([name, color]) => ({ name, color })),
  });
  const handles = lineChart({
    title: 'Active handles over time (process.getActiveResourcesInfo().length)',
    xLabel: 'seconds since start',
    yLabel: 'handles',
    series: [
      { name: 'active handles', color: '#34495e', points: thin.map((s) => [s.t / 1000, s.handles] as const) },
    ],
    bands,
    height: 220,
  });
  return `${memory}\n${handles}`;
}

function soakSection(report: BenchReport): string {
  const soak = report.soak;
  if (soak === undefined)
    return '<p>No memory soak in this run (it runs with <code>--1m</code> or <code>--soak N</code>).</p>';
  const points = soak.resources.checkpoints;
  const chart = lineChart({
    title: `Memory soak: RSS and heap (after a full GC) while our bus moves ${soak.messages.toLocaleString('en-US')} messages end to end (MiB)`,
    xLabel: 'messages handled',
    yLabel: 'MiB',
    series: [
      { name: 'RSS', color: '#c0392b', points: points.map((c) => [c.processed, c.rss / 1048576] as const) },
      {
        name: 'heap used',
        color: '#2e86de',
        points: points.map((c) => [c.processed, c.heapUsed / 1048576] as const),
      },
    ],
    height: 280,
  });
  return `<p>Our bus on NATS, publishing and consuming ${int(soak.messages)} messages at ${int(soak.msgPerSec)} msg/s, with a compact order checker (~3 bytes per message of bench bookkeeping) and a full GC before every sample · o/l/d ${old(soak.checker)} · stalls ${stalls(soak)}</p>${chart}`;
}

function targetsTable(report: BenchReport): string {
  const rows = report.targets
    .map((t) => {
      const cls = t.holds === undefined ? 'na' : t.holds ? 'ok' : 'miss';
      const word = t.holds === undefined ? 'n/a' : t.holds ? 'holds' : 'misses';
      return `<tr><td class="${cls}">${word}</td><td>${esc(t.description)}</td><td>${esc(t.measured)}</td></tr>`;
    })
    .join('');
  return `<table><thead><tr><th></th><th>target</th><th>measured</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function ratioTable(report: BenchReport): string {
  const find = (scenario: string, level: string, system: string) =>
    report.throughput.find((t) => t.scenario === scenario && t.level === level && t.system === system);
  const rows = report.ratios
    .filter(hasNatsOrMemory)
    .map((r) => {
      const ours = find(r.scenario, r.level, 'ours-nats');
      const raw = find(r.scenario, r.level, 'raw-nats');
      const mem = find(r.scenario, r.level, 'ours-memory');
      const target = TARGETS[r.scenario];
      const cls = r.ratio === undefined ? '' : r.ratio >= target ? 'ok' : 'miss';
      return `<tr><td>${r.scenario}</td><td>${esc(r.level)}</td><td class="n">${int(r.messages)}</td><td class="n">${int(r.oursMsgPerSec)}</td><td class="n">${int(r.rawMsgPerSec)}</td><td class="n ${cls}">${r.ratio === undefined ? '—' : `${r.ratio.toFixed(2)}×`}</td><td class="n">${int(r.memoryMsgPerSec)}</td><td class="n">${old(ours?.checker)}</td><td class="n">${old(raw?.checker)}</td><td class="n">${old(mem?.checker)}</td><td class="n">${ours ? `${(ours.checker.successRate * 100).toFixed(1)}%` : '—'}</td><td class="n">${stalls(ours)} / ${stalls(raw)}</td></tr>`;
    })
    .join('');
  return `<table><thead><tr><th>scenario</th><th>level</th><th>messages</th><th>ours-nats msg/s</th><th>raw-nats msg/s</th><th>ratio</th><th>ours-memory msg/s</th><th>ours o/l/d</th><th>raw o/l/d</th><th>memory o/l/d</th><th>ours success</th><th>stalls ours / raw</th></tr></thead><tbody>${rows}</tbody></table>`;
}

/** Kafka rows (ours-kafka vs raw @platformatic/kafka), or why there are none. */
function kafkaSection(report: BenchReport): string {
  const k = report.meta.kafka;
  const ratios = report.ratios.filter(hasKafka);
  if (ratios.length === 0) {
    return k !== undefined && 'skipped' in k
      ? `<p>Kafka rows skipped: ${esc(k.reason)} (set <code>KAFKA_BROKERS=host:9092</code> to run ${esc(k.skipped.join(', '))}).</p>`
      : '';
  }
  const find = (scenario: string, level: string, system: string) =>
    report.throughput.find((t) => t.scenario === scenario && t.level === level && t.system === system);
  const rows = ratios
    .map((r) => {
      const ours = find(r.scenario, r.level, 'ours-kafka');
      const raw = find(r.scenario, r.level, 'raw-kafka');
      return `<tr><td>${r.scenario}</td><td>${esc(r.level)}</td><td class="n">${int(r.messages)}</td><td class="n">${int(r.oursKafkaMsgPerSec)}</td><td class="n">${int(r.rawKafkaMsgPerSec)}</td><td class="n">${r.kafkaRatio === undefined ? '—' : `${r.kafkaRatio.toFixed(2)}×`}</td><td class="n">${old(ours?.checker)}</td><td class="n">${old(raw?.checker)}</td><td class="n">${ours ? `${(ours.checker.successRate * 100).toFixed(1)}%` : '—'}</td><td class="n">${stalls(ours)} / ${stalls(raw)}</td></tr>`;
    })
    .join('');
  const where =
    k !== undefined && 'cluster' in k
      ? ` on cluster ${esc(k.cluster)} (${esc(k.brokers.join(','))}), ${k.partitions} partitions per topic`
      : '';
  return `<h3>Kafka</h3><p>Our bus on Kafka ÷ the raw client (<code>@platformatic/kafka</code>: pipelined <code>send()</code> batches, one consumer-group member with a commit per message) doing the same work${where}; see <code>bench/README.md</code>.</p><table><thead><tr><th>scenario</th><th>level</th><th>messages</th><th>ours-kafka msg/s</th><th>raw-kafka msg/s</th><th>ratio</th><th>ours o/l/d</th><th>raw o/l/d</th><th>ours success</th><th>stalls ours / raw</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function latencyTable(report: BenchReport): string {
  const rows = report.latency
    .map(
      (r) =>
        `<tr><td class="n">${int(r.rate)}</td><td>${r.system}</td><td class="n">${int(r.achievedRate)}</td><td class="n">${r.p50.toFixed(2)}</td><td class="n">${r.p90.toFixed(2)}</td><td class="n">${r.p99.toFixed(2)}</td><td class="n">${r.p999.toFixed(2)}</td><td class="n">${r.max.toFixed(2)}</td><td class="n">${int(r.recorded)}</td><td class="n">${old(r.checker)}</td><td class="n">${stalls(r)}</td></tr>`,
    )
    .join('');
  return `<table><thead><tr><th>offered msg/s</th><th>system</th><th>achieved</th><th>p50 ms</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>recorded</th><th>o/l/d</th><th>stalls</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function resourceTable(report: BenchReport): string {
  const rows = [...report.throughput, ...report.latency, ...(report.soak ? [report.soak] : [])]
    .map((r) => {
      const what = 'scenario' in r ? `${r.scenario} ${r.level}` : `latency ${r.rate}/s`;
      const res = r.resources;
      const cls = res.handleDelta > 0 ? 'miss' : '';
      return `<tr><td>${esc(what)}</td><td>${r.system}</td><td class="n">${mib(res.before.rss)}</td><td class="n">${mib(res.during.rssMax)}</td><td class="n">${mib(res.after.rss)}</td><td class="n">${mib(res.before.heapUsed)}</td><td class="n">${mib(res.during.heapUsedMax)}</td><td class="n">${mib(res.after.heapUsed)}</td><td class="n ${cls}">${res.before.handles.total} / ${res.during.handlesMax} / ${res.after.handles.total}</td></tr>`;
    })
    .join('');
  return `<table><thead><tr><th>run</th><th>system</th><th>RSS before</th><th>RSS max</th><th>RSS after</th><th>heap before</th><th>heap max</th><th>heap after</th><th>handles before / max / after</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function profileSection(report: BenchReport): string {
  if (report.profiles.length === 0)
    return '<p>No CPU profiles in this run (run with <code>--profile</code>).</p>';
  return report.profiles
    .map((p) => {
      const list = (entries: typeof p.top) =>
        entries
          .slice(0, 12)
          .map(
            (e) =>
              `<tr><td class="n">${e.pct.toFixed(1)}%</td><td class="n">${e.selfMs.toFixed(1)}</td><td><code>${esc(e.functionName)}</code></td><td><code>${esc(e.location)}</code></td></tr>`,
          )
          .join('');
      const buckets = p.buckets
        .slice(0, 10)
        .map(
          (b) =>
            `<tr><td class="n">${b.pct.toFixed(1)}%</td><td class="n">${b.selfMs.toFixed(1)}</td><td>${esc(b.name)}</td></tr>`,
        )
        .join('');
      return `<h3>${esc(p.label)} (${p.totalMs} ms)</h3><div class="cols"><div><h4>by kind</h4><table><tbody>${buckets}</tbody></table></div><div><h4>all code</h4><table><tbody>${list(p.top)}</tbody></table></div><div><h4>our code (src/ without src/testing)</h4><table><tbody>${list(p.ours)}</tbody></table></div></div>`;
    })
    .join('');
}

export function renderHtml(report: BenchReport): string {
  const m = report.meta;
  const notes = [...report.throughput, ...report.latency, ...(report.soak ? [report.soak] : [])]
    .filter((r) => r.notes.length > 0)
    .map((r) => {
      const what = 'scenario' in r ? `${r.scenario} ${r.level}` : `latency ${r.rate}/s`;
      return `<li>${esc(`${what} ${r.system}: ${r.notes.join('; ')}`)}</li>`;
    })
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>jxt-eventbus bench ${esc(m.date)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1040px;color:#222;line-height:1.4}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}h3{font-size:15px}h4{font-size:13px;margin:6px 0}
table{border-collapse:collapse;font-size:12.5px;margin:8px 0}th,td{border:1px solid #ddd;padding:3px 7px;text-align:left}
th{background:#f4f6f8}td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{background:#e3f4ea}.miss{background:#fbe3e1}.na{background:#f2f2f2}
.chart{display:block;margin:14px 0;max-width:100%;height:auto}.charts{display:flex;flex-wrap:wrap;gap:8px}
.cols{display:flex;gap:16px;flex-wrap:wrap}.meta{color:#555;font-size:13px}code{font-size:12px}
</style></head><body>
<h1>jxt-eventbus benchmark</h1>
<p class="meta">${esc(m.date)} · node ${esc(m.node)} · nats-server ${esc(m.natsServer)} · ${m.cpus} × ${esc(m.cpuModel)} · ${(m.totalMemoryBytes / 1024 ** 3).toFixed(0)} GiB RAM · load average ${m.loadAverage.start[0]} at start, ${m.loadAverage.end[0]} at the end · commit ${esc(m.gitCommit ?? 'unknown')}${m.gitDirtySrc.length > 0 ? ` (+ uncommitted changes in ${esc(m.gitDirtySrc.join(', '))})` : ''}${m.gitAtEnd ? ` · <b>the tree changed during the run</b> (at the end: ${esc(m.gitAtEnd.commit ?? '?')}${m.gitAtEnd.dirtySrc.length > 0 ? ` + ${esc(m.gitAtEnd.dirtySrc.join(', '))}` : ''}); the run used the code loaded at start` : ''}<br>
${m.topics} topics · ${m.aggregates} aggregates · ${m.payloadBytes}-byte payloads · warm-up ${int(m.warmupMessages)} messages per path · levels ${m.levels.map((l) => `${esc(l.name)} (${int(l.messages)})`).join(', ')} · run took ${(m.durationMs / 1000).toFixed(0)} s${m.quick ? ' · <b>--quick</b> (smoke sizes: ratios are not meaningful)' : ''}</p>
<p>All three systems ran in one process, one after the other, against the same freshly spawned nats-server (fresh streams per scenario). <b>ratio</b> = our bus on NATS ÷ the official client (<code>@nats-io/jetstream</code>) doing the same work; see <code>bench/README.md</code> for what each row measures. <b>o/l/d</b> = order violations / lost / duplicated from the order checker. <b>stalls</b> = gaps of more than 500 ms between two consecutive messages of a run (count and total time).</p>
<h2>Targets (issue 5)</h2>${targetsTable(report)}
<h2>Throughput and ratios</h2>${ratioTable(report)}
${kafkaSection(report)}
${throughputCharts(report)}
<h2>Latency publish→handler</h2>${latencyTable(report)}<div class="charts">${latencyCharts(report)}</div>
<h2>Memory and handles over time</h2>${memoryChart(report)}
<h2>Memory soak</h2>${soakSection(report)}
<h2>Resources per run</h2>${resourceTable(report)}
<h2>CPU profiles</h2>${profileSection(report)}
${notes ? `<h2>Notes</h2><ul>${notes}</ul>` : ''}
</body></html>
`;
}
