/**
 * `eventbus dlq requeue <topic> (--seq N ... | --all) [--dry-run]`: republishes
 * dead-lettered envelopes from `<topic>.DLQ` to `<topic>`, in DLQ sequence
 * order. Each republish is acknowledged by JetStream before its DLQ message is
 * deleted — never the other way round — and the first failure stops the run
 * (what is left stays in the DLQ; running the command again is safe).
 *
 * Message id: the original publish used `Nats-Msg-Id` = eventId, so within the
 * topic stream's duplicate window a republish with that id would be dropped
 * as a duplicate (PubAck `duplicate: true`, nothing stored). The requeue uses
 * `<eventId>.requeue-<DLQ sequence>` instead: new to the stream, yet the same
 * for every attempt at requeueing this DLQ message, so a rerun after a crash
 * between the ack and the delete is de-duplicated by the broker (and then
 * only the delete is repeated). The body — and so the eventId consumers use
 * for inbox idempotency — is unchanged; only the X-DLQ-* headers are dropped.
 */
import type { JsMsg, PubAck } from '@nats-io/jetstream';
import { type MsgHdrs, headers as natsHeaders } from '@nats-io/transport-node';
import { Headers } from '../core/envelope.ts';
import type { ResolvedNatsOptions } from '../transports/nats/options.ts';
import {
  type DeadLetter,
  deadLetterFilter,
  deadLetterTopic,
  readDeadLetter,
  type StoredMessage,
} from './dead-letters.ts';
import { type Admin, openAdmin } from './nats-admin.ts';
import type { Writer } from './output.ts';
import { readStream } from './stream-reader.ts';

export interface DlqRequeueOptions {
  readonly nats: ResolvedNatsOptions;
  readonly topic: string;
  /** DLQ stream sequences to requeue, or every message in the DLQ. */
  readonly sequences: readonly number[] | 'all';
  /** Only print what would be requeued. */
  readonly dryRun: boolean;
}

/** The `Nats-Msg-Id` of a requeued event (see the file comment for why it is not the eventId). */
export function requeueMsgId(eventId: string, dlqSequence: number): string {
  return `${eventId}.requeue-${dlqSequence}`;
}

/** The dead letter's headers without the X-DLQ-* ones and without its message id. */
export function republishHeaders(original: MsgHdrs | undefined): MsgHdrs {
  const h = natsHeaders();
  for (const key of original?.keys() ?? []) {
    const lower = key.toLowerCase();
    if (lower.startsWith('x-dlq-') || lower === Headers.natsMsgId.toLowerCase()) continue;
    for (const value of original?.values(key) ?? []) h.append(key, value);
  }
  return h;
}

type Outcome = 'requeued' | 'skipped' | 'failed';

interface Context {
  readonly admin: Admin;
  readonly options: DlqRequeueOptions;
  readonly writer: Writer;
  readonly dlqStream: string;
  readonly targetStream: string;
  /**
   * eventId → topic sequence of events requeued in this run. Several groups can
   * dead-letter the same event; one republish reaches every group, so the other
   * dead letters of that event are only deleted.
   */
  readonly requeued: Map<string, number>;
}

export async function runDlqRequeue(options: DlqRequeueOptions, writer: Writer): Promise<number> {
  const admin = await openAdmin(options.nats);
  try {
    const source = deadLetterTopic(options.topic, false);
    const dlqStream = admin.streamName(source);
    const targetStream = admin.streamName(options.topic);
    const dlq = await admin.topicStream(source);
    if (dlq === undefined || dlq.state.messages === 0) {
      writer.out(`no dead letters for ${options.topic}`);
      return options.sequences === 'all' ? 0 : 1;
    }
    if ((await admin.topicStream(options.topic)) === undefined) {
      writer.err(`stream ${targetStream} does not exist; nothing would receive the requeued events`);
      return 1;
    }
    const ctx: Context = { admin, options, writer, dlqStream, targetStream, requeued: new Map() };
    const counts: Record<Outcome, number> = { requeued: 0, skipped: 0, failed: 0 };
    const handle = async (message: StoredMessage): Promise<boolean> => {
      const outcome = await requeueOne(ctx, message);
      counts[outcome]++;
      return outcome !== 'failed';
    };
    if (options.sequences === 'all') {
      await readStream(
        admin.js,
        {
          stream: dlq,
          subject: deadLetterFilter(dlq.config.subjects, source),
          from: 'start',
          untilEnd: true,
        },
        (m: JsMsg) => handle(m),
      );
    } else {
      for (const seq of [...new Set(options.sequences)].sort((a, b) => a - b)) {
        const stored = await admin.jsm.streams.getMessage(dlqStream, { seq });
        if (stored === null) {
          writer.err(`seq ${seq}: not in ${source}`);
          counts.skipped++;
          continue;
        }
        if (!(await handle({ seq, headers: stored.header, data: stored.data, time: stored.time }))) break;
      }
    }
    const verb = options.dryRun ? 'would requeue' : 'requeued';
    writer.err(
      `${verb} ${counts.requeued} from ${source} to ${options.topic}` +
        `${counts.skipped > 0 ? `, ${counts.skipped} skipped` : ''}` +
        `${counts.failed > 0 ? '; stopped at the first failure (the rest stays in the DLQ)' : ''}`,
    );
    return counts.skipped + counts.failed === 0 ? 0 : 1;
  } finally {
    await admin.close();
  }
}

async function requeueOne(ctx: Context, message: StoredMessage): Promise<Outcome> {
  const { admin, options, writer } = ctx;
  const letter = readDeadLetter(message);
  const seq = message.seq;
  if (letter.envelope === undefined) {
    writer.err(`seq ${seq}: skipped, the body is not a valid envelope (${letter.decodeError})`);
    return 'skipped';
  }
  if (letter.originalTopic !== undefined && letter.originalTopic !== options.topic) {
    writer.err(
      `seq ${seq}: skipped, it was dead-lettered from ${letter.originalTopic}, not ${options.topic}`,
    );
    return 'skipped';
  }
  const eventId = letter.envelope.eventId;
  const earlier = ctx.requeued.get(eventId);
  if (earlier !== undefined) return dropSameEvent(ctx, letter, earlier);
  const msgId = requeueMsgId(eventId, seq);
  if (options.dryRun) {
    ctx.requeued.set(eventId, seq);
    writer.out(`would requeue seq=${seq} ${describe(letter)} as Nats-Msg-Id ${msgId}`);
    return 'requeued';
  }
  let ack: PubAck;
  try {
    ack = await admin.js.publish(options.topic, message.data, {
      msgID: msgId,
      headers: republishHeaders(message.headers),
      expect: { streamName: ctx.targetStream },
      timeout: admin.options.publishTimeoutMs,
    });
  } catch (error) {
    writer.err(
      `seq ${seq}: publish to ${options.topic} failed, left in the DLQ: ${(error as Error).message}`,
    );
    return 'failed';
  }
  if (ack.duplicate && !(await isEarlierRequeue(admin, ack, msgId))) {
    writer.err(
      `seq ${seq}: the broker reported a duplicate of ${options.topic} seq ${ack.seq}, which is not an earlier ` +
        `requeue of this dead letter (Nats-Msg-Id ${msgId}); left in the DLQ`,
    );
    return 'failed';
  }
  try {
    await admin.jsm.streams.deleteMessage(ctx.dlqStream, seq, false);
  } catch (error) {
    writer.err(
      `seq ${seq}: requeued (${options.topic} seq ${ack.seq}) but not deleted from the DLQ: ${(error as Error).message}; ` +
        'running requeue again is safe within the duplicate window (same Nats-Msg-Id)',
    );
    return 'failed';
  }
  ctx.requeued.set(eventId, ack.seq);
  const note = ack.duplicate ? ' (already stored by an earlier requeue: broker duplicate)' : '';
  writer.out(`requeued seq=${seq} ${describe(letter)} -> ${options.topic} seq=${ack.seq}${note}`);
  return 'requeued';
}

/** Another group's dead letter of an event this run already requeued: delete it, publish nothing. */
async function dropSameEvent(ctx: Context, letter: DeadLetter, earlier: number): Promise<Outcome> {
  const seq = letter.sequence;
  const what = `seq=${seq} ${describe(letter)}`;
  if (ctx.options.dryRun) {
    ctx.writer.out(`would delete ${what}: the same event is requeued above`);
    return 'requeued';
  }
  try {
    await ctx.admin.jsm.streams.deleteMessage(ctx.dlqStream, seq, false);
  } catch (error) {
    ctx.writer.err(`seq ${seq}: could not delete it from the DLQ: ${(error as Error).message}`);
    return 'failed';
  }
  ctx.writer.out(`deleted ${what}: the same event was requeued as ${ctx.options.topic} seq=${earlier}`);
  return 'requeued';
}

/**
 * A duplicate PubAck names the stored copy: delete the dead letter only when
 * that copy really is this requeue (it still exists and carries our msg id).
 */
async function isEarlierRequeue(admin: Admin, ack: PubAck, msgId: string): Promise<boolean> {
  const stored = await admin.jsm.streams.getMessage(ack.stream, { seq: ack.seq });
  return stored?.header?.get(Headers.natsMsgId) === msgId;
}

function describe(letter: DeadLetter): string {
  const group = letter.group === undefined ? '' : ` group=${letter.group}`;
  return `eventId=${letter.eventId} aggregateId=${letter.aggregateId} eventVersion=${letter.eventVersion}${group}`;
}
