/**
 * The Go client (nats.go PublishAsync with a bounded window, Fetch(500) + Ack)
 * as the physical anchor row: `go-anchor/main.go`, built here when Go and
 * Debian's nats.go sources are installed (scripts/ensure-components.sh), run
 * as a child process against the bench's server. The child only moves and
 * times messages; its results are judged here by the same order checker:
 * publish runs by reading the streams back, consume and e2e runs from the
 * events the child wrote out after its clock stopped.
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
import { acksSettled, type NatsEnv, readBack, STREAM_PREFIX, streamNameFor } from './nats-env.ts';
import { storedOrder } from './ours.ts';
import type { Workload } from './workload.ts';

const run = promisify(execFile);
const SOURCE_DIR = join(dirname(fileURLToPath(import.meta.url)), 'go-anchor');
/** Debian's golang-github-nats-io-go-nats-dev installs the sources here (GOPATH mode). */
const DEBIAN_GOPATH = '/usr/share/gocode';
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
  const source = await readFile(join(SOURCE_DIR, 'main.go'));
  const hash = createHash('sha256').update(source).digest('hex').slice(0, 12);
  const dir = join(tmpdir(), 'jxt-bench-go-anchor');
  const binary = join(dir, `go-anchor-${hash}`);
  if (existsSync(binary)) return { binary };
  await mkdir(dir, { recursive: true });
  try {
    await run('go', ['build', '-o', binary, '.'], {
      cwd: SOURCE_DIR,
      env: {
        ...process.env,
        GOPATH: DEBIAN_GOPATH,
        GO111MODULE: 'off',
        GOCACHE: process.env.GOCACHE ?? join(dir, 'cache'),
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

async function child(
  go: GoAnchor,
  env: NatsEnv,
  w: Workload,
  n: number,
  mode: 'publish' | 'consume' | 'e2e',
  observed?: string,
): Promise<ChildResult> {
  const args = [
    `-url=${env.url}`,
    `-mode=${mode}`,
    `-n=${n}`,
    `-prefix=${w.prefix}`,
    `-topics=${w.topics.join(',')}`,
    `-streams=${w.topics.map((t) => streamNameFor(STREAM_PREFIX, t)).join(',')}`,
    `-aggregates=${w.aggregates}`,
    `-payload=${JSON.stringify(w.payload).length}`,
    `-window=${GO_PUBLISH_WINDOW}`,
    `-durable=${GO_DURABLE}`,
    ...(observed === undefined ? [] : [`-observed=${observed}`]),
  ];
  const { stdout } = await run(go.binary, args, { maxBuffer: 1 << 20 });
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as ChildResult;
}

/** Feeds the child's handled events (file order = handling order per stream) to the checker. */
async function observe(file: string, checker: OrderChecker, consumed: Counter): Promise<void> {
  const text = await readFile(file, 'utf8');
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const [eventId = '', aggregateId = '', version = ''] = line.split(' ');
    checker.observe(eventId, aggregateId, Number(version));
    consumed.inc();
  }
}

function scratchFile(w: Workload): string {
  return join(tmpdir(), 'jxt-bench-go-anchor', `${w.prefix}observed.txt`);
}

function expectAll(w: Workload, n: number, checker: OrderChecker, acknowledged: boolean): void {
  for (let i = 0; i < n; i++) {
    w.expect(checker, i);
    if (acknowledged) checker.acknowledged(w.eventIdOf(i));
  }
}

function childNotes(r: ChildResult, n: number, wantPublished: boolean, wantConsumed: boolean): string[] {
  const notes: string[] = [];
  if (wantPublished && (r.published !== n || r.failed > 0)) {
    notes.push(`go: ${r.published}/${n} PubAcks, ${r.failed} failed`);
  }
  if (wantConsumed && r.consumed !== n) notes.push(`go: ${r.consumed}/${n} consumed`);
  return notes;
}

/** PublishAsync throughput; the streams are read back (untimed) into the checker. */
export async function goPublish(
  go: GoAnchor,
  env: NatsEnv,
  w: Workload,
  n: number,
  results: Counter,
): Promise<RunOutcome> {
  const checker = createOrderChecker();
  const r = await child(go, env, w, n, 'publish');
  // Every message is registered; the PubAck count says whether all were acknowledged.
  expectAll(w, n, checker, r.published === n && r.failed === 0);
  for (let i = 0; i < r.published; i++) results.inc();
  await readBack(env, w.topics, checker);
  return { elapsedMs: r.elapsedMs, checker, notes: childNotes(r, n, true, false) };
}

/** Fetch(500) + Ack of a pre-loaded topic set (the checker holds the preload's expectations). */
export async function goConsume(
  go: GoAnchor,
  env: NatsEnv,
  w: Workload,
  n: number,
  checker: OrderChecker,
  consumed: Counter,
): Promise<RunOutcome> {
  const file = scratchFile(w);
  try {
    const r = await child(go, env, w, n, 'consume', file);
    await observe(file, checker, consumed);
    const settled = await acksSettled(env, w.topics, GO_DURABLE);
    const notes = childNotes(r, n, false, true);
    if (!settled) notes.push('acks had not all reached the broker 5 s after the run');
    return { elapsedMs: r.elapsedMs, checker, notes, acksSettled: settled };
  } finally {
    await rm(file, { force: true });
  }
}

/** End to end in one Go process: consumers up first, then PublishAsync; clock from first publish to last handled. */
export async function goEndToEnd(
  go: GoAnchor,
  env: NatsEnv,
  w: Workload,
  n: number,
  consumed: Counter,
  results: Counter,
): Promise<RunOutcome> {
  const checker = createOrderChecker();
  const file = scratchFile(w);
  try {
    const r = await child(go, env, w, n, 'e2e', file);
    expectAll(w, n, checker, r.published === n && r.failed === 0);
    for (let i = 0; i < r.published; i++) results.inc();
    await observe(file, checker, consumed);
    return {
      elapsedMs: r.elapsedMs,
      checker,
      notes: childNotes(r, n, true, true),
      stored: await storedOrder({ kind: 'nats', env }, w, n),
    };
  } finally {
    await rm(file, { force: true });
  }
}
