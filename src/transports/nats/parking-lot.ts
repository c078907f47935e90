/**
 * The park policy's state on JetStream (issue 12): which aggregates a group
 * has parked lives in the KV bucket `<prefix>_PARKED` (file storage, history
 * 1), key `<stream>.<durable>.<base64url(aggregate)>`, value the reason; the
 * parked events themselves are in the `<topic>.PARKED` stream. Both survive a
 * restart of the consumer (and of the server), and every member of the group
 * reads the same state when it subscribes.
 */
import { type JetStreamManager, jetstream } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { Headers } from '../../core/envelope.ts';
import type { ParkedEntry, ParkingLot } from '../../core/transport.ts';
import { wrapApiError } from './errors.ts';
import type { StreamRegistry } from './streams.ts';

function encodeKey(key: string): string {
  return Buffer.from(key, 'utf8').toString('base64url');
}

function decodeKey(encoded: string): string {
  return Buffer.from(encoded, 'base64url').toString('utf8');
}

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
}

export function natsParkingLot(parts: NatsParkingLotParts): ParkingLot {
  const { nc, jsm, kv, streams, topic, group, durable } = parts;
  const parkedTopic = `${topic}.PARKED`;
  const prefix = `${streams.nameFor(topic)}.${durable}.`;
  return {
    async list() {
      const out = new Map<string, string>();
      const keys: string[] = [];
      for await (const key of await kv.keys(`${prefix}>`)) keys.push(key);
      for (const key of keys) {
        const entry = await kv.get(key);
        if (entry !== null && entry.operation === 'PUT')
          out.set(decodeKey(key.slice(prefix.length)), entry.string());
      }
      return out;
    },
    async park(key, reason) {
      await kv.put(`${prefix}${encodeKey(key)}`, reason.slice(0, 1024));
    },
    async unpark(key) {
      await kv.delete(`${prefix}${encodeKey(key)}`);
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
