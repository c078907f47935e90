/**
 * Reads a stream with an ephemeral *ordered* consumer (ack policy none, in
 * memory, deleted afterwards): it never touches a durable consumer group's
 * position. Used by `tail` and `dlq`.
 */
import { DeliverPolicy, type JetStreamClient, type JsMsg, type StreamInfo } from '@nats-io/jetstream';
import { wrapApiError } from '../transports/nats/errors.ts';
import { partitionWildcard } from '../transports/nats/partitions.ts';

function ownStream(stream: StreamInfo, topic: string): boolean {
  const subjects = stream.config.subjects ?? [];
  return subjects.length > 0 && subjects.every((s) => s === topic || s === partitionWildcard(topic));
}

/** Where to start: the first stored message, only messages stored from now on, or a stream sequence. */
export type StartAt = 'start' | 'new' | number;

export interface ReadOptions {
  /** The stream's info, read just before: its last sequence is the end for `untilEnd`. */
  readonly stream: StreamInfo;
  /** Only messages on this subject (the topic). */
  readonly subject?: string | undefined;
  readonly from: StartAt;
  /** Stop at the end of what the stream held when the read started. */
  readonly untilEnd?: boolean;
  /** Stop after this many messages. */
  readonly limit?: number;
  readonly signal?: AbortSignal;
  /** Called once the consumer exists: from here on, new messages will be read. */
  readonly onReady?: () => void;
}

export type StopReason = 'limit' | 'end' | 'aborted' | 'stopped';

export interface ReadResult {
  readonly count: number;
  readonly reason: StopReason;
}

/**
 * Calls `onMessage` for each message, one at a time (awaited), in stream order.
 * `onMessage` returning `false` stops the read.
 */
export async function readStream(
  js: JetStreamClient,
  options: ReadOptions,
  onMessage: (message: JsMsg) => unknown,
): Promise<ReadResult> {
  const { stream, from, limit, signal } = options;
  if (signal?.aborted) return { count: 0, reason: 'aborted' };
  const endSeq = stream.state.last_seq;
  if (
    options.untilEnd &&
    (stream.state.messages === 0 || from === 'new' || (typeof from === 'number' && from > endSeq))
  ) {
    return { count: 0, reason: 'end' };
  }
  if (limit !== undefined && limit <= 0) return { count: 0, reason: 'limit' };
  const start =
    from === 'start'
      ? { deliver_policy: DeliverPolicy.All }
      : from === 'new'
        ? { deliver_policy: DeliverPolicy.New }
        : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from };
  // A topic's own stream holds the topic and its partition subjects only: no
  // filter then (nats-server 2.9 takes one filter subject, and the topic's
  // events are spread over `<topic>._P_.<n>`).
  const own = options.subject === undefined || ownStream(stream, options.subject);
  let consumer: Awaited<ReturnType<JetStreamClient['consumers']['get']>>;
  try {
    consumer = await js.consumers.get(stream.config.name, {
      ...start,
      ...(own ? {} : { filter_subjects: options.subject }),
    });
  } catch (error) {
    throw wrapApiError(`Failed to create an ordered consumer on stream ${stream.config.name}`, error);
  }
  const messages = await consumer.consume({ max_messages: 256 });
  const abort = (): void => void messages.stop();
  signal?.addEventListener('abort', abort, { once: true });
  let count = 0;
  let reason: StopReason | undefined;
  try {
    options.onReady?.();
    if (options.untilEnd && (await consumer.info(true)).num_pending === 0) return { count, reason: 'end' };
    for await (const message of messages) {
      count++;
      if ((await onMessage(message)) === false) {
        reason = 'stopped';
        break;
      }
      if (limit !== undefined && count >= limit) {
        reason = 'limit';
        break;
      }
      if (options.untilEnd && (message.seq >= endSeq || message.info.pending === 0)) {
        reason = 'end';
        break;
      }
    }
    // The iterator ended by itself: aborted, or the connection closed under it.
    return { count, reason: reason ?? (signal?.aborted ? 'aborted' : 'stopped') };
  } finally {
    signal?.removeEventListener('abort', abort);
    await messages.close();
    // Deleting it now instead of letting it expire (inactive threshold) keeps `doctor` listings tidy.
    await consumer.delete().catch(() => {});
  }
}
