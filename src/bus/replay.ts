/**
 * Parked events replayed on resume: each becomes an inbound message whose
 * settlement deletes it from `<topic>.PARKED` (acked, or termed because it was
 * dead-lettered or parked again: durable elsewhere). A nak (drain deadline)
 * leaves it parked; the aggregate stays parked with the broker and a later
 * resume replays it again.
 */
import { Headers } from '../core/envelope.ts';
import { toError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { InboundMessage, ParkedEntry, ParkingLot } from '../core/transport.ts';

export interface Replay {
  readonly messages: InboundMessage[];
  /** Resolves when every replayed message was settled (and deleted where done). */
  readonly settled: Promise<void>;
}

export function replayMessages(
  topic: string,
  entries: readonly ParkedEntry[],
  lot: ParkingLot | undefined,
  logger: Logger,
): Replay {
  let open = entries.length;
  const { promise, resolve } = Promise.withResolvers<void>();
  if (open === 0) resolve();
  const messages = entries.map((entry) => {
    let settled = false;
    const settle = (done: boolean): void => {
      if (settled) return;
      settled = true;
      const removing = done && lot !== undefined ? lot.remove(entry) : Promise.resolve();
      removing
        .catch((error: unknown) => {
          logger.error(
            { topic, sequence: entry.sequence, err: toError(error) },
            'Deleting a replayed parked event failed; a later resume may replay it again',
          );
        })
        .finally(() => {
          if (--open === 0) resolve();
        });
    };
    const headers = { ...entry.headers, [Headers.deadLetterReplayOf]: String(entry.sequence) };
    const message: InboundMessage = {
      topic,
      data: entry.data,
      headers,
      key: entry.headers[Headers.deadLetterKey],
      deliveryCount: 1,
      sequence: undefined,
      ack: () => settle(true),
      term: () => settle(true),
      nak: () => settle(false),
      working: () => {},
    };
    return message;
  });
  return { messages, settled: promise };
}
