/**
 * The Go client anchor (`go-anchor/main.go`: nats.go PublishAsync with a bounded
 * window, Fetch(500) + Ack), built when Go and Debian's nats.go are installed and
 * run as one child process per row. The child only moves and times messages; the
 * order checker judges it like the other NATS rows.
 */
import { execFile } from 'node:child_process';
import { hash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createOrderChecker, type OrderChecker } from '../src/testing/checker.ts';
import { type Counter, deadlineFor, type RunOutcome } from './measure.ts';
import { acksSettled, type NatsEnv, readBack, streamOf } from './nats.ts';
import { type System, storedOrder } from './systems.ts';
import type { Workload } from './workload.ts';

const run = promisify(execFile);
const SOURCE_DIR = join(import.meta.dirname, 'go-anchor');
/** Debian's golang-github-nats-io-go-nats-dev installs the sources here (GOPATH mode). */
const GOPATH = '/usr/share/gocode';
const WORK_DIR = join(tmpdir(), 'jxt-bench-go-anchor');
export const GO_DURABLE = 'bench-go';
/** PublishAsyncMaxPending: the Go client's window of unacknowledged async publishes. */
export const GO_PUBLISH_WINDOW = 5_000;

export type GoAnchor = { readonly binary: string };

/** Builds the anchor (cached by source hash under the OS temp dir); a reason string when it cannot. */
export async function buildGoAnchor(): Promise<GoAnchor | string> {
  if (!existsSync(join(GOPATH, 'src/github.com/nats-io/nats.go'))) {
    return `nats.go sources not found under ${GOPATH} (apt-get install golang-go golang-github-nats-io-go-nats-dev, or bash scripts/ensure-components.sh as root)`;
  }
  const source = await readFile(join(SOURCE_DIR, 'main.go'));
  const binary = join(WORK_DIR, `go-anchor-${hash('sha256', source).slice(0, 12)}`);
  if (existsSync(binary)) return { binary };
  await mkdir(WORK_DIR, { recursive: true });
  const GOCACHE = process.env.GOCACHE ?? join(WORK_DIR, 'cache');
  const env = { ...process.env, GOPATH, GO111MODULE: 'off', GOCACHE, GOFLAGS: '' };
  try {
    await run('go', ['build', '-o', binary, '.'], { cwd: SOURCE_DIR, env });
    return { binary };
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') return 'go is not on the PATH (apt-get install golang-go)';
    return `go build failed: ${e.stderr ?? e.message}`;
  }
}

type Mode = 'publish' | 'consume' | 'e2e';
type ChildResult = Record<'elapsedMs' | 'published' | 'failed' | 'consumed', number>;
/** A run's counters; `checker` is a fresh one unless given (consume: the preload's). */
type Io = { readonly results?: Counter; readonly consumed?: Counter; readonly checker?: OrderChecker };

/** The go-nats system's scenarios (no latency rows); streams and preloads are the NATS ones. */
export function goSystem(go: GoAnchor, env: NatsEnv): Pick<System, 'name' | 'publish' | 'consume' | 'e2e'> {
  /**
   * One child run. Publishing modes expect every message (acknowledged when the child got every
   * PubAck); publish rows observe the streams read back, consuming rows what the child handled
   * (file order = handling order per stream).
   */
  async function child(mode: Mode, w: Workload, n: number, io: Io): Promise<RunOutcome> {
    const checker = io.checker ?? createOrderChecker();
    const observed = join(WORK_DIR, `${w.prefix}observed.txt`);
    const payload = JSON.stringify(w.payload).length;
    const client = { url: env.url, mode, window: GO_PUBLISH_WINDOW, durable: GO_DURABLE };
    const workload = { n, prefix: w.prefix, aggregates: w.aggregates, payload };
    const subjects = { topics: w.topics.join(','), streams: w.topics.map(streamOf).join(',') };
    const args = Object.entries({ ...client, ...workload, ...subjects }).map(([k, v]) => `-${k}=${v}`);
    if (mode !== 'publish') args.push(`-observed=${observed}`);
    const notes: string[] = [];
    try {
      // Bounded: this nats.go (1.22) waits for a PubAck with no timeout, so a lost one would hang the bench.
      const timeout = deadlineFor(n);
      const r = await run(go.binary, args, { maxBuffer: 1 << 20, timeout, killSignal: 'SIGKILL' }).then(
        ({ stdout }) => JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as ChildResult,
        (error: { killed?: boolean }) => {
          if (error.killed !== true) throw error;
          notes.push(`go: killed after ${timeout} ms without a result`);
          return { elapsedMs: timeout, published: 0, failed: n, consumed: 0 };
        },
      );
      if (mode !== 'consume') {
        const allAcked = r.published === n && r.failed === 0;
        for (let i = 0; i < n; i++) {
          w.expect(checker, i);
          if (allAcked) checker.acknowledged(w.eventIdOf(i));
          if (i < r.published) io.results?.inc();
        }
        if (!allAcked) notes.push(`go: ${r.published}/${n} PubAcks, ${r.failed} failed`);
      }
      if (mode === 'publish') await readBack(env, w.topics, checker);
      else {
        for (const line of (await readFile(observed, 'utf8').catch(() => '')).split('\n')) {
          if (line === '') continue;
          const [eventId = '', aggregateId = '', version = ''] = line.split(' ');
          checker.observe(eventId, aggregateId, Number(version));
          io.consumed?.inc();
        }
        if (r.consumed !== n) notes.push(`go: ${r.consumed}/${n} consumed`);
      }
      return { elapsedMs: r.elapsedMs, notes, checker };
    } finally {
      await rm(observed, { force: true });
    }
  }

  return {
    name: 'go-nats',
    publish: (w, n, results) => child('publish', w, n, { results }),
    async consume(w, n, checker, consumed) {
      const r = await child('consume', w, n, { consumed, checker });
      const settled = await acksSettled(env, w.topics, GO_DURABLE);
      if (!settled) r.notes.push('acks had not all reached the broker 5 s after the run');
      return { ...r, acksSettled: settled };
    },
    async e2e(w, n, consumed, results) {
      const r = await child('e2e', w, n, { results, consumed });
      return { ...r, stored: await storedOrder({ readBack: (x, c) => readBack(env, x.topics, c) }, w, n) };
    },
  };
}
