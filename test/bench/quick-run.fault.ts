/**
 * Smoke check of the whole bench, in the slow tier (`npm run test:faults`, so
 * CI proves the bench still runs; not in `npm test`: it is a throughput run;
 * alone: `npm run bench:smoke`): runs `node bench/run.ts --quick` end to end (its own
 * nats-server, the NATS, Go and memory systems, every scenario) and checks
 * that it exits 0 and that the JSON holds every row with the checker's
 * verdict 0 lost / 0 out of order / 0 unexpected. KAFKA_BROKERS is removed
 * from its environment: the Kafka systems must be skipped with one stderr line
 * and recorded as skipped; without Go the go-nats rows are skipped with one
 * line. No timing assertions. The fast checks of the pieces are in test/bench/.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  KAFKA_SYSTEMS,
  LATENCY_SYSTEMS,
  QUICK,
  QUICK_LEVELS,
  SCENARIOS,
  SYSTEMS,
} from '../../bench/config.ts';
import type { BenchReport } from '../../bench/report.ts';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));

describe('bench --quick', () => {
  let dir: string;
  let report: BenchReport;
  let stdout: string;
  let stderr: string;
  /** What runs without a Kafka broker. */
  let systems = SYSTEMS.filter((s) => !KAFKA_SYSTEMS.includes(s));

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'eventbus-bench-'));
    const { KAFKA_BROKERS: _unset, ...env } = process.env;
    const result = await run(process.execPath, ['bench/run.ts', '--quick', '--out', dir], {
      cwd: root,
      env,
      maxBuffer: 16 * 1024 * 1024,
    });
    stdout = result.stdout;
    stderr = result.stderr;
    const files = await readdir(dir);
    const json = files.find((f) => f.endsWith('.json'));
    assert.ok(json, `Expected a JSON report in ${dir}, got ${files.join(', ')}`);
    report = JSON.parse(await readFile(join(dir, json), 'utf8')) as BenchReport;
    if (report.meta.goAnchor?.startsWith('skipped') === true)
      systems = systems.filter((s) => s !== 'go-nats');
  });

  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('has a row for every scenario, level and system, each with 0 lost and 0 out of order', () => {
    for (const scenario of SCENARIOS.filter((s) => s !== 'latency')) {
      for (const level of QUICK_LEVELS) {
        for (const system of systems) {
          const row = report.throughput.find(
            (r) => r.scenario === scenario && r.level === level.name && r.system === system,
          );
          assert.ok(row, `Expected a ${scenario} row for ${level.name} on ${system}`);
          const what = `${scenario} ${level.name} ${system}`;
          assert.equal(row.messages, level.messages, what);
          assert.equal(row.checker.published, level.messages, `${what}: published`);
          assert.equal(row.checker.lost, 0, `${what}: lost ${JSON.stringify(row.checker.examples)}`);
          assert.equal(
            row.checker.outOfOrder,
            0,
            `${what}: out of order ${JSON.stringify(row.checker.examples)}`,
          );
          assert.equal(row.checker.unexpected, 0, `${what}: unexpected`);
          assert.equal(row.checker.ok, level.messages, `${what}: ok`);
          assert.ok(row.msgPerSec > 0, `${what}: msg/s`);
        }
      }
    }
  });

  it('has latency rows for every offered rate and system, with percentiles and a clean checker', () => {
    for (const rate of QUICK.latencyRates) {
      for (const system of LATENCY_SYSTEMS) {
        const row = report.latency.find((r) => r.rate === rate && r.system === system);
        assert.ok(row, `Expected a latency row for ${rate}/s on ${system}`);
        assert.ok(row.recorded > 0, `${rate}/s ${system}: recorded`);
        assert.ok(row.p50 <= row.p99 && row.p99 <= row.max, `${rate}/s ${system}: p50 <= p99 <= max`);
        assert.equal(row.checker.lost, 0, `${rate}/s ${system}: lost`);
        assert.equal(row.checker.outOfOrder, 0, `${rate}/s ${system}: out of order`);
      }
    }
  });

  it('skips the Kafka systems without KAFKA_BROKERS: one stderr line, recorded in the JSON, no rows', () => {
    const lines = stderr.split('\n').filter((l) => l.includes('KAFKA_BROKERS'));
    assert.deepEqual(lines, [
      'bench: KAFKA_BROKERS is not set: skipping ours-kafka, raw-kafka (set KAFKA_BROKERS=host:9092 to run them)',
    ]);
    assert.deepEqual(report.meta.kafka, { skipped: [...KAFKA_SYSTEMS], reason: 'KAFKA_BROKERS is not set' });
    assert.equal(
      report.throughput.some((r) => KAFKA_SYSTEMS.includes(r.system)),
      false,
    );
    assert.equal(
      report.ratios.some((r) => 'kafkaRatio' in r),
      false,
    );
    assert.doesNotMatch(stdout, /Kafka \(msg\/s/);
  });

  it('computes ratios, targets and resources', () => {
    assert.equal(report.ratios.length, 3 * QUICK_LEVELS.length);
    for (const r of report.ratios)
      assert.ok(r.ratio !== undefined && r.ratio > 0, `ratio ${r.scenario} ${r.level}`);
    assert.deepEqual(
      report.targets.map((t) => t.id),
      ['publish', 'publish-go', 'consume', 'e2e', 'latency', 'rss', 'handles'],
    );
    for (const row of report.throughput) {
      assert.ok(row.resources.before.rss > 0 && row.resources.after.rss > 0);
      assert.ok(row.resources.during.handlesMax >= row.resources.before.handles);
    }
    assert.equal(report.meta.natsServer.startsWith('2.'), true, report.meta.natsServer);
    assert.match(stdout, /RATIO/);
    assert.match(stdout, /Targets \(issue 5\)/);
  });
});
