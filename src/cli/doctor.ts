/**
 * `eventbus doctor [topic ...] [--raw TOPIC ...]`: connects, reports the
 * server and JetStream, and compares each topic's stream and durable
 * consumers with what the transport expects (doctor-checks.ts). With no
 * topics, every stream named `<prefix>_...` is checked. Exit 1 when a finding
 * breaks a guarantee (`FAIL`), else 0 (`warn` lines are differences that do not).
 */
import { parseArgs } from 'node:util';
import type { JetStreamManager, StreamInfo } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { decodeEnvelope, Headers } from '../core/envelope.ts';
import { listConsumers } from '../transports/nats/consumer.ts';
import { wrapApiError } from '../transports/nats/errors.ts';
import { streamNameFor, validateTopic } from '../transports/nats/names.ts';
import type { ResolvedNatsOptions } from '../transports/nats/options.ts';
import { partitionWildcard, recordedPartitions } from '../transports/nats/partitions.ts';
import {
  checkConsumer,
  checkStream,
  type Expectations,
  expectationsFrom,
  type Finding,
  type Level,
  type TopicKind,
} from './doctor-checks.ts';
import {
  adminOptions,
  connectionArgs,
  connectNats,
  jetStreamManagerFor,
  streamInfoOf,
} from './nats-admin.ts';
import type { Writer } from './output.ts';

export interface DoctorOptions {
  readonly nats: ResolvedNatsOptions;
  /** Topics to check; empty: every stream with the prefix. */
  readonly topics: readonly string[];
  /** Topics used with raw `publish` / `subscribe` (memory storage expected). */
  readonly rawTopics: readonly string[];
}

export function parseDoctorArgs(argv: readonly string[]): DoctorOptions {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: { ...connectionArgs, raw: { type: 'string', multiple: true } },
  });
  const rawTopics = values.raw ?? [];
  for (const topic of [...positionals, ...rawTopics]) validateTopic(topic);
  return { nats: adminOptions(values), topics: positionals, rawTopics };
}

const LABEL: Record<Level, string> = { ok: 'ok   ', info: 'info ', warn: 'warn ', fail: 'FAIL ' };

class Report {
  failures = 0;
  readonly #writer: Writer;
  constructor(writer: Writer) {
    this.#writer = writer;
  }
  line(level: Level, subject: string, message: string): void {
    if (level === 'fail') this.failures++;
    this.#writer.out(`${LABEL[level]} ${subject}: ${message}`);
  }
  /** One line for everything that is fine, one line per warning or failure. */
  findings(subject: string, findings: readonly Finding[]): void {
    const fine = findings.filter((f) => f.level === 'ok' || f.level === 'info').map((f) => f.message);
    if (fine.length > 0) this.line('ok', subject, fine.join('; '));
    for (const f of findings)
      if (f.level === 'warn' || f.level === 'fail') this.line(f.level, subject, f.message);
  }
}

export async function runDoctor(options: DoctorOptions, writer: Writer): Promise<number> {
  const report = new Report(writer);
  const where = options.nats.servers.join(', ');
  let nc: NatsConnection;
  try {
    nc = await connectNats(options.nats);
  } catch (error) {
    report.line('fail', 'server', (error as Error).message);
    return 1;
  }
  try {
    const server = nc.info;
    report.line(
      'ok',
      'server',
      `${where}: nats-server ${server?.version ?? '?'}${server?.cluster ? `, cluster ${server.cluster}` : ''}`,
    );
    let jsm: JetStreamManager;
    try {
      jsm = await jetStreamManagerFor(nc, options.nats);
    } catch (error) {
      report.line('fail', 'jetstream', (error as Error).message);
      return 1;
    }
    const account = await jsm.getAccountInfo();
    report.line(
      'ok',
      'jetstream',
      `enabled: ${account.streams} streams, ${account.consumers} consumers, ${account.storage} bytes on file, ${account.memory} bytes in memory`,
    );
    const expected = expectationsFrom(options.nats);
    const targets = await streamsToCheck(jsm, options, report);
    for (const { topic, name, stream } of targets) {
      if (stream === undefined) {
        report.line(
          'info',
          `stream ${name}`,
          `does not exist (the transport creates it on the first publish or subscribe to ${topic})`,
        );
        continue;
      }
      await checkTopic(jsm, { topic, stream, raw: options.rawTopics.includes(topic) }, expected, report);
    }
    writer.err(
      report.failures === 0
        ? 'doctor: no problem that breaks a guarantee'
        : `doctor: ${report.failures} problem(s) that break a guarantee`,
    );
    return report.failures === 0 ? 0 : 1;
  } finally {
    await nc.close();
  }
}

interface Target {
  readonly topic: string;
  readonly name: string;
  readonly stream: StreamInfo | undefined;
}

async function streamsToCheck(
  jsm: JetStreamManager,
  options: DoctorOptions,
  report: Report,
): Promise<Target[]> {
  const prefix = options.nats.streamPrefix;
  if (options.topics.length > 0) {
    const targets: Target[] = [];
    for (const topic of options.topics) {
      const name = streamNameFor(prefix, topic);
      targets.push({ topic, name, stream: await streamInfoOf(jsm, name) });
      // Its dead-letter and parking streams, when there are any.
      for (const suffix of ['DLQ', 'PARKED']) {
        const dead = `${topic}.${suffix}`;
        const stream = await streamInfoOf(jsm, streamNameFor(prefix, dead));
        if (stream !== undefined) targets.push({ topic: dead, name: stream.config.name, stream });
      }
    }
    return targets;
  }
  const targets: Target[] = [];
  try {
    for await (const stream of jsm.streams.list()) {
      const name = stream.config.name;
      if (!name.startsWith(`${prefix}_`)) continue;
      const subjects = stream.config.subjects ?? [];
      const topic = subjects[0] ?? '';
      const partitioned = subjects.length === 2 && subjects[1] === partitionWildcard(topic);
      if ((subjects.length !== 1 && !partitioned) || streamNameFor(prefix, topic) !== name) {
        report.line(
          'warn',
          `stream ${name}`,
          `subjects ${subjects.join(', ') || 'none'}: not a stream the transport made for one topic; skipped`,
        );
        continue;
      }
      targets.push({ topic, name, stream });
    }
  } catch (error) {
    throw wrapApiError('Failed to list streams', error);
  }
  if (targets.length === 0) report.line('info', 'streams', `none named ${prefix}_<topic>`);
  return targets.sort((a, b) => a.name.localeCompare(b.name));
}

async function checkTopic(
  jsm: JetStreamManager,
  target: { topic: string; stream: StreamInfo; raw: boolean },
  expected: Expectations,
  report: Report,
): Promise<void> {
  const { topic, stream } = target;
  const name = stream.config.name;
  const { kind, why } = target.raw
    ? { kind: 'raw' as const, why: 'declared with --raw' }
    : await inferKind(jsm, name, topic);
  report.findings(`stream ${name} (${topic}, ${kind}: ${why})`, checkStream(stream, topic, kind, expected));
  for (const consumer of await listConsumers(jsm, name)) {
    const subject = `consumer ${name}/${consumer.name}`;
    if (!consumer.config.durable_name) {
      report.line('info', subject, 'ephemeral (e.g. a running tail); not a consumer group; skipped');
      continue;
    }
    report.findings(subject, checkConsumer(consumer, topic, expected));
  }
  await reportGroups(jsm, name, report);
}

/**
 * Partitioned consumer groups of a stream, from the coordination bucket:
 * members and who holds which partition lease right now (a snapshot; a
 * lease without renewals expires after the group's lease time).
 */
async function reportGroups(jsm: JetStreamManager, stream: string, report: Report): Promise<void> {
  const bucket = `${stream.slice(0, stream.indexOf('_'))}_GROUPS`;
  let kv: KV;
  try {
    kv = await new Kvm(jsm.jetstream()).open(bucket);
    await kv.status();
  } catch {
    return; // no partitioned group anywhere yet
  }
  const groups = new Map<string, { members: string[]; lanes: Map<string, string> }>();
  for await (const key of await kv.keys(`${stream}.>`)) {
    const rest = key.slice(stream.length + 1);
    const match = /^(.+)\.(m|p)\.([^.]+)$/.exec(rest);
    if (match === null) continue;
    const [, group = '', kind, id = ''] = match;
    const entry = groups.get(group) ?? { members: [], lanes: new Map<string, string>() };
    groups.set(group, entry);
    if (kind === 'm') entry.members.push(id);
    else {
      const value = await kv.get(key);
      if (value !== null && value.operation === 'PUT') {
        entry.lanes.set(id, (JSON.parse(value.string()) as { owner?: string }).owner ?? '?');
      }
    }
  }
  for (const [group, { members, lanes }] of groups) {
    const byOwner = new Map<string, string[]>();
    for (const [lane, owner] of lanes) byOwner.set(owner, [...(byOwner.get(owner) ?? []), lane]);
    const assignment = [...byOwner]
      .map(
        ([owner, owned]) =>
          `${owner}: ${owned.sort((a, b) => a.localeCompare(b, 'en', { numeric: true })).join(',')}`,
      )
      .join('; ');
    report.line(
      'ok',
      `group ${stream}/${group}`,
      `${members.length} member(s) [${members.sort().join(', ')}]; ${lanes.size} partition lease(s) held${assignment ? ` — ${assignment}` : ''}`,
    );
  }
}

/**
 * Whether a topic carries envelopes: dead-letter topics always do; otherwise
 * its last message decides (an envelope body or an X-Event-ID header).
 */
async function inferKind(
  jsm: JetStreamManager,
  name: string,
  topic: string,
): Promise<{ kind: TopicKind; why: string }> {
  if (/\.(DLQ|PARKED)$/.test(topic)) return { kind: 'envelope', why: 'dead-letter topic' };
  const info = await jsm.streams.info(name);
  if (recordedPartitions(info.config.description, info.config.subjects ?? [], topic) > 0) {
    return { kind: 'envelope', why: 'partitioned (only envelope topics are)' };
  }
  let last: Awaited<ReturnType<JetStreamManager['streams']['getMessage']>>;
  try {
    last = await jsm.streams.getMessage(name, { last_by_subj: topic });
  } catch (error) {
    throw wrapApiError(`Failed to read the last message of stream ${name}`, error);
  }
  if (last === null) return { kind: 'unknown', why: 'no message to tell' };
  if (last.header?.get(Headers.eventId)) return { kind: 'envelope', why: 'messages carry X-Event-ID' };
  try {
    decodeEnvelope(last.data);
    return { kind: 'envelope', why: 'messages are envelopes' };
  } catch {
    return { kind: 'raw', why: 'messages are not envelopes' };
  }
}

export function doctorCommand(argv: readonly string[], writer: Writer): Promise<number> {
  return runDoctor(parseDoctorArgs(argv), writer);
}
