/**
 * What a pull loop does when its pulls go unanswered or the broker says the
 * consumer is gone: check, and recreate what someone deleted (loudly).
 *
 * Consumer still there → pull again; consumer gone → recreate it from the
 * first unsettled sequence; stream gone → recreate the stream and start over.
 */
import type { JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from '../../core/logger.ts';
import type { MessageKind } from '../../core/transport.ts';
import { pause } from '../../core/waiting.ts';
import type { AckTracker } from './ack-tracker.ts';
import { type ConsumerSpec, consumerInfo, ensureConsumer } from './consumer.ts';
import type { StreamRegistry } from './streams.ts';

/** Pause before recreating a consumer or stream someone deleted. */
const RECREATE_DELAY_MS = 1_000;

export interface RecoveryTarget {
  readonly jsm: JetStreamManager;
  readonly streams: StreamRegistry;
  readonly logger: Logger;
  readonly spec: ConsumerSpec;
  readonly topic: string;
  readonly kind: MessageKind;
  readonly tracker: AckTracker;
  /** The creation time of the stream the loop's sequences belong to. */
  streamCreated: string;
}

export type Recovery =
  | { readonly outcome: 'present' }
  | { readonly outcome: 'recreated'; readonly what: string };

/** Consumer there → nothing to do; consumer or stream gone → recreate it. */
export async function recoverConsumer(target: RecoveryTarget, signal: AbortSignal): Promise<Recovery> {
  const { jsm, streams, logger, spec, tracker } = target;
  if ((await consumerInfo(jsm, spec)) !== undefined) return { outcome: 'present' }; // the pull was lost: pull again
  // nats-server 2.9 answers "Consumer Deleted" while it is still removing the
  // deleted consumer's (or stream's) files: recreating at once races with that
  // ("directory not empty", "error opening msg block file"). Let it finish.
  await pause(RECREATE_DELAY_MS, signal);
  if (signal.aborted) return { outcome: 'present' };
  if ((await consumerInfo(jsm, spec)) !== undefined) return { outcome: 'present' }; // another member recreated it
  const stream = await streams.info(spec.stream);
  let startSequence: number | undefined;
  let what: string;
  if (stream === undefined) {
    const handle = await streams.recreate(target.topic, target.kind);
    target.streamCreated = handle.created;
    tracker.reset();
    what = `stream ${spec.stream} was deleted; recreated it and consumer ${spec.durable} from the start`;
  } else if (stream.created !== target.streamCreated) {
    target.streamCreated = stream.created;
    tracker.reset();
    what = `stream ${spec.stream} was recreated by someone else; recreated consumer ${spec.durable} from the start`;
  } else {
    startSequence = tracker.resumeSequence();
    what = `consumer ${spec.durable} on stream ${spec.stream} was deleted; recreated it from sequence ${startSequence}`;
  }
  await ensureConsumer(jsm, spec, logger, startSequence);
  return { outcome: 'recreated', what };
}
