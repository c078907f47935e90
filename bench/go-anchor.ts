/**
 * The Go client (nats.go PublishAsync with a bounded window, Fetch(500) + Ack)
 * as the physical anchor: `go-anchor/main.go`, built when Go and Debian's
 * nats.go sources are installed (scripts/ensure-components.sh), run as one
 * child process per row against the bench's server. The child only moves and
 * times messages; the same order checker judges it: publish rows by reading
 * the streams back, consume and e2e rows from the events the child wrote out
 * after its clock stopped.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createOrderChecker, type OrderChecker } from '../src/testing/checker.ts';
import type { Counter, RunOutcome } from './measure.ts';
import { acksSettled, type NatsEnv, readBack, streamOf } from './nats.ts';
import { type System, storedOrder } from './systems.ts';
import type { Workload } from './workload.ts';

const run = promisify(execFile);
const SOURCE_DIR = join(dirname(fileURLToPath(import.meta.url)), 'go-anchor');
/** Debian's golang-github-nats-io-go-nats-dev installs the sources here (GOPATH mode). */
const DEBIAN_GOPATH = '/usr/share/gocode';
const WORK_DIR = join(tmpdir(), 'jxt-bench-go-anchor');
export const GO_DURABLE = 'bench-go';
/** PublishAsyncMaxPending: the Go client's window of unacknowledged async publishes. */
export const GO_PUBLISH_WINDOW = 5_000;

export interface GoAnchor {
  readonly binary: string;
}

/** Builds the anchor (cached by source hash under the OS temp dir); a reason string when it cannot. */
export async function buildGoAnchor(): Promise<GoAnchor | string> {
  if (!existsSync(join(DEBIAN_GOPATH, 'src/github.com/nats-io/nats.go'))) {
    return `nats.go sources not found under ${DEBIAN_GOPATH} (apt-get install golang-go golang-github-nats-io-go-nats-dev, or bash scripts/ensure-components.sh as root)`;
  }
  const hash = createHash('sha256')
    .update(await readFile(join(SOURCE_DIR, 'main.go')))
    .digest('hex')
    .slice(0, 12);
  const binary = join(WORK_DIR, `go-anchor-${hash}`);
  if (existsSync(binary)) return { binary };
  await mkdir(WORK_DIR, { recursive: true });
  try {
    await run('go', ['build', '-o', binary, '.'], {
      cwd: SOURCE_DIR,
      env: {
        ...process.env,
        GOPATH: DEBIAN_GOPATH,
        GO111MODULE: 'off',
        GOCACHE: process.env.GOCACHE ?? join(WORK_DIR, 'cache'),
        GOFLAGS: '',
      },
    });
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stderr?: string };
    return e.code === 'ENOENT'
      ? 'go is not on the PATH (apt-get install golang-go)'
      : `go build failed: ${e.stderr ?? e.message}`;
  }
  return { binary };
}

interface ChildResult {
  readonly elapsedMs: number;
  readonly published: number;
  readonly failed: number;
  readonly consumed: number;
}

/**
 * One child run; registers every message with the checker (acknowledged when
 * the child got every PubAck) for publishing modes, and feeds the events it
 * handled (file order = handling order per stream) to the checker.
 */
async function child(
  go: GoAnchor,
  env: NatsEnv,
  w: Workload,
  n: number,
  mode: 'publish' | 'consume' | 'e2e',
  checker: OrderChecker,
  counters: { readonly results?: Counter; readonly consumed?: Counter },
): Promise<{ elapsedMs: number; notes: string[] }> {
  const observed = join(WORK_DIR, `${w.prefix}observed.txt`);
  try {
    const { stdout } = await run(
      go.binary,
      [
        `-url=${env.url}`,
        `-mode=${mode}`,
        `-n=${n}`,
        `-prefix=${w.prefix}`,
        `-topics=${w.topics.join(',')}`,
        `-streams=${w.topics.map(streamOf).join(',')}`,
        `-aggregates=${w.aggregates}`,
        `-payload=${JSON.stringify(w.payload).length}`,
        `-window=${GO_PUBLISH_WINDOW}`,
        `-durable=${GO_DURABLE}`,
        ...(mode === 'publish' ? [] : [`-observed=${observed}`]),
      ],
      { maxBuffer: 1 << 20 },
    );
    const r = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as ChildResult;
    const notes: string[] = [];
    if (mode !== 'consume') {
      const allAcked = r.published === n && r.failed === 0;
      for (let i = 0; i < n; i++) {
        w.expect(checker, i);
        if (allAcked) checker.acknowledged(w.eventIdOf(i));
      }
      for (let i = 0; i < r.published; i++) counters.results?.inc();
      if (!allAcked) notes.push(`go: ${r.published}/${n} PubAcks, ${r.failed} failed`);
    }
    if (mode !== 'publish') {
      for (const line of (await readFile(observed, 'utf8')).split('\n')) {
        if (line === '') continue;
        const [eventId = '', aggregateId = '', version = ''] = line.split(' ');
        checker.observe(eventId, aggregateId, Number(version));
        counters.consumed?.inc();
      }
      if (r.consumed !== n) notes.push(`go: ${r.consumed}/${n} consumed`);
    }
    return { elapsedMs: r.elapsedMs, notes };
  } finally {
    await rm(observed, { force: true });
  }
}

/** The go-nats system's scenarios (no latency rows); streams and preloads are the NATS ones. */
export function goSystem(go: GoAnchor, env: NatsEnv): Pick<System, 'name' | 'publish' | 'consume' | 'e2e'> {
  return {
    name: 'go-nats',
    async publish(w, n, results): Promise<RunOutcome> {
      const checker = createOrderChecker();
      const r = await child(go, env, w, n, 'publish', checker, { results });
      await readBack(env, w.topics, checker);
      return { ...r, checker };
    },
    async consume(w, n, checker, consumed) {
      const r = await child(go, env, w, n, 'consume', checker, { consumed });
      const settled = await acksSettled(env, w.topics, GO_DURABLE);
      if (!settled) r.notes.push('acks had not all reached the broker 5 s after the run');
      return { ...r, checker, acksSettled: settled };
    },
    async e2e(w, n, consumed, results) {
      const checker = createOrderChecker();
      const r = await child(go, env, w, n, 'e2e', checker, { results, consumed });
      const stored = await storedOrder({ readBack: (x, c) => readBack(env, x.topics, c) }, w, n);
      return { ...r, checker, stored };
    },
  };
}
