/**
 * Reading a dead letter: the original envelope body plus the X-DLQ-* headers
 * the bus adds when it dead-letters (or parks) a message. A dead letter of
 * malformed bytes has no envelope; its fields then come from the headers.
 */
import type { MsgHdrs } from '@nats-io/transport-node';
import { decodeEnvelope, type Envelope, Headers } from '../core/envelope.ts';
import { isEventBusError } from '../core/errors.ts';

/** `<topic>.DLQ`, or `<topic>.PARKED` for the park policy's parking place. */
export function deadLetterTopic(topic: string, parked: boolean): string {
  return `${topic}.${parked ? 'PARKED' : 'DLQ'}`;
}

export interface StoredMessage {
  readonly seq: number;
  readonly headers: MsgHdrs | undefined;
  readonly data: Uint8Array;
  /** When the dead-letter stream stored it. */
  readonly time: Date;
}

export interface DeadLetter {
  readonly sequence: number;
  readonly eventId: string | undefined;
  readonly aggregateId: string | undefined;
  readonly eventType: string | undefined;
  readonly eventVersion: number | undefined;
  readonly reason: string | undefined;
  readonly attempts: number | undefined;
  readonly originalTopic: string | undefined;
  readonly originalSequence: number | undefined;
  readonly policy: string | undefined;
  /** The consumer group that dead-lettered it, when its message id tells (see groupOf). */
  readonly group: string | undefined;
  readonly deadLetteredAt: string;
  /** The decoded body, or undefined when it is not a valid envelope. */
  readonly envelope: Envelope | undefined;
  /** Why the body is not an envelope. */
  readonly decodeError: string | undefined;
}

function header(headers: MsgHdrs | undefined, name: string): string | undefined {
  const value = headers?.get(name);
  return value === undefined || value === '' ? undefined : value;
}

function integer(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d+$/.test(value)) return undefined;
  return Number(value);
}

/**
 * Dead letters carry their group in `X-DLQ-Group`; ones written before that
 * header existed had `Nats-Msg-Id` = `<topic>:<group>:<original sequence or
 * eventId>:dlq|parked`, so the group is read from there as a fallback.
 */
function groupOf(msgId: string | undefined, topic: string | undefined, identities: readonly string[]) {
  if (msgId === undefined || topic === undefined || !msgId.startsWith(`${topic}:`)) return undefined;
  for (const identity of identities) {
    for (const kind of ['dlq', 'parked']) {
      const suffix = `:${identity}:${kind}`;
      if (msgId.endsWith(suffix) && msgId.length > topic.length + 1 + suffix.length) {
        return msgId.slice(topic.length + 1, msgId.length - suffix.length);
      }
    }
  }
  return undefined;
}

export function readDeadLetter(message: StoredMessage): DeadLetter {
  let envelope: Envelope | undefined;
  let decodeError: string | undefined;
  try {
    envelope = decodeEnvelope(message.data);
  } catch (error) {
    decodeError = isEventBusError(error) ? error.message : String(error);
  }
  const h = message.headers;
  const originalTopic = header(h, Headers.deadLetterTopic);
  const originalSequence = header(h, Headers.deadLetterSequence);
  const eventIdHeader = header(h, Headers.eventId);
  const identities = [originalSequence, eventIdHeader].filter((v): v is string => v !== undefined);
  return {
    sequence: message.seq,
    eventId: envelope?.eventId ?? eventIdHeader,
    aggregateId: envelope?.aggregateId ?? header(h, Headers.aggregateId),
    eventType: envelope?.eventType ?? header(h, Headers.eventType),
    eventVersion: envelope?.eventVersion ?? integer(header(h, Headers.eventVersion)),
    reason: header(h, Headers.deadLetterReason),
    attempts: integer(header(h, Headers.deadLetterAttempts)),
    originalTopic,
    originalSequence: integer(originalSequence),
    policy: header(h, Headers.deadLetterPolicy),
    group:
      header(h, Headers.deadLetterGroup) ?? groupOf(header(h, Headers.natsMsgId), originalTopic, identities),
    deadLetteredAt: message.time.toISOString(),
    envelope,
    decodeError,
  };
}

/**
 * The subject filter for reading dead letters from their stream: none when the
 * stream holds only the dead-letter topic (its partition subjects included:
 * dead letters are published to `<topic>.DLQ._P_.<n>`, which a filter on
 * `<topic>.DLQ` would miss, and nats-server 2.9 has no multi-subject filter);
 * the topic itself when the stream is shared with other subjects.
 */
export function deadLetterFilter(
  subjects: readonly string[] | undefined,
  source: string,
): string | undefined {
  const own = (subject: string): boolean => subject === source || subject.startsWith(`${source}._P_.`);
  return (subjects ?? []).every(own) ? undefined : source;
}
