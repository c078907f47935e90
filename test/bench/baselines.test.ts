/**
 * The bench's systems, small and judged by the order checker (throughput is
 * measured by `npm run bench`, not here): the raw client's windowed publisher
 * and consume() loops, the Go anchor (built when Go and Debian's nats.go are
 * installed, skipped otherwise) and our bus on NATS and in memory, through the
 * one runner shape every system shares, against a real nats-server on streams
 * laid out like our transport's; then the pure parts: ratios against the raw
 * side's best window and the Go client, repeats, the terminal table, targets.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { buildGoAnchor, GO_DURABLE, type GoAnchor } from '../../bench/go-anchor.ts';
import { Counter } from '../../bench/measure.ts';
import { acksSettled, type NatsEnv, RAW_DURABLE, startNatsEnv, streamOf } from '../../bench/nats.ts';
import { analyse, formatReport, ratios } from '../../bench/report.ts';
import { mergeRepeats } from '../../bench/suite.ts';
import { createSystems, SUB_CLIENT, type System } from '../../bench/systems.ts';
import { createWorkload, type Workload } from '../../bench/workload.ts';
import { type CheckerReport, createOrderChecker } from '../../src/testing/checker.ts';
import { report, row } from './fixtures.ts';

const N = 600;
let seq = 0;
const workload = (name: string): Workload =>
  createWorkload({ name: `t${++seq}-${name}`, topics: 2, aggregates: 50, payloadBytes: 256 });

function assertClean(r: CheckerReport, what: string): void {
  const examples = JSON.stringify(r.examples);
  assert.equal(r.published, N, `${what}: published`);
  assert.equal(r.lost, 0, `${what}: lost ${examples}`);
  assert.equal(r.outOfOrder, 0, `${what}: out of order ${examples}`);
  assert.equal(r.duplicated, 0, `${what}: duplicated ${examples}`);
  assert.equal(r.unexpected, 0, `${what}: unexpected ${examples}`);
  assert.equal(r.ok, N, `${what}: ok`);
}

describe('bench systems against a real nats-server', () => {
  let env: NatsEnv;
  let go: GoAnchor | string;
  let systems: System[];
  const system = (name: string): System => {
    const found = systems.find((s) => s.name === name);
    assert.ok(found, name);
    return found;
  };

  before(async () => {
    env = await startNatsEnv();
    go = await buildGoAnchor();
    systems = createSystems({ nats: env, go: typeof go === 'string' ? undefined : go });
  });
  after(async () => {
    await env?.close();
  });

  async function onFresh<T>(sys: System, w: Workload, run: () => Promise<T>): Promise<T> {
    await sys.fresh(w);
    try {
      return await run();
    } finally {
      await sys.drop(w);
    }
  }

  /** publish, consume of a preload (all acks settled) and e2e, each judged by the checker. */
  async function allScenarios(name: string, durable: string | undefined, window?: number): Promise<void> {
    const sys = system(name);
    const pub = workload(`${name}-pub`);
    const results = new Counter(N);
    const published = await onFresh(sys, pub, () => sys.publish(pub, N, results, window));
    assert.deepEqual(published.notes, [], name);
    assert.equal(results.n, N);
    assertClean(published.checker.report(), `${name} publish`);

    const con = workload(`${name}-con`);
    const checker = createOrderChecker();
    const consumed = await onFresh(sys, con, async () => {
      await sys.preload(con, N, checker, new Counter(N));
      if (sys.backend === 'nats') {
        const stored = await env.jsm.streams.getMessage(streamOf(con.topics[0] ?? ''), { seq: 1 });
        assert.match(stored?.subject ?? '', /\._P_\.\d+$/, 'preloaded where our publisher would store it');
      }
      const run = await sys.consume(con, N, checker, new Counter(N));
      if (durable !== undefined) {
        // The run's own check gives up after 5 s; here only the test's timeout bounds it.
        assert.equal(
          await acksSettled(env, con.topics, durable, 60_000),
          true,
          'every ack reached the broker',
        );
      }
      return run;
    });
    assertClean(consumed.checker.report(), `${name} consume`);

    const e2e = workload(`${name}-e2e`);
    const both = await onFresh(sys, e2e, () => sys.e2e(e2e, N, new Counter(N), new Counter(N), window));
    assert.deepEqual(both.notes, [], name);
    assert.deepEqual(both.stored, { outOfOrder: 0, lost: 0, duplicated: 0, examples: [] });
    assertClean(both.checker.report(), `${name} e2e`);
  }

  it('raw-nats with windows smaller than n, preloads on partition subjects, all acks settled', async () => {
    assert.deepEqual(system('raw-nats').windows, [100, 1_000, 5_000]);
    await allScenarios('raw-nats', RAW_DURABLE, 16);
  });

  it('the Go anchor publishes, consumes and runs end to end with a clean checker (skipped without Go)', async (t) => {
    if (typeof go === 'string') return t.skip(go);
    await allScenarios('go-nats', GO_DURABLE);
  });

  it('our bus on NATS and in memory, the same shape', async () => {
    await allScenarios('ours-nats', SUB_CLIENT);
    await allScenarios('ours-memory', undefined);
  });

  it('latency runs record every message after the first 10%', async () => {
    for (const name of ['raw-nats', 'ours-memory']) {
      const sys = system(name);
      const w = workload(`${name}-lat`);
      const out = await onFresh(
        sys,
        w,
        async () => (await sys.latency?.(w, 200, 2_000, new Counter(200))) ?? assert.fail(),
      );
      assert.deepEqual(out.notes, [], name);
      assert.equal(out.recorder.histogram.totalCount, 180, name);
      assert.equal(out.checker.report().ok, 200, name);
    }
  });
});

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

  it('repeats merge into the median run with the checker counts of every repeat', () => {
    const lossy = row('publish', 'ours-nats', 10_000, {
      checker: { ...row('publish', 'ours-nats', 1).checker, lost: 2, ok: 98, successRate: 0.98 },
      notes: ['only 98/100 results'],
    });
    const [merged] = mergeRepeats([
      row('publish', 'ours-nats', 30_000),
      lossy,
      row('publish', 'ours-nats', 20_000),
    ]);
    assert.equal(merged?.msgPerSec, 20_000);
    assert.deepEqual(merged?.samples, [30_000, 10_000, 20_000]);
    assert.equal(merged?.checker.lost, 2);
    assert.equal(merged?.checker.published, 300);
    assert.equal(merged?.checker.successRate, 298 / 300);
    assert.deepEqual(merged?.notes, ['repeat 2: only 98/100 results']);
  });

  it('the terminal table shows the raw window, the Go column and the sweep', () => {
    const text = formatReport(report(rows));
    const line = text.split('\n').find((l) => l.startsWith('publish') && l.includes('100k'));
    assert.match(line ?? '', /30,000\s+20,000\s+1,000\s+1\.50×\s+100,000\s+0\.30×/, text);
    assert.match(
      text,
      /raw-nats publish window sweep \(msg\/s\): 100k: w100 12,000, w1000 20,000, w5000 18,000/,
    );
  });
});
