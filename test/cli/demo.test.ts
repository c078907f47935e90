/**
 * `eventbus demo` as a user runs it, in a child process with stdout piped (not
 * a TTY): a line per phase, plain progress lines whose counts never exceed the
 * known total, the summary with the order checker's verdict; and Ctrl-C
 * (SIGINT) in the middle of the run: a summary of what happened so far, exit
 * code 130, without anything else stopping the process.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { killLineProcesses, startLineProcess } from '../harness/line-process.ts';

const main = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
after(killLineProcesses);
const startDemo = (args: readonly string[]) => startLineProcess([main, 'demo', ...args]);

const progressLine = /^progress handled ([\d,]+)\/([\d,]+) \(\d+%\) · published ([\d,]+) · written ([\d,]+)/;
const fmt = (n: number): string => n.toLocaleString('en-US');
const count = (text: string | undefined): number => Number((text ?? '').replaceAll(',', ''));

function summaryValue(lines: readonly string[], label: string): string {
  const line = lines.find((l) => l.startsWith(`  ${label} `));
  assert.ok(line, `summary line "${label}" in:\n${lines.join('\n')}`);
  return line.slice(label.length + 2).trim();
}

describe('eventbus demo (stdout piped)', () => {
  it('prints a line per phase, progress within the total, and the checker verdict: 0 lost, 0 out of order', async () => {
    const orders = 200;
    const total = (orders + 1) * 5;
    const run = startDemo(['--orders', String(orders), '--failure-rate', '0.1']);
    const code = await run.exited(300_000);
    const out = run.lines;
    assert.equal(code, 0, run.output());

    // The first thing shown is what the next 10–20 s are spent on.
    assert.match(out[0] ?? '', /^\[1\/4\] starting embedded PostgreSQL \(PGlite/);
    const phases = out.filter((l) => /^\[\d\/4\]/.test(l)).map((l) => l.slice(0, 5));
    assert.deepEqual(phases, ['[1/4]', '[2/4]', '[3/4]', '[4/4]']);

    const progress = out.map((l) => progressLine.exec(l)).filter((m) => m !== null);
    assert.ok(progress.length >= 2, 'a progress line at the start of the event phase and one at its end');
    let previous = { handled: 0, published: 0, written: 0 };
    for (const m of progress) {
      const now = { handled: count(m[1]), published: count(m[3]), written: count(m[4]) };
      assert.equal(count(m[2]), total, m[0]);
      for (const key of ['handled', 'published', 'written'] as const) {
        assert.ok(now[key] <= total, `${key} above the total: ${m[0]}`);
        assert.ok(now[key] >= previous[key], `${key} went back: ${m[0]}`);
      }
      previous = now;
    }
    assert.deepEqual(
      previous,
      { handled: total, published: total, written: total },
      'the last progress line',
    );
    assert.ok(
      out.findIndex((l) => progressLine.test(l)) > out.findIndex((l) => l.startsWith('[3/4]')),
      'progress lines belong to phase 3',
    );

    assert.ok(!out.some((l) => l.includes('INTERRUPTED')));
    assert.equal(summaryValue(out, 'lost'), '0');
    assert.equal(summaryValue(out, 'out of order'), '0');
    assert.match(summaryValue(out, 'dead-lettered'), /^1 /);
    assert.match(
      summaryValue(out, 'outbox rows'),
      new RegExp(`^${fmt(total)} marked published on broker ack, 0 pending`),
    );
    assert.match(summaryValue(out, 'events'), new RegExp(`${fmt(total - 1)} handled \\+ 1 dead-lettered`));
    // The database's speed and the bus's are reported apart.
    assert.ok(out.some((l) => /^ {4}outbox writes {8}[\d,]+ rows\/s/.test(l)));
    assert.ok(out.some((l) => /^ {4}bus publish→handled {2}p50 [\d.]+ ms, p99 [\d.]+ ms/.test(l)));
  });

  it('Ctrl-C (SIGINT) after the first progress line prints the summary so far and exits 130 by itself', async () => {
    // A run far longer than the test: SIGINT always arrives in the middle of it.
    const run = startDemo(['--orders', '1000000']);
    await run.waitForLine(progressLine, 300_000);
    assert.equal(
      run.child.exitCode,
      null,
      `still running after the first progress line:\n${run.lines.join('\n')}`,
    );
    run.child.kill('SIGINT');
    const code = await run.exited(120_000);
    const out = run.lines;
    assert.equal(code, 130, run.output());
    assert.ok(
      out.some((l) => l.startsWith('[4/4] interrupted')),
      out.join('\n'),
    );
    assert.ok(
      out.some((l) => l.startsWith('demo summary (INTERRUPTED')),
      out.join('\n'),
    );
    assert.equal(summaryValue(out, 'out of order'), '0');
    assert.match(summaryValue(out, 'events'), /^5,000,005 planned, [\d,]+ written to the outbox/);
  });
});
