/**
 * The park policy's state on JetStream (issue 12): which aggregates a group
 * has parked lives in the KV bucket `<prefix>_PARKED` (file storage, history
 * 1), key `<stream>.<durable>.<base64url(aggregate)>`, value the reason; the
 * parked events themselves are in the `<topic>.PARKED` stream. Both survive a
 * restart of the consumer (and of the server), and every member of the group
 * reads the same state when it subscribes, and follows the other members'
 * changes (and resume requests, see resume-requests.ts) through a watch.
 */
import { type JetStreamManager, jetstream } from '@nats-io/jetstream';
import { type KV, Kvm, KvWatchInclude } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { Headers } from '../../core/envelope.ts';
import type { ParkedEntry, ParkingLot, ParkingLotWatcher } from '../../core/transport.ts';
import { pause } from '../../core/waiting.ts';
import { wrapApiError } from './errors.ts';
import {
  answerToken,
  classifyKey,
  encodeKeyToken,
  groupPrefix,
  parseRequest,
  requestResume,
  requestToken,
} from './resume-requests.ts';
import type { StreamRegistry } from './streams.ts';

export async function openParkedBucket(nc: NatsConnection, bucket: string, replicas: number): Promise<KV> {
  try {
    return await new Kvm(nc).create(bucket, {
      history: 1,
      replicas,
      description: 'jxt-eventbus aggregates parked by the park policy, per consumer group',
    });
  } catch (error) {
    throw wrapApiError(`Failed to open the parked-aggregates bucket ${bucket}`, error);
  }
}

export interface NatsParkingLotParts {
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  readonly kv: KV;
  readonly streams: StreamRegistry;
  readonly topic: string;
  readonly group: string;
  /** The group's durable name (the KV key's middle part). */
  readonly durable: string;
  /** This bus's member id: names who answered a resume request. */
  readonly member: string;
}

/** Writes of this process to one key, not yet seen on the watch (they are not reported back). */
class OwnWrites {
  readonly #pending = new Map<string, number>();
  add(key: string): void {
    this.#pending.set(key, (this.#pending.get(key) ?? 0) + 1);
  }
  undo(key: string): void {
    this.take(key);
  }
  /** True (and forgotten) when the next write seen on `key` is one of ours. */
  take(key: string): boolean {
    const count = this.#pending.get(key) ?? 0;
    if (count === 0) return false;
    if (count === 1) this.#pending.delete(key);
    else this.#pending.set(key, count - 1);
    return true;
  }
}

export function natsParkingLot(parts: NatsParkingLotParts): ParkingLot {
  const { nc, jsm, kv, streams, topic, group, durable, member } = parts;
  const parkedTopic = `${topic}.PARKED`;
  const prefix = groupPrefix(streams.nameFor(topic), durable);
  const ownPuts = new OwnWrites();
  const ownDeletes = new OwnWrites();
  return {
    async list() {
      const out = new Map<string, string>();
      const keys: string[] = [];
      // One token after the prefix: parked aggregates (requests and answers have two).
      for await (const key of await kv.keys(`${prefix}*`)) keys.push(key);
      for (const key of keys) {
        const entry = await kv.get(key);
        const found = classifyKey(key.slice(prefix.length));
        if (entry !== null && entry.operation === 'PUT' && found.kind === 'parked')
          out.set(found.key, entry.string());
      }
      return out;
    },
    async park(key, reason) {
      ownPuts.add(key);
      try {
        await kv.put(`${prefix}${encodeKeyToken(key)}`, reason.slice(0, 1024));
      } catch (error) {
        ownPuts.undo(key);
        throw error;
      }
    },
    async unpark(key) {
      ownDeletes.add(key);
      try {
        await kv.delete(`${prefix}${encodeKeyToken(key)}`);
      } catch (error) {
        ownDeletes.undo(key);
        throw error;
      }
    },
    async watch(watcher: ParkingLotWatcher) {
      return watchGroup(kv, prefix, watcher, ownPuts, ownDeletes);
    },
    async answer(answer) {
      const token = encodeKeyToken(answer.key);
      await kv.put(`${prefix}${answerToken}.${token}`, JSON.stringify({ ...answer, member }));
      if (answer.state === 'done') await kv.delete(`${prefix}${requestToken}.${token}`);
    },
    requestResume(key, timeoutMs, onAnswer) {
      return requestResume(kv, prefix, key, timeoutMs, onAnswer);
    },
    async read(key) {
      const stream = (await streams.ensure(parkedTopic, 'envelope')).name;
      const info = await jsm.streams.info(stream);
      const last = info.state.last_seq;
      const out: ParkedEntry[] = [];
      if (info.state.messages === 0) return out;
      const consumer = await jetstream(nc).consumers.get(stream);
      for (let seen = info.state.first_seq - 1; seen < last; ) {
        const batch = await consumer.fetch({ max_messages: 1_000, expires: 2_000 });
        let got = 0;
        for await (const m of batch) {
          got++;
          seen = m.seq;
          let headers: Record<string, string>;
          try {
            headers = {};
            for (const [name, values] of m.headers ?? [])
              if (values[0] !== undefined) headers[name] = values[0];
          } catch {
            continue; // unreadable headers: not one of ours
          }
          if (headers[Headers.deadLetterGroup] !== group) continue;
          if (headers[Headers.deadLetterKey] !== key) continue;
          out.push({ sequence: m.seq, data: m.data, headers });
          if (m.seq >= last) break;
        }
        if (got === 0) break; // nothing more within expires: the rest was deleted meanwhile
      }
      return out;
    },
    async remove(entry) {
      const stream = streams.nameFor(parkedTopic);
      try {
        await jsm.streams.deleteMessage(stream, entry.sequence);
      } catch (error) {
        if (/no message found/i.test(String(error))) return; // already gone (a rerun)
        throw error;
      }
    },
  };
}

/**
 * Follows one group's keys from now on (updates only: the current state comes
 * from `list()`). The watch is an ordered consumer that survives reconnects;
 * should it end anyway, it is reopened after the last revision seen, so no
 * change is missed.
 */
async function watchGroup(
  kv: KV,
  prefix: string,
  watcher: ParkingLotWatcher,
  ownPuts: OwnWrites,
  ownDeletes: OwnWrites,
): Promise<{ stop(): Promise<void> }> {
  let stopped = false;
  // Ends the pause before a reopen at once when the watch is stopped.
  const stopping = new AbortController();
  let lastRevision = 0;
  const open = () =>
    kv.watch({
      key: `${prefix}>`,
      ...(lastRevision === 0
        ? { include: KvWatchInclude.UpdatesOnly }
        : { resumeFromRevision: lastRevision + 1 }),
    });
  let iterator = await open();
  const run = async (): Promise<void> => {
    while (!stopped) {
      try {
        for await (const entry of iterator) {
          lastRevision = entry.revision;
          const found = classifyKey(entry.key.slice(prefix.length));
          try {
            if (found.kind === 'parked') {
              if (entry.operation === 'PUT') {
                if (!ownPuts.take(found.key)) watcher.changed(found.key, true, entry.string());
              } else if (!ownDeletes.take(found.key)) {
                watcher.changed(found.key, false, '');
              }
            } else if (found.kind === 'request' && entry.operation === 'PUT') {
              const request = parseRequest(entry.string(), found.key);
              if (request !== undefined) watcher.resumeRequested(request);
            }
          } catch {
            // The watcher's own problem (it logs): the watch goes on.
          }
        }
      } catch {
        // Ended with an error: reopened below.
      }
      if (stopped) return;
      await pause(500, stopping.signal);
      try {
        if (!stopped) iterator = await open();
      } catch {
        // Not reachable now: the loop tries again.
      }
    }
  };
  const running = run();
  return {
    async stop() {
      stopped = true;
      stopping.abort();
      iterator.stop();
      await running;
    },
  };
}
