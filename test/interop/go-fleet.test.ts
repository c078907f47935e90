/**
 * One fleet with the Go SDK (issue 13): a real Go program (go-peer/main.go,
 * publishing and consuming as the Go SDK does) and our bus on one real
 * nats-server, both directions, judged by the order checker.
 *
 * Subjects and streams: the Go peer publishes to / consumes from the plain
 * topic subject `<topic>`. Our bus creates the topic's stream (subscribe or
 * first publish) before the Go side runs, and the Go consumer finds that
 * stream by subject, as nats.go's PullSubscribe does.
 *
 * Needs Go and nats.go from Debian (golang-go, golang-github-nats-io-go-nats-dev);
 * without them the test is skipped with one line saying so.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createEventBus, type Envelope, type EventBus, rawPayload } from '../../src/index.ts';
import { createOrderChecker, formatReport } from '../../src/testing/checker.ts';
import { until } from '../../src/testing/waiters.ts';
import { streamNameFor } from '../../src/transports/nats/names.ts';
import { type NatsServerHandle, startNatsServer } from '../harness/nats-server.ts';
import { inspector } from '../transports/nats/helpers.ts';

const run = promisify(execFile);
const GOPATH = '/usr/share/gocode';
const PEER_SOURCE = join(dirname(fileURLToPath(import.meta.url)), 'go-peer');
const EVENTS = 1_000;
const AGGREGATES = 50;
const BIG_BASE = 9007199254740993n; // 2^53 + 1: beyond what a JS number carries exactly

function missingGo(): string | undefined {
  const go = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (go.status !== 0) return 'no `go` on PATH';
  if (!existsSync(join(GOPATH, 'src/github.com/nats-io/nats.go'))) return `no nats.go under ${GOPATH}`;
  return undefined;
}

const missing = missingGo();
const skip =
  missing === undefined
    ? false
    : `Go interop skipped: ${missing} (apt-get install -y golang-go golang-github-nats-io-go-nats-dev)`;

interface GoLine {
  readonly summary?: boolean;
  readonly event_id?: string;
  readonly aggregate_id?: string;
  readonly event_version?: number;
  readonly timestamp?: string;
  readonly payload?: string;
  readonly delivered?: number;
  readonly rejected?: string;
  readonly [field: string]: unknown;
}

const parseLines = (stdout: string): GoLine[] =>
  stdout
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as GoLine);

describe('one fleet with the Go SDK (real Go program, real nats-server)', { skip }, () => {
  let workDir: string;
  let peer: string;
  let server: NatsServerHandle;
  let bus: EventBus;
  const published = new Map<string, (ok: boolean) => void>();

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'go-peer-'));
    peer = join(workDir, 'go-peer');
    const env: NodeJS.ProcessEnv = { ...process.env, GOPATH, GO111MODULE: 'off' };
    if (env.GOCACHE === undefined && env.HOME === undefined) env.GOCACHE = join(workDir, 'cache');
    await run('go', ['build', '-o', peer, '.'], { cwd: PEER_SOURCE, env });
    server = await startNatsServer({ jetstream: true });
    bus = await createEventBus({
      transport: 'nats',
      clientId: 'ts-fleet',
      interop: 'jxt-go',
      metrics: { enabled: false },
      nats: { servers: server.url },
      onPublishResult: (r) => published.get(r.eventId)?.(r.success),
    });
  });

  after(async () => {
    await bus?.close({ timeoutMs: 5_000 });
    await server?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  const goPeer = async (args: string[]): Promise<GoLine[]> => {
    const { stdout } = await run(peer, ['-url', server.url, '-timeout', '60s', ...args], {
      maxBuffer: 64 * 1024 * 1024,
    });
    return parseLines(stdout);
  };

  it('Go → us: 1,000 Go events over 50 aggregates arrive decoded, in order, none dead-lettered', async () => {
    const topic = 'fleet.go-to-ts';
    const runId = 'go2ts';
    const checker = createOrderChecker();
    for (let i = 0; i < EVENTS; i++) {
      checker.expect(
        `${runId}-${i}`,
        `go-agg-${String(i % AGGREGATES).padStart(2, '0')}`,
        Math.floor(i / AGGREGATES),
      );
    }
    const received = new Map<string, Envelope>();
    const anomalies: string[] = [];
    const done = until(
      () => checker.expectedCount() === EVENTS && checker.outstanding() === 0 && received.size >= EVENTS,
      () => formatReport(checker.report()),
    );
    let acknowledgedByGo = false;
    const sub = await bus.subscribeEnvelope<{ seq: number; ref: bigint }>(
      topic,
      (envelope, ctx) => {
        // Never throws: a throwing handler would be retried and hide what went wrong.
        if (ctx.attempt !== 1 || ctx.deliveryCount !== 1) {
          anomalies.push(`${envelope.eventId}: attempt ${ctx.attempt}, delivery ${ctx.deliveryCount}`);
        }
        const { seq, ref } = envelope.payload;
        if (ref !== BIG_BASE + BigInt(seq)) anomalies.push(`${envelope.eventId}: payload.ref ${String(ref)}`);
        const raw = Buffer.from(rawPayload(envelope)).toString('utf8');
        if (raw !== `{"seq":${seq},"ref":${BIG_BASE + BigInt(seq)}}`)
          anomalies.push(`${envelope.eventId}: raw ${raw}`);
        received.set(envelope.eventId, envelope);
        checker.observe(envelope.eventId, envelope.aggregateId, envelope.eventVersion - 1);
        if (acknowledgedByGo) done.check();
      },
      { group: 'ts-fleet' },
    );
    // Mixed: the Go SDK's shipped code sends no X-* headers, the notes' version does; both must work.
    const lines = await goPeer(['-mode', 'publish', '-subject', topic, '-run', runId, '-headers', 'mixed']);
    const summary = lines.find((l) => l.summary);
    assert.deepEqual(summary, { summary: true, published: EVENTS, failed: 0 });
    const goTimestamps = new Map<string, string>();
    for (const line of lines) {
      if (line.summary || line.event_id === undefined) continue;
      checker.acknowledged(line.event_id);
      goTimestamps.set(line.event_id, line.timestamp ?? '');
    }
    acknowledgedByGo = true;
    await done.wait(60_000);
    await sub.close();

    const report = checker.report();
    assert.equal(report.lost, 0, formatReport(report));
    assert.equal(report.outOfOrder, 0, formatReport(report));
    assert.equal(report.unexpected, 0, formatReport(report));
    assert.equal(report.duplicated, 0, formatReport(report));
    assert.equal(report.exactlyOnce, EVENTS, formatReport(report));
    assert.deepEqual(anomalies, []);
    // Go's timestamps (nanoseconds, +08:00 on odd events) reach the handler exactly as Go wrote them.
    const changed = [...received.values()].filter((e) => e.timestamp !== goTimestamps.get(e.eventId));
    assert.deepEqual(
      changed.slice(0, 3).map((e) => [e.timestamp, goTimestamps.get(e.eventId)]),
      [],
    );
    assert.ok([...goTimestamps.values()].some((t) => t.endsWith('+08:00')));
    // Every event was handled on its first attempt (anomalies), so none can have been dead-lettered; the DLQ stream agrees.
    const inspect = await inspector(server.url);
    try {
      const dlqStream = streamNameFor('EVENTBUS', `${topic}.DLQ`);
      const dlq = await inspect.jsm.streams.info(dlqStream).catch(() => undefined); // never created: nothing dead-lettered
      assert.equal(dlq?.state.messages ?? 0, 0);
    } finally {
      await inspect.close();
    }
  });

  it('us → Go: 1,000 of our events over 50 aggregates are accepted and acked by a Go consumer, none rejected', async () => {
    const topic = 'fleet.ts-to-go';
    const checker = createOrderChecker();
    const acks: Promise<boolean>[] = [];
    for (let i = 0; i < EVENTS; i++) {
      const aggregateId = `ts-agg-${String(i % AGGREGATES).padStart(2, '0')}`;
      const eventId = `ts2go-${i}`;
      const version = Math.floor(i / AGGREGATES) + 1;
      checker.expect(eventId, aggregateId, version - 1);
      acks.push(new Promise((resolve) => published.set(eventId, resolve)));
      await bus.publishEnvelope(topic, {
        eventId,
        aggregateId,
        eventType: 'TsEvent',
        eventVersion: version,
        // Odd events carry a nanosecond timestamp with an offset, forwarded as written.
        ...(i % 2 === 1 ? { timestamp: '2026-12-01T12:00:00.123456789+08:00' } : {}),
        payload: { seq: i, ref: BIG_BASE + BigInt(i) },
      });
    }
    const outcomes = await Promise.all(acks);
    outcomes.forEach((ok, i) => {
      if (ok) checker.acknowledged(`ts2go-${i}`);
    });
    assert.equal(checker.report().acknowledged, EVENTS);

    const lines = await goPeer([
      '-mode',
      'consume',
      '-subject',
      topic,
      '-durable',
      'go-fleet',
      '-events',
      String(EVENTS),
    ]);
    const summary = lines.find((l) => l.summary);
    const rejected = lines.filter((l) => !l.summary && l.rejected !== undefined).slice(0, 3);
    assert.deepEqual(rejected, [], 'the Go consumer rejected some of our envelopes');
    assert.deepEqual(summary, {
      summary: true,
      received: EVENTS,
      acked: EVENTS,
      rejected: 0,
      redelivered: 0,
    });
    const payloadMismatches: string[] = [];
    const timestampMismatches: string[] = [];
    for (const line of lines) {
      if (line.summary || line.event_id === undefined) continue;
      checker.observe(line.event_id, line.aggregate_id ?? '', (line.event_version ?? 0) - 1);
      const seq = Number(line.event_id.slice('ts2go-'.length));
      // Go holds the payload as raw JSON: our bigint went out as the exact integer.
      if (line.payload !== `{"seq":${seq},"ref":${BIG_BASE + BigInt(seq)}}`) {
        payloadMismatches.push(`${line.event_id}: ${line.payload}`);
      }
      // Go parsed our forwarded timestamp to the same instant, nanoseconds and offset included.
      if (seq % 2 === 1 && line.timestamp !== '2026-12-01T12:00:00.123456789+08:00') {
        timestampMismatches.push(`${line.event_id}: ${line.timestamp}`);
      }
    }
    const report = checker.report();
    assert.equal(report.lost, 0, formatReport(report));
    assert.equal(report.outOfOrder, 0, formatReport(report));
    assert.equal(report.unexpected, 0, formatReport(report));
    assert.equal(report.duplicated, 0, formatReport(report));
    assert.equal(report.exactlyOnce, EVENTS, formatReport(report));
    assert.deepEqual(payloadMismatches.slice(0, 3), []);
    assert.deepEqual(timestampMismatches.slice(0, 3), []);
  });
});
