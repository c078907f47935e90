/**
 * `eventbus dlq requeue <topic> --parked (--aggregate ID ... | --all) [--group G]
 * [--timeout-ms N] [--dry-run]`: asks the consumers to resume parked aggregates.
 *
 * Parked events cannot be republished from here: they would be parked again
 * (the aggregate is still parked), or, once unparked, run after the
 * aggregate's newer events. Only the member that owns the aggregate's
 * partition can replay them in order, holding the newer ones back meanwhile.
 * So this command writes a resume request into the `<prefix>_PARKED` KV
 * bucket (see src/transports/nats/resume-requests.ts); that member sees it,
 * replays `<topic>.PARKED` for the aggregate, unparks it and answers. The
 * command waits for the answer at most `--timeout-ms` per aggregate and exits
 * 1 when one was not picked up (no member of the group owns the partition
 * now), failed, or was not parked.
 */
import { Kvm } from '@nats-io/kv';
import { durableNameFor } from '../transports/nats/names.ts';
import type { ResolvedNatsOptions } from '../transports/nats/options.ts';
import { classifyKey, groupPrefix, requestResume } from '../transports/nats/resume-requests.ts';
import { openAdmin, streamInfoOf } from './nats-admin.ts';
import { clip, type Writer } from './output.ts';

export interface DlqResumeOptions {
  readonly nats: ResolvedNatsOptions;
  readonly topic: string;
  /** Aggregates to resume, or every parked aggregate of the topic. */
  readonly aggregates: readonly string[] | 'all';
  /** Only this consumer group's parked aggregates (default: every group's). */
  readonly group: string | undefined;
  /** How long to wait for each aggregate's owner to finish its replay. */
  readonly timeoutMs: number;
  readonly dryRun: boolean;
}

export const defaultResumeWaitMs = 30_000;

interface Parked {
  readonly durable: string;
  readonly aggregate: string;
  readonly reason: string;
}

export async function runDlqResume(options: DlqResumeOptions, writer: Writer): Promise<number> {
  const admin = await openAdmin(options.nats);
  try {
    const bucket = `${options.nats.streamPrefix}_PARKED`;
    const stream = admin.streamName(options.topic);
    const parked =
      (await streamInfoOf(admin.jsm, `KV_${bucket}`)) === undefined
        ? []
        : await listParked(await new Kvm(admin.nc).open(bucket), stream);
    const durable = options.group === undefined ? undefined : durableNameFor(options.group);
    const inGroup = parked.filter((p) => durable === undefined || p.durable === durable);
    const wanted = options.aggregates === 'all' ? undefined : new Set(options.aggregates);
    const targets = inGroup.filter((p) => wanted === undefined || wanted.has(p.aggregate));
    const where = `${options.topic}${durable === undefined ? '' : ` (group ${durable})`}`;
    let failed = 0;
    let resumed = 0;
    for (const aggregate of wanted ?? []) {
      if (!targets.some((t) => t.aggregate === aggregate)) {
        writer.out(`not parked: ${aggregate} in ${where}`);
        failed++;
      }
    }
    if (targets.length === 0) {
      if (wanted === undefined) writer.out(`no parked aggregates in ${where}`);
      return failed > 0 ? 1 : 0;
    }
    const kv = await new Kvm(admin.nc).open(bucket);
    for (const target of targets) {
      const label = `${target.aggregate} group=${target.durable}`;
      if (options.dryRun) {
        writer.out(`would resume ${label} (parked: ${clip(target.reason, 200)})`);
        continue;
      }
      const answer = await requestResume(
        kv,
        groupPrefix(stream, target.durable),
        target.aggregate,
        options.timeoutMs,
        (a) => {
          if (a.state === 'accepted') writer.err(`member ${a.member} is resuming ${label}`);
        },
      );
      if (answer === undefined) {
        writer.out(
          `not picked up: ${label}: no member of the group that owns the aggregate's partition answered within ${options.timeoutMs} ms (is a consumer of the group running, with deadLetterPolicy 'park'?)`,
        );
        failed++;
      } else if (answer.state !== 'done') {
        writer.out(
          `still replaying: ${label} on member ${answer.member} after ${options.timeoutMs} ms (it goes on there; see dlq list --parked)`,
        );
        failed++;
      } else if (answer.error !== undefined) {
        writer.out(`failed: ${label} on member ${answer.member}: ${answer.error}`);
        failed++;
      } else if (answer.resumed !== true) {
        writer.out(`not resumed: ${label}: member ${answer.member} does not hold it parked`);
        failed++;
      } else {
        writer.out(`resumed ${label} member=${answer.member} replayed=${answer.replayed ?? 0}`);
        resumed++;
      }
    }
    if (!options.dryRun)
      writer.err(`${resumed} of ${targets.length} parked aggregate(s) resumed in ${where}`);
    return failed > 0 ? 1 : 0;
  } finally {
    await admin.close();
  }
}

/** Parked aggregates of one stream, every group: keys `<stream>.<durable>.<b64url(aggregate)>`. */
async function listParked(kv: Awaited<ReturnType<Kvm['open']>>, stream: string): Promise<Parked[]> {
  const keys: string[] = [];
  for await (const key of await kv.keys(`${stream}.*.*`)) keys.push(key);
  const out: Parked[] = [];
  for (const key of keys.sort()) {
    const [, durable = '', token = ''] = key.split('.');
    const found = classifyKey(token);
    if (found.kind !== 'parked') continue;
    const entry = await kv.get(key);
    if (entry === null || entry.operation !== 'PUT') continue;
    out.push({ durable, aggregate: found.key, reason: entry.string() });
  }
  return out;
}
