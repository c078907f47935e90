/**
 * One member of a partitioned consumer group (README.md, Ordering across the members of a group; issue 9): claims,
 * renews and hands off partition leases ("lanes") through a LeaseStore, so
 * that every lane has at most one member starting handlers at any time.
 *
 * Safety, not liveness, is the point of the rules below:
 * - A claim or renewal is a compare-and-set on the revision last seen (split
 *   views cannot both win).
 * - This member's own lease is valid until (when its last successful renewal
 *   was SENT) + leaseMs − margin, on this process's monotonic clock. Another
 *   member treats the lease as expired only after it saw the same revision
 *   unchanged for leaseMs on ITS monotonic clock, and it first saw that
 *   revision after it was written, i.e. after we sent it. So a member that is
 *   paused (SIGSTOP, a blocked event loop, a lost network) stops itself before
 *   anyone may take over, without comparing clocks across machines.
 * - A handoff is fenced: the old owner stops starting handlers, keeps renewing
 *   while its in-flight work drains, and only then removes the lease; the new
 *   owner claims after that removal (or after expiry when the old one died).
 * - A lease that lapsed (this process was paused past it) is never silently
 *   renewed: the lane is dropped locally and claimed again like any other, so
 *   its consumer is rewound and nothing that was let go while paused is lost.
 *   That holds also when a renewal SENT before the lapse succeeds after it
 *   (a busy connection or event loop): once our clock passed the lease, the
 *   pool may already have let queued messages of the lane go unrun; reviving
 *   the lane would start their successors first (their own redelivery comes
 *   later), so a lapse is final for that ownership (see Ownership.#live).
 *
 * Balance: live members (heartbeat keys whose revision keeps changing) sorted
 * by id; each gets floor or ceil of lanes/members. A member releases its
 * excess only after the member list was the same on two consecutive ticks
 * (a rolling deploy does not move every lane on every start), and claims free
 * or expired lanes whenever it is below its share.
 */
import type { Logger } from '../core/logger.ts';
import { withTimeout } from '../core/waiting.ts';
import { type GroupMetrics, noopGroup } from '../metrics/metrics.ts';
import type { LeaseStore, StoredEntry } from './lease-store.ts';
import { type LaneOwnership, Ownership } from './ownership.ts';

export type { LaneOwnership } from './ownership.ts';

export interface MembershipHooks {
  /** This member owns `lane` now: start consuming it. */
  acquired(ownership: LaneOwnership): void;
  /** Graceful handoff: stop intake, let in-flight work finish (bounded), settle the rest. */
  release(lane: string): Promise<void>;
  /** Ownership ended without a handoff (taken over, or lapsed while paused): stop at once. */
  lost(lane: string, reason: string): void;
}

export interface MembershipOptions {
  readonly store: LeaseStore;
  /** Key prefix of this group: `<stream>.<group>`. */
  readonly prefix: string;
  readonly memberId: string;
  readonly lanes: readonly string[];
  readonly leaseMs: number;
  readonly hooks: MembershipHooks;
  readonly logger: Logger;
  readonly metrics?: GroupMetrics;
  /** Test seam: monotonic milliseconds. */
  readonly now?: () => number;
}

export interface MembershipStats {
  readonly memberId: string;
  readonly members: readonly string[];
  readonly owned: readonly string[];
  readonly releasing: readonly string[];
  readonly claims: number;
  readonly handoffs: number;
  readonly leasesLost: number;
  /** Duration of the last graceful handoff (drain + release), ms. */
  readonly lastHandoffMs: number | undefined;
}

interface Seen {
  readonly revision: number;
  /** Our clock when we first saw this revision. */
  readonly since: number;
}

export class GroupMembership {
  readonly #o: MembershipOptions;
  readonly #metrics: GroupMetrics;
  readonly #now: () => number;
  readonly #renewMs: number;
  readonly #marginMs: number;
  readonly #owned = new Map<string, Ownership>();
  readonly #seen = new Map<string, Seen>();
  #memberRevision: number | undefined;
  #members: string[] = [];
  #previousMembers = '';
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> = Promise.resolve();
  #frozen = false;
  #closed = false;
  #claims = 0;
  #handoffs = 0;
  #leasesLost = 0;
  #lastHandoffMs: number | undefined;

  constructor(options: MembershipOptions) {
    // Every store call is bounded: a hung call must not hold up the tick that
    // notices a lapsed lease (the lease itself runs on our clock regardless).
    this.#o = { ...options, store: bounded(options.store, options.leaseMs) };
    this.#metrics = options.metrics ?? noopGroup;
    this.#now = options.now ?? (() => performance.now());
    // Renewal and rebalance tick: 1/5 of the lease, at most 1 s (joins and releases are seen quickly).
    this.#renewMs = Math.min(1_000, Math.max(50, Math.floor(options.leaseMs / 5)));
    this.#marginMs = Math.max(this.#renewMs, Math.floor(options.leaseMs / 5));
  }

  get memberId(): string {
    return this.#o.memberId;
  }

  /** Joins the group; resolves after the first claim round (this member holds its first lanes). */
  start(): Promise<void> {
    this.#ticking = this.#tick().catch((error: unknown) => {
      this.#o.logger.warn({ err: error, prefix: this.#o.prefix }, 'groups: coordination tick failed');
    });
    void this.#ticking.then(() => this.#schedule(this.#renewMs));
    return this.#ticking;
  }

  /** Bus closing: no more claims or handoffs; owned leases keep being renewed while the pool drains. */
  freeze(): void {
    this.#frozen = true;
  }

  /** Releases every lease and the membership (after the pool drained). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#frozen = true;
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#ticking;
    const { store, prefix, memberId, hooks, logger } = this.#o;
    await Promise.all(
      [...this.#owned.values()].map(async (o) => {
        o.state = 'releasing';
        await hooks.release(o.lane).catch(() => {});
        o.state = 'gone';
        this.#owned.delete(o.lane);
        await store.remove(this.#laneKey(o.lane), o.revision).catch((error: unknown) => {
          logger.debug({ err: error, lane: o.lane }, 'groups: could not remove a lease at close');
        });
      }),
    );
    if (this.#memberRevision !== undefined) {
      await store.remove(`${prefix}.m.${memberId}`, this.#memberRevision).catch(() => false);
    }
  }

  stats(): MembershipStats {
    const owned: string[] = [];
    const releasing: string[] = [];
    for (const o of this.#owned.values()) (o.state === 'owned' ? owned : releasing).push(o.lane);
    return {
      memberId: this.#o.memberId,
      members: [...this.#members],
      owned: owned.sort(),
      releasing: releasing.sort(),
      claims: this.#claims,
      handoffs: this.#handoffs,
      leasesLost: this.#leasesLost,
      lastHandoffMs: this.#lastHandoffMs,
    };
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#ticking = this.#tick().catch((error: unknown) => {
        this.#o.logger.warn({ err: error, prefix: this.#o.prefix }, 'groups: coordination tick failed');
      });
      void this.#ticking.then(() => this.#schedule(this.#renewMs));
    }, ms);
  }

  async #tick(): Promise<void> {
    const sentAt = this.#now();
    await Promise.all([this.#heartbeat(), ...[...this.#owned.values()].map((o) => this.#renew(o, sentAt))]);
    for (const o of [...this.#owned.values()]) {
      if (o.lapsed) this.#lose(o, 'the lease lapsed (this process was paused or the store unreachable)');
    }
    if (this.#frozen || this.#closed) return;
    const entries = await this.#o.store.list(`${this.#o.prefix}.`);
    this.#observe(entries);
    await this.#rebalance(entries);
    this.#metrics.owned(this.#owned.size);
  }

  async #heartbeat(): Promise<void> {
    const { store, prefix, memberId } = this.#o;
    const key = `${prefix}.m.${memberId}`;
    const value = JSON.stringify({ member: memberId });
    const revision =
      this.#memberRevision === undefined
        ? await store.create(key, value)
        : await store.update(key, value, this.#memberRevision);
    // Someone removed our key (it aged out while we were paused): write it anew.
    this.#memberRevision = revision ?? (await store.create(key, value).catch(() => undefined));
  }

  async #renew(o: Ownership, sentAt: number): Promise<void> {
    if (o.state === 'drained') {
      // Handoff finished: give the lane up; the next owner claims it at once.
      o.state = 'gone';
      this.#owned.delete(o.lane);
      await this.#o.store.remove(this.#laneKey(o.lane), o.revision).catch(() => false);
      return;
    }
    if (o.lapsed) return; // dropped below, never silently renewed
    let revision: number | undefined;
    try {
      revision = await this.#o.store.update(this.#laneKey(o.lane), this.#leaseValue(), o.revision);
    } catch (error) {
      // Unreachable store: the lease runs out on its own clock (case 6 of the checklist).
      this.#o.logger.debug({ err: error, lane: o.lane }, 'groups: lease renewal failed');
      return;
    }
    if (o.state === 'gone') return;
    if (revision === undefined) {
      this.#lose(o, 'another member holds the lease now');
      return;
    }
    // The key is ours at this revision either way (so dropping it below frees it at once).
    o.revision = revision;
    // Replied after our clock passed the lease: too late, the tick drops the lane.
    if (o.lapsed) return;
    o.validUntil = sentAt + this.#o.leaseMs - this.#marginMs;
  }

  #lose(o: Ownership, reason: string): void {
    if (o.state === 'gone') return;
    o.state = 'gone';
    this.#owned.delete(o.lane);
    this.#leasesLost++;
    this.#metrics.leaseLost();
    this.#o.logger.warn({ lane: o.lane, member: this.#o.memberId, reason }, `groups: lost lane ${o.lane}`);
    try {
      this.#o.hooks.lost(o.lane, reason);
    } catch (error) {
      this.#o.logger.error({ err: error, lane: o.lane }, 'groups: lost() hook threw');
    }
    // If nobody took it, free it now instead of making everyone wait for expiry.
    void this.#o.store.remove(this.#laneKey(o.lane), o.revision).catch(() => false);
  }

  #observe(entries: Map<string, StoredEntry>): void {
    const now = this.#now();
    for (const [key, entry] of entries) {
      const seen = this.#seen.get(key);
      if (seen === undefined || seen.revision !== entry.revision) {
        this.#seen.set(key, { revision: entry.revision, since: now });
      }
    }
    for (const key of [...this.#seen.keys()]) if (!entries.has(key)) this.#seen.delete(key);
    const memberPrefix = `${this.#o.prefix}.m.`;
    const members = new Set([this.#o.memberId]);
    for (const key of entries.keys()) {
      if (!key.startsWith(memberPrefix)) continue;
      if (!this.#expired(key, now)) members.add(key.slice(memberPrefix.length));
    }
    this.#members = [...members].sort();
  }

  /** Unchanged for a whole lease on our clock: its writer has surely stopped using it. */
  #expired(key: string, now: number): boolean {
    const seen = this.#seen.get(key);
    return seen !== undefined && now - seen.since >= this.#o.leaseMs;
  }

  async #rebalance(entries: Map<string, StoredEntry>): Promise<void> {
    const { lanes, memberId } = this.#o;
    const members = this.#members;
    const index = members.indexOf(memberId);
    const quota = Math.floor(lanes.length / members.length) + (index < lanes.length % members.length ? 1 : 0);
    const owned = [...this.#owned.values()].filter((o) => o.state === 'owned');
    const stable = this.#previousMembers === members.join(',');
    this.#previousMembers = members.join(',');
    if (owned.length > quota && stable) {
      const excess = owned.sort((a, b) => compareLanes(b.lane, a.lane)).slice(0, owned.length - quota);
      for (const o of excess) this.#handOff(o);
      return;
    }
    let wanted = quota - owned.length;
    const now = this.#now();
    for (const lane of lanes) {
      if (wanted <= 0) break;
      if (this.#owned.has(lane)) continue;
      const key = this.#laneKey(lane);
      const entry = entries.get(key);
      // Free: no lease, an expired one, or our own that we dropped (lapsed while the
      // store was unreachable): the compare-and-set on its revision proves nobody
      // else took it meanwhile, so there is no need to wait for it to expire.
      if (entry !== undefined && !this.#expired(key, now) && !this.#ownLeftover(entry)) continue;
      if (await this.#claim(lane, entry)) wanted--;
      if (this.#frozen) return;
    }
  }

  async #claim(lane: string, entry: StoredEntry | undefined): Promise<boolean> {
    const key = this.#laneKey(lane);
    const sentAt = this.#now();
    let revision: number | undefined;
    try {
      revision =
        entry === undefined
          ? await this.#o.store.create(key, this.#leaseValue())
          : await this.#o.store.update(key, this.#leaseValue(), entry.revision);
    } catch (error) {
      this.#o.logger.debug({ err: error, lane }, 'groups: claim failed');
      return false;
    }
    if (revision === undefined) return false; // someone else was faster
    if (this.#frozen) {
      await this.#o.store.remove(key, revision).catch(() => false);
      return false;
    }
    const o = new Ownership(lane, revision, sentAt + this.#o.leaseMs - this.#marginMs, this.#now);
    this.#owned.set(lane, o);
    this.#claims++;
    this.#metrics.claimed();
    this.#o.logger.info({ lane, member: this.#o.memberId, epoch: revision }, `groups: claimed lane ${lane}`);
    try {
      this.#o.hooks.acquired(o);
    } catch (error) {
      this.#o.logger.error({ err: error, lane }, 'groups: acquired() hook threw');
    }
    return true;
  }

  /** Fenced handoff: stop starting work now, drain while still renewing, then give the lease up. */
  #handOff(o: Ownership): void {
    o.state = 'releasing';
    const started = this.#now();
    this.#o.logger.info({ lane: o.lane, member: this.#o.memberId }, `groups: handing off lane ${o.lane}`);
    void this.#o.hooks
      .release(o.lane)
      .catch((error: unknown) => {
        this.#o.logger.warn({ err: error, lane: o.lane }, 'groups: drain for a handoff failed');
      })
      .then(() => {
        if (o.state !== 'releasing') return;
        o.state = 'drained'; // the next tick removes the lease
        this.#handoffs++;
        this.#lastHandoffMs = this.#now() - started;
        this.#metrics.handedOff(this.#lastHandoffMs / 1000);
      });
  }

  #ownLeftover(entry: StoredEntry): boolean {
    try {
      return (JSON.parse(entry.value) as { owner?: unknown }).owner === this.#o.memberId;
    } catch {
      return false;
    }
  }

  #laneKey(lane: string): string {
    return `${this.#o.prefix}.p.${lane}`;
  }

  #leaseValue(): string {
    return JSON.stringify({ owner: this.#o.memberId });
  }
}

/** p2 before p10; names without a number after those with one. */
function compareLanes(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

function within<T>(call: Promise<T>, ms: number): Promise<T> {
  return withTimeout(call, ms, () => new Error(`lease store call took longer than ${ms} ms`));
}

function bounded(store: LeaseStore, ms: number): LeaseStore {
  return {
    list: (prefix) => within(store.list(prefix), ms),
    create: (key, value) => within(store.create(key, value), ms),
    update: (key, value, revision) => within(store.update(key, value, revision), ms),
    remove: (key, revision) => within(store.remove(key, revision), ms),
  };
}
