/** `eventbus dlq list <topic> [--parked] [--json]`: what sits in `<topic>.DLQ` (or `.PARKED`). */
import type { ResolvedNatsOptions } from '../transports/nats/options.ts';
import { type DeadLetter, deadLetterFilter, deadLetterTopic, readDeadLetter } from './dead-letters.ts';
import { openAdmin } from './nats-admin.ts';
import { clip, formatTable, type Writer } from './output.ts';
import { readStream } from './stream-reader.ts';

export interface DlqListOptions {
  readonly nats: ResolvedNatsOptions;
  readonly topic: string;
  readonly parked: boolean;
  readonly json: boolean;
}

export async function runDlqList(options: DlqListOptions, writer: Writer): Promise<number> {
  const admin = await openAdmin(options.nats);
  try {
    const source = deadLetterTopic(options.topic, options.parked);
    const name = admin.streamName(source);
    const stream = await admin.topicStream(source);
    const none = `no ${options.parked ? 'parked events' : 'dead letters'} for ${options.topic}`;
    if (stream === undefined || stream.state.messages === 0) {
      writer.out(stream === undefined ? `${none} (no stream ${name})` : `${none} (stream ${name} is empty)`);
      return 0;
    }
    const rows: DeadLetter[] = [];
    const read = await readStream(
      admin.js,
      { stream, subject: deadLetterFilter(stream.config.subjects, source), from: 'start', untilEnd: true },
      (m) => {
        const row = readDeadLetter(m);
        if (options.json) writer.out(JSON.stringify(toJson(row)));
        else rows.push(row);
      },
    );
    if (!options.json) {
      for (const line of formatTable(
        ['SEQ', 'EVENT-ID', 'AGGREGATE-ID', 'VERSION', 'ATTEMPTS', 'ORIG-SEQ', 'REASON'],
        rows.map((r) => [
          String(r.sequence),
          r.eventId ?? '-',
          r.aggregateId ?? '-',
          r.eventVersion === undefined ? '-' : String(r.eventVersion),
          r.attempts === undefined ? '-' : String(r.attempts),
          r.originalSequence === undefined ? '-' : String(r.originalSequence),
          clip((r.reason ?? '-') + (r.decodeError === undefined ? '' : ' [body is not an envelope]'), 200),
        ]),
      )) {
        writer.out(line);
      }
    }
    writer.err(`${read.count} message(s) in ${source} (stream ${name})`);
    return 0;
  } finally {
    await admin.close();
  }
}

function toJson(row: DeadLetter): Record<string, unknown> {
  const { envelope, decodeError, ...fields } = row;
  return {
    ...fields,
    ...(decodeError === undefined ? {} : { decodeError }),
    ...(envelope === undefined || envelope.payload instanceof Uint8Array
      ? {}
      : { payload: envelope.payload }),
  };
}
