/**
 * Sends a failed (or parked) message to its dead-letter topic and resolves on
 * the broker ack, so the pool terms the original only once the copy is
 * durable. What the copy holds is built in dead-letter.ts.
 */
import type { MessageKind, ParkingLot, PublishOutcome, Transport } from '../core/transport.ts';
import type { DeadLetterRequest } from '../dispatch/types.ts';
import { deadLetterMessage } from './dead-letter.ts';
import type { PublishWindow } from './publish-window.ts';

export interface DeadLetterParts {
  readonly transport: Transport;
  readonly window: PublishWindow;
  /** The bus's topic preparation: undefined when the topic is known to exist. */
  readonly ensureTopic: (topic: string, kind: MessageKind) => Promise<void> | undefined;
}

/** Makes a failed (or parked) message durable on its dead-letter topic; resolves on the broker ack. */
export async function sendDeadLetter(
  parts: DeadLetterParts,
  topic: string,
  group: string,
  deadLetterTopic: string,
  request: DeadLetterRequest,
  parkingLot: ParkingLot | undefined,
): Promise<void> {
  // Parked with the broker before the dead letter, so no restart (or other
  // member) can run the aggregate's newer events once this one is given up on.
  if (parkingLot !== undefined && request.disposition === 'dead-letter' && request.task.key !== undefined) {
    await parkingLot.park(request.key, request.error.message || request.error.name);
  }
  const message = deadLetterMessage(
    topic,
    group,
    deadLetterTopic,
    request,
    parts.transport.maxPayloadBytes,
    parts.transport.ownedHeaders,
  );
  const preparing = parts.ensureTopic(message.topic, 'envelope');
  if (preparing) await preparing;
  parts.window.forceAcquire();
  const outcome = await new Promise<PublishOutcome>((resolve) => parts.transport.send(message, resolve));
  parts.window.release();
  if (!outcome.ok) throw outcome.error;
}
