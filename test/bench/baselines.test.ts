/**
 * The bench's baselines, small and judged by the order checker (throughput is
 * measured by `npm run bench`, not here): the raw client's windowed publisher
 * and consume() loops, and the Go anchor (built when Go and Debian's nats.go
 * are installed, skipped otherwise) against a real nats-server, on streams
 * laid out like our transport's; then the pure parts: ratios against the raw
 * side's best window and the Go client, the terminal table and the targets.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { analyse, ratios } from '../../bench/analysis.ts';
import type { SystemName } from '../../bench/config.ts';
import {
  buildGoAnchor,
  GO_DURABLE,
  type GoAnchor,
  goConsume,
  goEndToEnd,
  goPublish,
} from '../../bench/go-anchor.ts';
import { Counter } from '../../bench/measure.ts';
import {
  acksSettled,
  createStreams,
  deleteStreams,
  type NatsEnv,
  STREAM_PREFIX,
  startNatsEnv,
  streamNameFor,
} from '../../bench/nats-env.ts';
import { RAW_DURABLE, rawConsume, rawEndToEnd, rawPreload, rawPublish } from '../../bench/raw.ts';
import { formatReport } from '../../bench/report/table.ts';
import type { BenchReport, CheckerCounts, ThroughputRow, ThroughputScenario } from '../../bench/types.ts';
import { createWorkload, type Workload } from '../../bench/workload.ts';
import { type CheckerReport, createOrderChecker } from '../../src/testing/checker.ts';

const N = 600;
let seq = 0;
const workload = (name: string): Workload =>
  createWorkload({ name: `t${++seq}-${name}`, topics: 2, aggregates: 50, payloadBytes: 256 });

function assertClean(report: CheckerReport, what: string): void {
  const examples = JSON.stringify(report.examples);
  assert.equal(report.published, N, `${what}: published`);
  assert.equal(report.lost, 0, `${what}: lost ${examples}`);
  assert.equal(report.outOfOrder, 0, `${what}: out of order ${examples}`);
  assert.equal(report.duplicated, 0, `${what}: duplicated ${examples}`);
  assert.equal(report.unexpected, 0, `${what}: unexpected ${examples}`);
  assert.equal(report.ok, N, `${what}: ok`);
}

describe('bench baselines against a real nats-server', () => {
  let env: NatsEnv;
  let go: GoAnchor | string;

  before(async () => {
    env = await startNatsEnv();
    go = await buildGoAnchor();
  });
  after(async () => {
    await env?.close();
  });

  async function onStreams<T>(w: Workload, run: () => Promise<T>): Promise<T> {
    await createStreams(env, w.topics);
    try {
      return await run();
    } finally {
      await deleteStreams(env, w.topics);
    }
  }

  it('raw publish with a window smaller than n stores every message once, in per-aggregate order', async () => {
    const w = workload('rawpub');
    const results = new Counter(N, 'results');
    const out = await onStreams(w, () => rawPublish(env, w, N, results, 16));
    assert.deepEqual(out.notes, []);
    assert.equal(results.n, N);
    assertClean(out.checker.report(), 'raw publish');
  });

  it('raw consume() reads a stream preloaded on partition subjects, all acks settled', async () => {
    const w = workload('rawcon');
    const checker = createOrderChecker();
    const out = await onStreams(w, async () => {
      await rawPreload(env, w, N, checker, new Counter(N, 'preload'), 32);
      const stored = await env.jsm.streams.getMessage(streamNameFor(STREAM_PREFIX, w.topics[0] ?? ''), {
        seq: 1,
      });
      assert.match(stored?.subject ?? '', /\._P_\.\d+$/, 'preloaded where our publisher would store it');
      const run = await rawConsume(env, w, N, checker, new Counter(N, 'consumed'));
      // The run's own check gives up after 5 s; here only the test's timeout bounds it.
      assert.equal(
        await acksSettled(env, w.topics, RAW_DURABLE, 60_000),
        true,
        'every ack reached the broker',
      );
      return run;
    });
    assertClean(out.checker.report(), 'raw consume');
  });

  it('raw end to end with a windowed publisher', async () => {
    const w = workload('rawe2e');
    const out = await onStreams(w, () =>
      rawEndToEnd(env, w, N, new Counter(N, 'consumed'), new Counter(N, 'results'), 64),
    );
    assert.deepEqual(out.notes, []);
    assert.deepEqual(out.stored, { outOfOrder: 0, lost: 0, duplicated: 0, examples: [] });
    assertClean(out.checker.report(), 'raw e2e');
  });

  it('the Go anchor publishes, consumes and runs end to end with a clean checker (skipped without Go)', async (t) => {
    if (typeof go === 'string') return t.skip(go);
    const anchor = go;
    const pub = workload('gopub');
    const published = await onStreams(pub, () => goPublish(anchor, env, pub, N, new Counter(N, 'results')));
    assert.deepEqual(published.notes, []);
    assertClean(published.checker.report(), 'go publish');

    const con = workload('gocon');
    const checker = createOrderChecker();
    const consumed = await onStreams(con, async () => {
      await rawPreload(env, con, N, checker, new Counter(N, 'preload'));
      const run = await goConsume(anchor, env, con, N, checker, new Counter(N, 'consumed'));
      assert.equal(
        await acksSettled(env, con.topics, GO_DURABLE, 60_000),
        true,
        'every ack reached the broker',
      );
      return run;
    });
    assertClean(consumed.checker.report(), 'go consume');

    const e2e = workload('goe2e');
    const both = await onStreams(e2e, () =>
      goEndToEnd(anchor, env, e2e, N, new Counter(N, 'consumed'), new Counter(N, 'results')),
    );
    assert.deepEqual(both.notes, []);
    assertClean(both.checker.report(), 'go e2e');
  });
});

const clean: CheckerCounts = {
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
};

function row(
  scenario: ThroughputScenario,
  system: SystemName,
  msgPerSec: number,
  extra: Partial<ThroughputRow> = {},
): ThroughputRow {
  const snapshot = {
    rss: 100 << 20,
    heapUsed: 50 << 20,
    heapTotal: 60 << 20,
    external: 1 << 20,
    arrayBuffers: 1 << 20,
    handles: { total: 5, byType: {} },
  };
  return {
    scenario,
    level: '100k',
    messages: 100_000,
    system,
    elapsedMs: (100_000 / msgPerSec) * 1000,
    msgPerSec,
    checker: clean,
    resources: {
      before: snapshot,
      during: { rssMax: 120 << 20, heapUsedMax: 55 << 20, handlesMax: 9 },
      after: snapshot,
      handleDelta: 0,
      leakedHandleTypes: {},
      checkpoints: [],
    },
    stalls: { redelivered: 0, count: 0, totalMs: 0, longestGapMs: 0 },
    notes: [],
    ...extra,
  };
}

describe('bench ratios against the best raw window and the Go client', () => {
  const sweep = [
    { window: 100, msgPerSec: 12_000 },
    { window: 1_000, msgPerSec: 20_000 },
    { window: 5_000, msgPerSec: 18_000 },
  ];
  const rows = [
    row('publish', 'ours-nats', 30_000),
    row('publish', 'raw-nats', 20_000, { window: 1_000, windowSweep: sweep }),
    row('publish', 'go-nats', 100_000),
  ];

  it('ratio = ours ÷ the raw row (the best window), goRatio = ours ÷ Go, with the raw window', () => {
    const [r] = ratios(rows);
    assert.equal(r?.ratio, 1.5);
    assert.equal(r?.rawWindow, 1_000);
    assert.equal(r?.goMsgPerSec, 100_000);
    assert.equal(r?.goRatio, 0.3);
    const [noGo] = ratios(rows.filter((x) => x.system !== 'go-nats'));
    assert.equal('goRatio' in (noGo ?? {}), false, 'no Go fields when Go did not run');
  });

  it('judges publish against 3.0× raw and 0.7× Go', () => {
    const { targets } = analyse(rows, []);
    const publish = targets.find((t) => t.id === 'publish');
    const go = targets.find((t) => t.id === 'publish-go');
    assert.equal(publish?.holds, false);
    assert.match(publish?.measured ?? '', /^1\.50× at 100k/);
    assert.equal(go?.holds, false);
    assert.match(go?.measured ?? '', /^0\.30× at 100k/);
    const fast = analyse([row('publish', 'ours-nats', 80_000), ...rows.slice(1)], []).targets;
    assert.equal(fast.find((t) => t.id === 'publish-go')?.holds, true);
    assert.equal(analyse(rows.slice(0, 2), []).targets.find((t) => t.id === 'publish-go')?.holds, undefined);
  });

  it('the terminal table shows the raw window, the Go column and the sweep', () => {
    const report = {
      meta: {
        date: '2026-01-01T00:00:00.000Z',
        node: 'v24.0.0',
        platform: 'linux x64',
        cpus: 2,
        cpuModel: 'test',
        totalMemoryBytes: 4 << 30,
        loadAverage: { start: [0.5], end: [0.5] },
        natsServer: '2.9.10',
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
      throughput: rows,
      latency: [],
      profiles: [],
      timeline: [],
      ...analyse(rows, []),
    } satisfies BenchReport;
    const text = formatReport(report);
    const line = text.split('\n').find((l) => l.startsWith('publish') && l.includes('100k'));
    assert.match(line ?? '', /30,000\s+20,000\s+1,000\s+1\.50×\s+100,000\s+0\.30×/, text);
    assert.match(
      text,
      /raw-nats publish window sweep \(msg\/s\): 100k: w100 12,000, w1000 20,000, w5000 18,000/,
    );
  });
});
