/**
 * The small compare-and-set store a consumer group coordinates through
 * (src/transports/nats/README.md, Partitioned consumer groups: members and leases in a JetStream KV bucket). Every write is
 * conditional on the revision the writer last saw, so two members that briefly
 * disagree about the group can never both win a claim (design checklist, case
 * 5): ownership is decided by the store, not by each member's view.
 *
 * Implementations: JetStream KV (transports/nats/kv-lease-store.ts) and the
 * in-process one below (memory transport, unit tests).
 */

export interface StoredEntry {
  readonly value: string;
  /** Changes on every write; a claim or renewal names the revision it replaces. */
  readonly revision: number;
}

export interface LeaseStore {
  /** Every live entry whose key starts with `prefix`. */
  list(prefix: string): Promise<Map<string, StoredEntry>>;
  /** Writes a key that does not exist (or was removed); undefined when it exists. */
  create(key: string, value: string): Promise<number | undefined>;
  /** Replaces the entry at `revision`; undefined when someone wrote it since. */
  update(key: string, value: string, revision: number): Promise<number | undefined>;
  /** Removes the entry if it is still at `revision`; false when it was not. */
  remove(key: string, revision: number): Promise<boolean>;
}

/** In-process store: the memory transport's groups, and tests of the coordinator. */
export class MemoryLeaseStore implements LeaseStore {
  readonly #entries = new Map<string, StoredEntry>();
  #revision = 0;

  list(prefix: string): Promise<Map<string, StoredEntry>> {
    const out = new Map<string, StoredEntry>();
    for (const [key, entry] of this.#entries) if (key.startsWith(prefix)) out.set(key, entry);
    return Promise.resolve(out);
  }

  create(key: string, value: string): Promise<number | undefined> {
    if (this.#entries.has(key)) return Promise.resolve(undefined);
    return Promise.resolve(this.#write(key, value));
  }

  update(key: string, value: string, revision: number): Promise<number | undefined> {
    if (this.#entries.get(key)?.revision !== revision) return Promise.resolve(undefined);
    return Promise.resolve(this.#write(key, value));
  }

  remove(key: string, revision: number): Promise<boolean> {
    if (this.#entries.get(key)?.revision !== revision) return Promise.resolve(false);
    this.#entries.delete(key);
    return Promise.resolve(true);
  }

  #write(key: string, value: string): number {
    const revision = ++this.#revision;
    this.#entries.set(key, { value, revision });
    return revision;
  }
}
