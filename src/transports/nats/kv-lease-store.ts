/**
 * The group coordination store on JetStream KV (src/transports/nats/README.md, Partitioned consumer groups): one bucket per
 * stream prefix, `<prefix>_GROUPS`, history 1. Keys age out after `ttlMs`
 * unless rewritten, so a member that died without cleaning up disappears on
 * its own (leases and heartbeats are rewritten every few hundred ms).
 * Compare-and-set comes from JetStream's expected-last-subject-sequence.
 */
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { LeaseStore, StoredEntry } from '../../groups/lease-store.ts';
import { apiErrorCode, wrapApiError } from './errors.ts';

/** JetStream: "wrong last sequence" — the compare-and-set lost. */
const WRONG_LAST_SEQUENCE = 10071;

function casLost(error: unknown): boolean {
  return apiErrorCode(error) === WRONG_LAST_SEQUENCE || /wrong last sequence/i.test(String(error));
}

export interface KvLeaseStoreOptions {
  readonly bucket: string;
  readonly replicas: number;
  readonly ttlMs: number;
}

export class KvLeaseStore implements LeaseStore {
  readonly #kv: KV;
  readonly #jsm: JetStreamManager;
  readonly #stream: string;
  readonly #subjectPrefix: string;

  private constructor(kv: KV, jsm: JetStreamManager, bucket: string) {
    this.#kv = kv;
    this.#jsm = jsm;
    this.#stream = `KV_${bucket}`;
    this.#subjectPrefix = `$KV.${bucket}.`;
  }

  static async open(nc: NatsConnection, options: KvLeaseStoreOptions): Promise<KvLeaseStore> {
    try {
      const kv = await new Kvm(nc).create(options.bucket, {
        history: 1,
        replicas: options.replicas,
        ttl: options.ttlMs,
        description: 'jxt-eventbus consumer-group members and partition leases',
      });
      return new KvLeaseStore(kv, await jetstreamManager(nc), options.bucket);
    } catch (error) {
      throw wrapApiError(`Failed to open the group coordination bucket ${options.bucket}`, error);
    }
  }

  /**
   * Keys come from the stream's per-subject state (one request), not from
   * `kv.keys()`: that iterates an ordered consumer, which was seen to hang past
   * a JetStream cluster's leader election.
   */
  async list(prefix: string): Promise<Map<string, StoredEntry>> {
    const out = new Map<string, StoredEntry>();
    const info = await this.#jsm.streams.info(this.#stream, {
      subjects_filter: `${this.#subjectPrefix}${prefix}>`,
    });
    const keys = Object.keys(info.state.subjects ?? {}).map((subject) =>
      subject.slice(this.#subjectPrefix.length),
    );
    await Promise.all(
      keys.map(async (key) => {
        const entry = await this.#kv.get(key);
        if (entry !== null && entry.operation === 'PUT') {
          out.set(key, { value: entry.string(), revision: entry.revision });
        }
      }),
    );
    return out;
  }

  async create(key: string, value: string): Promise<number | undefined> {
    try {
      return await this.#kv.create(key, value);
    } catch (error) {
      if (casLost(error) || /exists/i.test(String(error))) return undefined;
      throw error;
    }
  }

  async update(key: string, value: string, revision: number): Promise<number | undefined> {
    try {
      return await this.#kv.update(key, value, revision);
    } catch (error) {
      if (casLost(error)) return undefined;
      throw error;
    }
  }

  async remove(key: string, revision: number): Promise<boolean> {
    try {
      await this.#kv.delete(key, { previousSeq: revision });
      return true;
    } catch (error) {
      if (casLost(error)) return false;
      throw error;
    }
  }
}
