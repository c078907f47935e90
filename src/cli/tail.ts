/**
 * `eventbus tail <topic>`: prints a topic's messages decoded as envelopes, read
 * with an ephemeral ordered consumer (no durable group is touched).
 */
import { parseArgs } from 'node:util';
import type { JsMsg } from '@nats-io/jetstream';
import { decodeEnvelope, type Envelope, Headers } from '../core/envelope.ts';
import { DecodeError, isEventBusError } from '../core/errors.ts';
import type { ResolvedNatsOptions } from '../transports/nats/options.ts';
import { positiveInteger, requireTopic, startAt } from './args.ts';
import { adminOptions, connectionArgs, openAdmin } from './nats-admin.ts';
import { clip, type Writer } from './output.ts';
import { readStream, type StartAt } from './stream-reader.ts';

export interface TailOptions {
  readonly nats: ResolvedNatsOptions;
  readonly topic: string;
  /** Default 'new' (like `tail -f`). */
  readonly from: StartAt;
  readonly limit?: number;
  /** Stop at the end of what the stream held when the tail started. */
  readonly untilEnd: boolean;
  /** One JSON object per line instead of key=value text. */
  readonly json: boolean;
  readonly signal?: AbortSignal;
  /** Called once the consumer exists (messages stored from now on will be printed). */
  readonly onReady?: () => void;
}

export function parseTailArgs(argv: readonly string[]): TailOptions {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      ...connectionArgs,
      from: { type: 'string', default: 'new' },
      limit: { type: 'string' },
      'until-end': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  return {
    nats: adminOptions(values),
    topic: requireTopic(positionals, 'tail'),
    from: startAt(values.from),
    ...(values.limit === undefined ? {} : { limit: positiveInteger(values.limit, '--limit') }),
    untilEnd: values['until-end'],
    json: values.json,
  };
}

export async function runTail(options: TailOptions, writer: Writer): Promise<number> {
  const admin = await openAdmin(options.nats);
  try {
    const name = admin.streamName(options.topic);
    const stream = await admin.topicStream(options.topic);
    if (stream === undefined) {
      writer.err(
        `no stream ${name} for topic ${options.topic} (nothing has been published or subscribed there)`,
      );
      return 1;
    }
    let undecodable = 0;
    const result = await readStream(
      admin.js,
      {
        stream,
        subject: options.topic,
        from: options.from,
        untilEnd: options.untilEnd,
        ...(options.limit === undefined ? {} : { limit: options.limit }),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
        onReady: () => {
          writer.err(`tailing ${options.topic} (stream ${name}) from ${options.from}`);
          options.onReady?.();
        },
      },
      (message) => {
        const line = formatMessage(message, options.json);
        if (line.undecodable) undecodable++;
        writer.out(line.text);
      },
    );
    writer.err(
      `${result.count} message(s)${undecodable > 0 ? `, ${undecodable} undecodable` : ''} (${describeStop(result.reason)})`,
    );
    return 0;
  } finally {
    await admin.close();
  }
}

function describeStop(reason: string): string {
  if (reason === 'end') return 'end of stream';
  if (reason === 'limit') return 'limit reached';
  return reason === 'aborted' ? 'interrupted' : 'stopped';
}

/** One output line per message: the decoded envelope, or why it is not one. */
export function formatMessage(message: JsMsg, json: boolean): { text: string; undecodable: boolean } {
  let envelope: Envelope;
  try {
    envelope = decodeEnvelope(message.data);
  } catch (error) {
    const decode = isEventBusError(error) ? error : new DecodeError(String(error));
    const eventId = message.headers?.get(Headers.eventId) || undefined;
    if (json) {
      const body = {
        sequence: message.seq,
        subject: message.subject,
        undecodable: { code: decode.code, message: decode.message, bytes: message.data.byteLength },
        ...(eventId === undefined ? {} : { eventId }),
      };
      return { text: JSON.stringify(body), undecodable: true };
    }
    const id = eventId === undefined ? '' : ` eventId=${eventId}`;
    return {
      text: `seq=${message.seq} undecodable (${message.data.byteLength} bytes)${id}: ${decode.message}`,
      undecodable: true,
    };
  }
  if (json) {
    // The wire form (byte payloads stay base64), plus where it sits in the stream.
    const wire: unknown = JSON.parse(new TextDecoder().decode(message.data));
    return {
      text: JSON.stringify({ sequence: message.seq, subject: message.subject, envelope: wire }),
      undecodable: false,
    };
  }
  const payload =
    envelope.payload instanceof Uint8Array
      ? `<${envelope.payload.byteLength} bytes>`
      : clip(JSON.stringify(envelope.payload));
  const extra = [
    envelope.traceId === undefined ? '' : ` traceId=${envelope.traceId}`,
    envelope.correlationId === undefined ? '' : ` correlationId=${envelope.correlationId}`,
  ].join('');
  return {
    text:
      `seq=${message.seq} eventId=${envelope.eventId} aggregateId=${envelope.aggregateId} ` +
      `eventType=${envelope.eventType} eventVersion=${envelope.eventVersion} ` +
      `timestamp=${envelope.timestamp}${extra} payload=${payload}`,
    undecodable: false,
  };
}

export function tailCommand(argv: readonly string[], writer: Writer, signal?: AbortSignal): Promise<number> {
  const options = parseTailArgs(argv);
  return runTail(signal === undefined ? options : { ...options, signal }, writer);
}
