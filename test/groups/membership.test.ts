import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { silentLogger } from '../../src/core/logger.ts';
import { type LeaseStore, MemoryLeaseStore, type StoredEntry } from '../../src/groups/lease-store.ts';
import { GroupMembership, type LaneOwnership } from '../../src/groups/membership.ts';
import { pollUntil } from '../../src/testing/waiters.ts';

const LANES = Array.from({ length: 17 }, (_, i) => `p${i}`);

interface Member {
  readonly membership: GroupMembership;
  readonly owned: Map<string, LaneOwnership>;
  readonly events: string[];
}

const members: Member[] = [];

function member(store: LeaseStore, id: string, leaseMs = 400, lanes = LANES, now?: () => number): Member {
  const owned = new Map<string, LaneOwnership>();
  const events: string[] = [];
  const membership = new GroupMembership({
    store,
    prefix: 'S.g',
    memberId: id,
    lanes,
    leaseMs,
    logger: silentLogger,
    ...(now === undefined ? {} : { now }),
    hooks: {
      acquired: (o) => {
        owned.set(o.lane, o);
        events.push(`acquired ${o.lane}`);
      },
      release: async (lane) => {
        owned.delete(lane);
        events.push(`released ${lane}`);
      },
      lost: (lane) => {
        owned.delete(lane);
        events.push(`lost ${lane}`);
      },
    },
  });
  const m = { membership, owned, events };
  members.push(m);
  membership.start();
  return m;
}

/** Polls (the code under test works on its own timers), through the one shared poller. */
const until = (condition: () => boolean, what: string) => pollUntil(condition, { what, intervalMs: 10 });

/** Every lane has exactly one member that may start work on it. */
function exclusive(all: Member[]): boolean {
  for (const lane of LANES) {
    const starters = all.filter((m) => m.owned.get(lane)?.mayStart() === true).length;
    if (starters !== 1) return false;
  }
  return true;
}

/** A store whose calls hang while `blocked` (a member cut off from the KV). */
class CuttableStore implements LeaseStore {
  blocked = false;
  readonly #inner: LeaseStore;
  constructor(inner: LeaseStore) {
    this.#inner = inner;
  }
  #gate<T>(call: () => Promise<T>): Promise<T> {
    return this.blocked ? new Promise<T>(() => {}) : call();
  }
  list(prefix: string): Promise<Map<string, StoredEntry>> {
    return this.#gate(() => this.#inner.list(prefix));
  }
  create(key: string, value: string): Promise<number | undefined> {
    return this.#gate(() => this.#inner.create(key, value));
  }
  update(key: string, value: string, revision: number): Promise<number | undefined> {
    return this.#gate(() => this.#inner.update(key, value, revision));
  }
  remove(key: string, revision: number): Promise<boolean> {
    return this.#gate(() => this.#inner.remove(key, revision));
  }
}

/** A store that holds lane-lease renewals back while `holding`, then lets them succeed late. */
class LateReplyStore extends CuttableStore {
  holding = false;
  readonly held: Array<() => void> = [];
  override update(key: string, value: string, revision: number): Promise<number | undefined> {
    const call = () => super.update(key, value, revision);
    if (!this.holding || !key.includes('.p.')) return call();
    return new Promise((resolve, reject) => {
      this.held.push(() => call().then(resolve, reject));
    });
  }
  release(): void {
    this.holding = false;
    for (const reply of this.held.splice(0)) reply();
  }
}

afterEach(async () => {
  for (const m of members.splice(0)) await m.membership.close();
});

describe('group membership (partition leases)', () => {
  test('one member owns every lane; a second joins and they split 9/8, never sharing a lane', async () => {
    const store = new MemoryLeaseStore();
    const a = member(store, 'a');
    await until(() => a.owned.size === LANES.length, 'a owns all 17');
    const b = member(store, 'b');
    let overlapSeen = false;
    await until(() => {
      for (const lane of LANES) {
        if (a.owned.get(lane)?.mayStart() && b.owned.get(lane)?.mayStart()) overlapSeen = true;
      }
      return a.owned.size === 9 && b.owned.size === 8 && exclusive([a, b]);
    }, 'a 9 and b 8 lanes');
    assert.equal(overlapSeen, false);
    assert.ok(
      a.events.some((e) => e.startsWith('released')),
      'a handed lanes off gracefully',
    );
    assert.ok(!a.events.some((e) => e.startsWith('lost')));
  });

  test('a member that closes hands its lanes over at once (no waiting for expiry)', async () => {
    const store = new MemoryLeaseStore();
    const a = member(store, 'a', 60_000);
    const b = member(store, 'b', 60_000);
    await until(() => a.owned.size + b.owned.size === LANES.length && exclusive([a, b]), 'split');
    await a.membership.close();
    // With a 60 s lease, only a release (not expiry) lets b have them within the 10 s bound.
    await until(() => b.owned.size === LANES.length, 'b owns all 17');
  });

  test('a member cut off from the store stops itself before anyone takes its lanes over', async () => {
    const inner = new MemoryLeaseStore();
    const cut = new CuttableStore(inner);
    const a = member(cut, 'a');
    await until(() => a.owned.size === LANES.length, 'a owns all');
    const held = [...a.owned.values()];
    const b = member(inner, 'b');
    await until(() => b.owned.size > 0 && a.owned.size < LANES.length, 'b got some lanes by handoff');
    cut.blocked = true;
    const violations: string[] = [];
    const check = setInterval(() => {
      for (const [lane, o] of b.owned) {
        const old = held.find((h) => h.lane === lane);
        if (old !== undefined && (old.mayStart() || old.stillOwned()) && o.mayStart()) violations.push(lane);
      }
    }, 1);
    try {
      await until(() => b.owned.size === LANES.length, 'b took every lane over after expiry');
    } finally {
      clearInterval(check);
    }
    assert.deepEqual(violations, [], 'a lane had two owners');
    for (const o of held) assert.equal(o.stillOwned(), false);
  });

  test('a lapsed lease is never renewed silently: the lane is dropped and claimed anew (new epoch)', async () => {
    const inner = new MemoryLeaseStore();
    const cut = new CuttableStore(inner);
    const a = member(cut, 'a', 300, ['p0']);
    await until(() => a.owned.size === 1, 'a owns p0');
    const first = a.owned.get('p0') as LaneOwnership;
    cut.blocked = true;
    await until(() => !first.stillOwned(), 'the lease ran out on a’s own clock');
    cut.blocked = false;
    await until(() => a.events.includes('lost p0'), 'a dropped the lapsed lane');
    await until(() => a.owned.get('p0') !== undefined && a.owned.get('p0') !== first, 'claimed again');
    assert.ok((a.owned.get('p0') as LaneOwnership).epoch > first.epoch);
  });

  test('a renewal sent before the lapse and answered after it does not revive the lane', async () => {
    // Our clock is in the test's hands; the store answers only when the test says.
    let clock = 0;
    const store = new LateReplyStore(new MemoryLeaseStore());
    const a = member(store, 'a', 5_000, ['p0'], () => clock);
    await until(() => a.owned.size === 1, 'a owns p0');
    const first = a.owned.get('p0') as LaneOwnership;
    // validUntil = 0 + 5000 − 1000 margin. The next renewal is sent at 3,900 and held.
    clock = 3_900;
    store.holding = true;
    await until(() => store.held.length > 0, 'a renewal is in flight');
    clock = 4_500;
    // What the pool sees meanwhile: the lane is not ours, queued work is let go.
    assert.equal(first.mayStart(), false);
    store.release();
    await until(() => a.events.includes('lost p0'), 'a dropped the lane after the late reply');
    // Had the reply revived it (valid until 3,900 + 4,000), successors of what
    // was let go would start before it: it stays dead, and a new epoch rewinds.
    assert.equal(first.mayStart(), false);
    assert.equal(first.stillOwned(), false);
    await until(() => a.owned.get('p0') !== undefined && a.owned.get('p0') !== first, 'claimed again');
    assert.ok((a.owned.get('p0') as LaneOwnership).epoch > first.epoch);
  });
});
