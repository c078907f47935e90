/**
 * A consumer-group member in its own process, for the Kafka fault tests that
 * kill processes (sigkill.fault.ts). Minimal on purpose: the shared kit
 * (test/harness/members.ts) is being written on another branch.
 *
 *   node member-child.ts <brokers,csv> <topic> <group> <handlerMs>
 *
 * stdout, one line each: `ready` once subscribed, then `H <eventId> <aggregateId> <index>`
 * for every event a handler finished (written synchronously before the ack,
 * so a SIGKILL never loses a line the handler wrote). SIGTERM closes the bus
 * gracefully and exits 0.
 */
import { writeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Envelope } from '../../../src/index.ts';
import { type EventPayload, kafkaBus } from './fault-kit.ts';

const [brokers = '', topic = '', group = '', handlerMs = '1'] = process.argv.slice(2);
const delay = Number(handlerMs);
const line = (text: string): void => {
  writeSync(1, `${text}\n`);
};

const { bus } = await kafkaBus(brokers.split(','), 'member');
await bus.subscribeEnvelope(
  topic,
  async (env: Envelope<EventPayload>) => {
    if (delay > 0) await sleep(delay);
    line(`H ${env.eventId} ${env.aggregateId} ${env.payload.index}`);
  },
  { group },
);
line('ready');
process.once('SIGTERM', () => {
  bus.close({ timeoutMs: 5_000 }).then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
