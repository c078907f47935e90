/**
 * A consumer-group member on an envelope topic of the memory broker: the same
 * ownership model as NATS (transports/nats/partitioned-subscription.ts, and
 * src/transports/nats/README.md, Partitioned consumer groups; issue 9), so
 * users' tests see production behaviour.
 *
 * The group's subscriptions split the topic's lanes (p0…p<P-1> and `plain`)
 * through GroupMembership's leases in the group's MemoryLeaseStore. For each
 * lane it owns, the member takes that lane's messages from the broker's
 * LaneQueue in log order, redeliveries first; one intake loop serves every
 * owned lane in turn, sized to the pool's free capacity.
 *
 * Handoff (another member joined, or close): nothing new of the lane starts
 * (`mayStart()` false, the pool lets queued messages of the lane go unrun),
 * the member waits until the lane's in-flight messages were settled or let
 * go (bounded), then detaches: whatever it did not settle goes back to the
 * lane, ahead of newer messages, before the lease is released. Loss (lease
 * lapsed while the event loop was stalled, or taken over): fenced at once,
 * its settlements no longer count. Either way the next owner continues from
 * the lane's first unsettled message, so nothing is lost and order holds.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { TransportError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import type {
  DeliveryLane,
  FlowControl,
  InboundMessage,
  TransportSubscribeOptions,
  TransportSubscription,
} from '../../core/transport.ts';
import { wakeOrAbort } from '../../core/waiting.ts';
import { laneNames } from '../../groups/lanes.ts';
import { GroupMembership, type LaneOwnership, type MembershipStats } from '../../groups/membership.ts';
import type { GroupMetrics } from '../../metrics/metrics.ts';
import type { ConsumerGroup, GroupMember, TopicLog } from './broker.ts';
import { Delivery, type Outcome, prng, type Settler } from './delivery.ts';
import type { LaneQueue } from './lane-queue.ts';
import type { ResolvedMemoryOptions } from './options.ts';

const BATCH = 256;

export interface PartitionedSubscriptionDeps {
  readonly topic: TopicLog;
  readonly group: ConsumerGroup;
  readonly flow: FlowControl;
  readonly options: TransportSubscribeOptions;
  readonly settings: ResolvedMemoryOptions;
  readonly memberId: string;
  readonly logger: Logger;
  readonly metrics?: GroupMetrics | undefined;
}

export interface PartitionedSubscriptionStats {
  readonly topic: string;
  readonly group: string;
  readonly partitions: number;
  readonly membership: MembershipStats;
  /** Owned lanes and the messages of each that are out with the pool. */
  readonly lanes: ReadonlyArray<{ readonly lane: string; readonly inFlight: number }>;
  /** Settlements that arrived after the lane was lost and were ignored. */
  readonly fencedSettlements: number;
  /** Messages the pool let go unrun because their lane was being handed off or lost. */
  readonly droppedMessages: number;
}

export class MemoryPartitionedSubscription implements GroupMember, TransportSubscription {
  readonly #deps: PartitionedSubscriptionDeps;
  readonly #membership: GroupMembership;
  readonly #runners = new Map<string, LaneRunner>();
  readonly #abort = new AbortController();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly random: () => number;
  #rotation = 0;
  #wakeUp: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #stopped = false;
  #closing = false;
  fencedSettlements = 0;
  droppedMessages = 0;

  constructor(deps: PartitionedSubscriptionDeps) {
    this.#deps = deps;
    this.random = prng(deps.settings.chaos?.seed ?? 1);
    this.#membership = new GroupMembership({
      store: deps.group.leases,
      prefix: 'g',
      memberId: deps.memberId,
      lanes: laneNames(deps.topic.partitions),
      leaseMs: deps.settings.group.leaseMs,
      logger: deps.logger,
      ...(deps.metrics === undefined ? {} : { metrics: deps.metrics }),
      hooks: {
        acquired: (ownership) => this.#acquired(ownership),
        release: (lane) => this.#release(lane),
        lost: (lane, reason) => this.#lost(lane, reason),
      },
    });
  }

  get deps(): PartitionedSubscriptionDeps {
    return this.#deps;
  }

  /** Joins the group; resolves once the membership's first claim round is done where it reports one. */
  async start(): Promise<void> {
    this.#deps.group.members.add(this);
    this.#loop = this.#run();
    await this.#membership.start();
  }

  stats(): PartitionedSubscriptionStats {
    return {
      topic: this.#deps.topic.name,
      group: this.#deps.options.group,
      partitions: this.#deps.topic.partitions,
      membership: this.#membership.stats(),
      lanes: [...this.#runners.values()].map((r) => ({ lane: r.name, inFlight: r.inFlight })),
      fencedSettlements: this.fencedSettlements,
      droppedMessages: this.droppedMessages,
    };
  }

  wake(): void {
    const w = this.#wakeUp;
    this.#wakeUp = undefined;
    w?.();
  }

  /** Stops intake on every lane; leases stay renewed while the pool drains. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#membership.freeze();
    this.#abort.abort();
    this.wake();
    await this.#loop;
  }

  /** After the pool drained: every lane goes back to the group, then the leases are released. */
  async close(): Promise<void> {
    await this.stop();
    this.#closing = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    await this.#membership.close();
    for (const runner of this.#runners.values()) runner.queue.detach(runner);
    this.#runners.clear();
    this.#deps.group.members.delete(this);
    this.#deps.group.wakeAll();
  }

  /** Runs `fn` after `ms` unless the subscription closes first. */
  after(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    this.#timers.add(t);
  }

  #acquired(ownership: LaneOwnership): void {
    if (this.#stopped) return;
    const queue = this.#deps.group.lane(ownership.lane);
    const previous = this.#runners.get(ownership.lane);
    if (previous !== undefined) previous.fence();
    const runner = new LaneRunner(this, queue, ownership);
    queue.attach(runner);
    this.#runners.set(ownership.lane, runner);
    this.wake();
  }

  async #release(lane: string): Promise<void> {
    const runner = this.#runners.get(lane);
    if (runner === undefined) return;
    runner.revoke();
    if (!this.#closing) {
      // Bounded like NATS's ack wait: by then the pool aborted whatever still runs.
      await runner.whenIdle(AbortSignal.timeout(this.#deps.options.handlerTimeoutMs + 1_000));
    }
    runner.queue.detach(runner);
    if (this.#runners.get(lane) === runner) this.#runners.delete(lane);
    this.#deps.group.wakeAll();
  }

  #lost(lane: string, reason: string): void {
    const runner = this.#runners.get(lane);
    if (runner === undefined) return;
    runner.fence();
    runner.queue.detach(runner);
    this.#runners.delete(lane);
    const error = new TransportError(`Lost partition ${lane} of ${this.#deps.topic.name}: ${reason}`);
    this.#deps.logger.warn({ err: error, topic: this.#deps.topic.name }, `memory: ${error.message}`);
    try {
      this.#deps.flow.reportError(error);
    } catch {
      // reportError is the bus's; nothing to do if it throws.
    }
  }

  #idle(signal: AbortSignal): Promise<void> {
    return wakeOrAbort(signal, (wake) => {
      this.#wakeUp = wake;
      return () => {
        if (this.#wakeUp === wake) this.#wakeUp = undefined;
      };
    });
  }

  async #run(): Promise<void> {
    const { flow, settings } = this.#deps;
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      const room = flow.freeCapacity();
      if (room <= 0) {
        await flow.waitForCapacity(signal);
        continue;
      }
      const chaos = settings.chaos;
      if (chaos !== undefined && chaos.maxDelayMs > 0) {
        await new Promise<void>((r) => this.after(this.random() * chaos.maxDelayMs, r));
        if (signal.aborted) break;
      }
      if (this.#deliverRound(Math.min(room, BATCH)) === 0) await this.#idle(signal);
      else await yieldToEventLoop(); // let handlers, timers and I/O run between batches
    }
  }

  /** One message per owned lane in turn, so a busy lane does not starve the others. */
  #deliverRound(room: number): number {
    let active = [...this.#runners.values()];
    if (active.length === 0) return 0;
    this.#rotation = (this.#rotation + 1) % active.length;
    active = [...active.slice(this.#rotation), ...active.slice(0, this.#rotation)];
    let delivered = 0;
    while (delivered < room && active.length > 0) {
      const stillActive: LaneRunner[] = [];
      for (const runner of active) {
        if (delivered >= room) break;
        if (!runner.deliverOne()) continue; // empty for now: out of this round
        delivered++;
        stillActive.push(runner);
      }
      active = stillActive;
    }
    return delivered;
  }
}

/** One owned lane: its intake from the broker, its in-flight messages and its fencing. */
class LaneRunner implements Settler {
  readonly queue: LaneQueue;
  readonly lane: DeliveryLane;
  readonly #owner: MemoryPartitionedSubscription;
  readonly #ownership: LaneOwnership;
  readonly #inFlight = new Set<number>();
  #idleWaiters: Array<() => void> = [];
  /** Handoff or loss began: nothing new is taken or started. */
  #revoked = false;
  /** Lost: settlements no longer count. */
  #fenced = false;

  constructor(owner: MemoryPartitionedSubscription, queue: LaneQueue, ownership: LaneOwnership) {
    this.#owner = owner;
    this.queue = queue;
    this.#ownership = ownership;
    const { topic, options } = owner.deps;
    this.lane = {
      id: `${topic.name}/${options.group}/${ownership.lane}`,
      mayStart: () => !this.#revoked && this.#ownership.mayStart(),
      stillOwned: () => !this.#fenced && this.#ownership.stillOwned(),
      dropped: (message: InboundMessage) => {
        this.#owner.droppedMessages++;
        this.#done(message.sequence as number);
      },
    };
  }

  get name(): string {
    return this.#ownership.lane;
  }

  get inFlight(): number {
    return this.#inFlight.size;
  }

  revoke(): void {
    this.#revoked = true;
  }

  fence(): void {
    this.#revoked = true;
    this.#fenced = true;
  }

  /** Hands the lane's next message to the pool; false when it has none (or may take none). */
  deliverOne(): boolean {
    if (!this.lane.mayStart()) return false;
    const { topic, flow } = this.#owner.deps;
    const taken = this.queue.take(this, topic);
    if (taken === undefined) return false;
    this.#inFlight.add(taken.message.seq);
    flow.deliver(new Delivery(topic.name, taken.message, taken.deliveryCount, this, this.lane));
    return true;
  }

  settle(seq: number, outcome: Outcome, delayMs: number): void {
    this.#done(seq);
    if (!this.lane.stillOwned()) {
      // The lane moved on (or may have): the next owner has this message again.
      this.#owner.fencedSettlements++;
      return;
    }
    const { group, settings } = this.#owner.deps;
    if (outcome === 'ack') {
      const chaos = settings.chaos;
      const lostAck =
        chaos !== undefined && chaos.duplicateRate > 0 && this.#owner.random() < chaos.duplicateRate;
      // A lost ack (chaos): the broker delivers it once more.
      if (lostAck ? this.queue.nak(this, seq) : this.queue.ack(this, seq)) {
        if (lostAck) group.wakeAll();
      }
      return;
    }
    if (delayMs > 0) {
      if (this.queue.defer(this, seq)) {
        this.#owner.after(delayMs, () => {
          if (this.queue.due(seq)) group.wakeAll();
        });
      }
      return;
    }
    if (this.queue.nak(this, seq)) group.wakeAll();
  }

  /** Resolves once every message this runner delivered was settled or let go, or at `deadline`. */
  whenIdle(deadline: AbortSignal): Promise<void> {
    if (this.#inFlight.size === 0) return Promise.resolve();
    return wakeOrAbort(deadline, (wake) => {
      this.#idleWaiters.push(wake);
      return undefined; // woken (and dropped) when the last message settles
    });
  }

  #done(seq: number): void {
    if (!this.#inFlight.delete(seq) || this.#inFlight.size > 0) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const wake of waiters) wake();
  }
}
