/**
 * A consumer-group member on a partitioned envelope topic (src/transports/nats/README.md, Partitioned consumer groups; issue 9).
 *
 * The group's members split the topic's lanes (partitions p0…p<P-1> plus the
 * `plain` lane of unpartitioned events; a stream without partitions has the
 * one lane `all`) through GroupMembership's leases. For each lane it owns, the
 * member runs one pull loop on that lane's own durable consumer.
 *
 * Rewind: whenever a lane is taken over, and whenever its delivery shows a
 * gap (a reconnect, a jump in the consumer's delivery sequence), the member
 * starts a new consumer generation at the previous generation's ack floor and
 * deletes the old one. Everything that was delivered and not acknowledged
 * (messages that died with a process or a connection) comes back at once and
 * in stream order, instead of after AckWait behind newer ones; what was handled
 * but not yet acked comes again as a duplicate (at-least-once). Acks of a
 * zombie owner go to a consumer that no longer exists, so they can never act
 * for the new owner. Generations are named `<durable>_<lane>_<epoch>_<gen>`
 * (epoch = the lease revision), never reused: nats-server 2.9 races when a
 * consumer is recreated under the name it just deleted.
 */

import type { ConsumerInfo } from '@nats-io/jetstream';
import { TransportError } from '../../core/errors.ts';
import type { FlowControl, TransportSubscription } from '../../core/transport.ts';
import type { StartFrom } from '../../core/types.ts';
import { laneNames, partitionOf } from '../../groups/lanes.ts';
import { GroupMembership, type LaneOwnership, type MembershipStats } from '../../groups/membership.ts';
import { ConsumerListing, type ConsumerSpec } from './consumer.ts';
import { groupStartFloor } from './group-start.ts';
import { LaneBudget } from './lane-budget.ts';
import {
  type LaneOwner,
  LaneRunner,
  type PartitionedSubscriptionDeps,
  WHOLE_STREAM_LANE,
} from './lane-runner.ts';
import type { NatsPullSubscription } from './pull-subscription.ts';
import { SequenceSet } from './sequence-set.ts';
import type { StreamHandle } from './streams.ts';

export { type PartitionedSubscriptionDeps, WHOLE_STREAM_LANE } from './lane-runner.ts';

export interface PartitionedSubscriptionStats {
  readonly topic: string;
  readonly durable: string;
  readonly membership: MembershipStats;
  readonly rewinds: number;
  readonly lanes: ReturnType<NatsPullSubscription['stats']>[];
}

export class NatsPartitionedSubscription implements TransportSubscription, LaneOwner {
  readonly #deps: PartitionedSubscriptionDeps;
  readonly #stream: StreamHandle;
  readonly #base: ConsumerSpec;
  readonly #flow: FlowControl;
  readonly #budget: LaneBudget;
  readonly #listing: ConsumerListing;
  readonly #membership: GroupMembership;
  readonly #runners = new Map<string, LaneRunner>();
  /** Per lane: stream sequences this process settled (facts that stay true across generations and owners). */
  readonly #settled = new Map<string, SequenceSet>();
  readonly #lanes: readonly string[];
  readonly #startFrom: StartFrom | undefined;
  /** Where a lane without any consumer generation starts (after this stream sequence). */
  #startFloor = 0;
  #stopped = false;
  rewinds = 0;

  constructor(
    deps: PartitionedSubscriptionDeps,
    stream: StreamHandle,
    base: ConsumerSpec,
    flow: FlowControl,
    startFrom?: StartFrom,
  ) {
    this.#deps = deps;
    this.#stream = stream;
    this.#base = base;
    this.#flow = flow;
    this.#startFrom = startFrom;
    this.#budget = new LaneBudget(flow);
    this.#listing = new ConsumerListing(deps.jsm, stream.name);
    const lanes = stream.partitions > 0 ? laneNames(stream.partitions) : [WHOLE_STREAM_LANE];
    this.#lanes = lanes;
    this.#membership = new GroupMembership({
      store: deps.store,
      prefix: `${stream.name}.${base.durable}`,
      memberId: deps.memberId,
      lanes,
      leaseMs: deps.options.group.leaseMs,
      logger: deps.logger,
      ...(deps.metrics === undefined ? {} : { metrics: deps.metrics }),
      hooks: {
        acquired: (ownership) => this.#acquired(ownership),
        release: (lane) => this.#release(lane),
        lost: (lane, reason) => this.#lost(lane, reason),
      },
    });
  }

  get topic(): string {
    return this.#stream.topic;
  }

  /** The stream sequence a lane's first consumer generation starts after (see group-start.ts). */
  get startFloor(): number {
    return this.#startFloor;
  }

  /** Does this member own the lane of aggregate `key` now (and may start its events)? */
  owns(key: string): boolean {
    if (this.#stopped) return false;
    const partitions = this.#stream.partitions;
    const lane = partitions > 0 ? `p${partitionOf(key, partitions)}` : WHOLE_STREAM_LANE;
    return this.#runners.get(lane)?.active() ?? false;
  }

  /** Before a lane delivers: the bus's preparation (the park policy reloads what is parked). */
  async beforeLane(): Promise<void> {
    await this.#flow.beforeLane?.();
  }

  listConsumers(): Promise<ConsumerInfo[]> {
    return this.#listing.list();
  }

  /** Resolves once the first claim round is done and the lanes it won are attached. */
  async start(): Promise<void> {
    // Before any lane is claimed: every first generation starts from the group's floor.
    this.#startFloor = await groupStartFloor(this.#deps.jsm, {
      base: this.#base,
      lanes: this.#lanes,
      startFrom: this.#startFrom,
      logger: this.#deps.logger,
    });
    // Every lane may be ours in the first round: the loops that attach first must not
    // split the pool among themselves (see LaneBudget.expect).
    this.#budget.expect(this.#lanes.length);
    try {
      await this.#membership.start();
      await Promise.all([...this.#runners.values()].map((r) => r.attached()));
    } finally {
      this.#budget.expect(0);
    }
  }

  stats(): PartitionedSubscriptionStats {
    return {
      topic: this.#stream.topic,
      durable: this.#base.durable,
      membership: this.#membership.stats(),
      rewinds: this.rewinds,
      lanes: [...this.#runners.values()].flatMap((r) => r.stats()),
    };
  }

  /** Stops intake on every lane; leases stay renewed while the pool drains. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#membership.freeze();
    await Promise.all([...this.#runners.values()].map((r) => r.stopIntake()));
  }

  /** After the pool drained: close every lane's intake and give the leases up. */
  async close(): Promise<void> {
    await this.stop();
    await Promise.all([...this.#runners.values()].map((r) => r.close()));
    await this.#membership.close();
    this.#runners.clear();
  }

  #acquired(ownership: LaneOwnership): void {
    if (this.#stopped) return;
    let settled = this.#settled.get(ownership.lane);
    if (settled === undefined) {
      settled = new SequenceSet();
      this.#settled.set(ownership.lane, settled);
    }
    const runner = new LaneRunner(
      this,
      this.#deps,
      this.#stream,
      this.#base,
      this.#budget,
      ownership,
      settled,
    );
    this.#runners.get(ownership.lane)?.fence();
    this.#runners.set(ownership.lane, runner);
    runner.start();
  }

  async #release(lane: string): Promise<void> {
    const runner = this.#runners.get(lane);
    if (runner === undefined) return;
    // Bounded by the handler timeout: by then the pool aborted whatever still runs.
    const deadline = AbortSignal.timeout(this.#base.ackWaitMs);
    await runner.handOff(deadline);
    if (this.#runners.get(lane) === runner) this.#runners.delete(lane);
  }

  #lost(lane: string, reason: string): void {
    const runner = this.#runners.get(lane);
    if (runner === undefined) return;
    runner.fence();
    this.#runners.delete(lane);
    this.report(new TransportError(`Lost partition ${lane} of ${this.#stream.topic}: ${reason}`));
  }

  report(error: TransportError): void {
    this.#deps.logger.warn({ err: error, topic: this.#stream.topic }, `nats: ${error.message}`);
    try {
      this.#flow.reportError(error);
    } catch {
      // reportError is the bus's; nothing to do if it throws.
    }
  }
}
