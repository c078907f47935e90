/**
 * What becomes of a failed task: retried in place (holding its aggregate's
 * later tasks), or given up on. Giving up acks a raw message (at-most-once)
 * and otherwise ends in the dead letter. When that publish fails, the message
 * is not nak-ed (that let the aggregate's next event overtake it and could
 * loop for ever): it stays held, dead-lettering is retried with backoff, and
 * the aggregate waits, reported through a metric, the log and health.
 */
import { isEventBusError, toError } from '../core/errors.ts';
import type { ActorHost } from './actor.ts';
import { backoffDelay } from './backoff.ts';
import type { PoolTask, ResolvedPoolOptions } from './types.ts';

/** Whether a failed task is tried again: not after maxAttempts, and a raw failure or a non-retryable error only after a crash. */
export function shouldRetry(
  options: ResolvedPoolOptions,
  attempts: number,
  crashed: boolean,
  error: Error,
): boolean {
  if (attempts >= options.maxAttempts) return false;
  if (crashed) return true;
  if (options.kind === 'raw') return false; // at-most-once: never retried
  return !(isEventBusError(error) && !error.retryable);
}

/** The actor holding the task that is given up on. */
export interface GivingUp {
  readonly host: ActorHost;
  readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  readonly key: string;
  readonly attempts: number;
  /** performance.now() when the task's first attempt started. */
  readonly firstStartedAt: number;
  /** False once the actor let the task go (drain deadline: already nak-ed); then nothing is settled here. */
  current(): boolean;
  /** The task leaves the actor, settled. */
  release(): void;
  deadLetterFailing(failing: boolean): void;
  logFields(): Record<string, unknown>;
}

export async function giveUp(actor: GivingUp, task: PoolTask, error: Error): Promise<void> {
  const options = actor.host.options;
  const { key, attempts } = actor;
  const fields = { ...actor.logFields(), attempts, err: error };
  // A raw message that cannot even be read (a DecodeError) is dead-lettered
  // like an envelope: acking it would drop it without a trace.
  if (options.kind === 'raw' && !isInputError(error)) {
    actor.release();
    task.message.ack(); // at-most-once: a failed raw message is not redelivered
    options.metrics.rawFailure();
    options.logger.warn(fields, 'Raw message handler failed; message acknowledged (at-most-once)');
    return;
  }
  // Park before publishing, so this aggregate's next message cannot run even
  // if the dead-letter publish fails and this one comes back later.
  if (options.deadLetterPolicy === 'park') actor.host.park(key, error);
  for (let failures = 0; ; ) {
    let dlqError: unknown;
    try {
      await options.deadLetter({ task, key, error, attempts, disposition: 'dead-letter' });
      break;
    } catch (failure) {
      dlqError = failure;
    }
    if (!actor.current()) return; // drain deadline: already nak-ed
    failures++;
    actor.deadLetterFailing(true);
    options.metrics.deadLetterFailed();
    options.logger.error(
      { ...fields, dlqError: toError(dlqError), failures },
      'Dead-lettering failed; the message stays held (its aggregate waits) and dead-lettering is retried',
    );
    try {
      await actor.sleep(backoffDelay(failures, options.backoff), actor.host.stopSignal);
    } catch {
      // Aborted by the drain deadline, which also abandoned this task.
    }
    if (!actor.current()) return;
  }
  if (!actor.current()) return; // drain deadline: already nak-ed
  const seconds = (performance.now() - actor.firstStartedAt) / 1000;
  actor.release();
  const reason = isEventBusError(error) && !error.retryable ? 'non-retryable' : 'max-attempts';
  task.message.term(`dead-lettered after ${attempts} attempt(s): ${error.message}`);
  options.metrics.deadLettered(reason);
  options.metrics.messageProcessed(false, seconds);
  options.logger.warn(fields, 'Message dead-lettered');
}

/** Bad input (a body or headers that cannot be decoded): dead-lettered whatever the subscription kind. */
function isInputError(error: Error): boolean {
  return isEventBusError(error) && error.code === 'EVENTBUS_DECODE';
}
