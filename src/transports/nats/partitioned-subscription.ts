/**
 * A consumer-group member on a partitioned envelope topic (SPEC §4.1, issue 9).
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
import type {
  DeliveryLane,
  FlowControl,
  InboundMessage,
  TransportSubscription,
} from '../../core/transport.ts';
import { laneNames } from '../../groups/lanes.ts';
import type { LeaseStore } from '../../groups/lease-store.ts';
import { GroupMembership, type LaneOwnership, type MembershipStats } from '../../groups/membership.ts';
import type { GroupMetrics } from '../../metrics/metrics.ts';
import type { NatsInboundMessage } from './ack-tracker.ts';
import { ackModeOf, type ConsumerSpec, ensureConsumer } from './consumer.ts';
import { ApiCodes, apiErrorCode } from './errors.ts';
import { LaneBudget } from './lane-budget.ts';
import { laneFilter } from './partitions.ts';
import { NatsPullSubscription, type PullSubscriptionDeps } from './pull-subscription.ts';
import { SequenceSet } from './sequence-set.ts';
import type { StreamHandle } from './streams.ts';

/** The lane of a stream without partition subjects: one active member per group. */
export const WHOLE_STREAM_LANE = 'all';

export interface PartitionedSubscriptionDeps extends PullSubscriptionDeps {
  readonly store: LeaseStore;
  readonly memberId: string;
  readonly metrics?: GroupMetrics;
}

export interface PartitionedSubscriptionStats {
  readonly topic: string;
  readonly durable: string;
  readonly membership: MembershipStats;
  readonly rewinds: number;
  readonly lanes: ReturnType<NatsPullSubscription['stats']>[];
}

function escapeRegExp(value: string): string {
  return value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export class NatsPartitionedSubscription implements TransportSubscription {
  readonly #deps: PartitionedSubscriptionDeps;
  readonly #stream: StreamHandle;
  readonly #base: ConsumerSpec;
  readonly #flow: FlowControl;
  readonly #budget: LaneBudget;
  readonly #membership: GroupMembership;
  readonly #runners = new Map<string, LaneRunner>();
  /** Per lane: stream sequences this process settled (facts that stay true across generations and owners). */
  readonly #settled = new Map<string, SequenceSet>();
  #stopped = false;
  rewinds = 0;

  constructor(
    deps: PartitionedSubscriptionDeps,
    stream: StreamHandle,
    base: ConsumerSpec,
    flow: FlowControl,
  ) {
    this.#deps = deps;
    this.#stream = stream;
    this.#base = base;
    this.#flow = flow;
    this.#budget = new LaneBudget(flow);
    const lanes = stream.partitions > 0 ? laneNames(stream.partitions) : [WHOLE_STREAM_LANE];
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

  /** Resolves once the first claim round is done and the lanes it won are attached. */
  async start(): Promise<void> {
    await this.#membership.start();
    await Promise.all([...this.#runners.values()].map((r) => r.attached()));
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

/** One owned lane: consumer generations and the pull loop of the current one. */
class LaneRunner {
  readonly #owner: NatsPartitionedSubscription;
  readonly #deps: PartitionedSubscriptionDeps;
  readonly #stream: StreamHandle;
  readonly #base: ConsumerSpec;
  readonly #budget: LaneBudget;
  readonly #flow: FlowControl;
  readonly #ownership: LaneOwnership;
  readonly #settled: SequenceSet;
  readonly #filter: string | undefined;
  #sub: NatsPullSubscription | undefined;
  /** Consumer generation within this ownership: bumped by every rewind. */
  #gen = 0;
  /** Handoff or loss began: nothing new starts. */
  #revoked = false;
  /** Lost: not even settlements count. */
  #fenced = false;
  /** Serialises attach/rewind/stop/close. */
  #chain: Promise<void> = Promise.resolve();

  constructor(
    owner: NatsPartitionedSubscription,
    deps: PartitionedSubscriptionDeps,
    stream: StreamHandle,
    base: ConsumerSpec,
    budget: LaneBudget,
    ownership: LaneOwnership,
    settled: SequenceSet,
  ) {
    this.#settled = settled;
    this.#owner = owner;
    this.#deps = deps;
    this.#stream = stream;
    this.#base = base;
    this.#budget = budget;
    this.#flow = budget.flowFor(() => this.#sub);
    this.#ownership = ownership;
    this.#filter =
      ownership.lane === WHOLE_STREAM_LANE ? undefined : laneFilter(stream.topic, ownership.lane);
  }

  stats(): ReturnType<NatsPullSubscription['stats']>[] {
    return this.#sub === undefined ? [] : [this.#sub.stats()];
  }

  start(): void {
    this.#enqueue(() => this.#attachUntilDone());
  }

  /** Resolves when the steps queued so far (the first attach) are done. */
  attached(): Promise<void> {
    return this.#chain;
  }

  /** Graceful handoff: nothing new starts; in-flight work settles until `deadline`; then the intake closes. */
  async handOff(deadline: AbortSignal): Promise<void> {
    this.#revoked = true;
    await this.#enqueue(async () => {
      const sub = this.#sub;
      if (sub === undefined) return;
      await sub.stop();
      await sub.whenIdle(deadline);
      await sub.close();
      this.#budget.remove(sub);
    });
  }

  /** The lease is gone: stop at once, settle nothing more. */
  fence(): void {
    this.#revoked = true;
    this.#fenced = true;
    const sub = this.#sub;
    void this.#enqueue(async () => {
      await sub?.close();
      if (sub !== undefined) this.#budget.remove(sub);
    });
  }

  stopIntake(): Promise<void> {
    return this.#enqueue(async () => {
      await this.#sub?.stop();
    });
  }

  close(): Promise<void> {
    this.#revoked = true;
    return this.#enqueue(async () => {
      const sub = this.#sub;
      await sub?.close();
      if (sub !== undefined) this.#budget.remove(sub);
    });
  }

  #enqueue(step: () => Promise<void>): Promise<void> {
    const next = this.#chain.then(step).catch((error: unknown) => {
      this.#owner.report(
        error instanceof TransportError
          ? error
          : new TransportError(
              `Partition ${this.#ownership.lane} of ${this.#stream.topic}: ${String(error)}`,
              {
                cause: error,
              },
            ),
      );
    });
    this.#chain = next;
    return next;
  }

  #laneFor(gen: number): DeliveryLane {
    return {
      id: `${this.#stream.topic}/${this.#base.durable}/${this.#ownership.lane}`,
      mayStart: () => !this.#revoked && gen === this.#gen && this.#ownership.mayStart(),
      stillOwned: () => !this.#fenced && this.#ownership.stillOwned(),
      dropped: (message: InboundMessage) => this.#sub?.forget(message as NatsInboundMessage),
    };
  }

  #onGap(gen: number, reason: string): void {
    if (gen !== this.#gen || this.#revoked) return;
    this.#gen++;
    this.#owner.rewinds++;
    this.#deps.logger.info(
      { topic: this.#stream.topic, lane: this.#ownership.lane, reason },
      `nats: rewinding partition ${this.#ownership.lane} to its ack floor (${reason})`,
    );
    const old = this.#sub;
    if (old !== undefined) {
      // It ignores whatever still arrives (nothing reaches the pool): close it on the side.
      this.#budget.remove(old);
      void old.close();
    }
    void this.#enqueue(() => this.#attachUntilDone());
  }

  /**
   * Attaching can fail for a while (no JetStream leader during a cluster
   * election, a reconnect): retry with backoff for as long as the lane is ours,
   * or the lane would stay silent until its lease moved.
   */
  async #attachUntilDone(): Promise<void> {
    let delayMs = 250;
    for (;;) {
      if (this.#revoked) return;
      try {
        await this.#attach();
        return;
      } catch (error) {
        this.#owner.report(
          new TransportError(
            `Partition ${this.#ownership.lane} of ${this.#stream.topic}: could not start its consumer (retrying in ${delayMs} ms): ${(error as Error).message}`,
            { cause: error },
          ),
        );
      }
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      delayMs = Math.min(5_000, delayMs * 2);
    }
  }

  /** Starts the next consumer generation at the previous one's ack floor, then drops the old ones. */
  async #attach(): Promise<void> {
    if (this.#revoked) return;
    const { jsm, logger } = this.#deps;
    const lineage = await this.#lineage();
    const previous = lineage[lineage.length - 1];
    const floor = previous === undefined ? 0 : floorOf(previous.info);
    const gen = this.#gen;
    const spec: ConsumerSpec = {
      ...this.#base,
      durable: `${this.#base.durable}_${this.#ownership.lane}_${this.#ownership.epoch}_${gen}`,
      ...(this.#filter === undefined ? {} : { filterSubject: this.#filter }),
    };
    const info = await ensureConsumer(jsm, spec, logger, floor + 1);
    for (const old of lineage) {
      if (old.info.name === spec.durable) continue;
      await jsm.consumers.delete(this.#stream.name, old.info.name).catch((error: unknown) => {
        if (apiErrorCode(error) !== ApiCodes.consumerNotFound) {
          logger.debug(
            { err: error, consumer: old.info.name },
            'nats: could not delete an old consumer generation',
          );
        }
      });
    }
    if (this.#revoked || gen !== this.#gen) return;
    const sub = new NatsPullSubscription(this.#deps, this.#stream, spec, floor, ackModeOf(info), this.#flow, {
      lane: this.#laneFor(gen),
      onGap: (reason) => this.#onGap(gen, reason),
      owedChanged: () => this.#budget.changed(),
      settled: this.#settled,
    });
    this.#sub = sub;
    this.#budget.add(sub);
    sub.start();
  }

  /** Earlier generations of this lane's consumer, oldest first (and the pre-partition durable for `all`). */
  async #lineage(): Promise<Array<{ info: ConsumerInfo; order: [number, number] }>> {
    const durable = this.#base.durable;
    const pattern = new RegExp(
      `^${escapeRegExp(durable)}_${escapeRegExp(this.#ownership.lane)}_(\\d+)_(\\d+)$`,
    );
    const found: Array<{ info: ConsumerInfo; order: [number, number] }> = [];
    const pages = this.#deps.jsm.consumers.list(this.#stream.name);
    for await (const info of pages) {
      const match = pattern.exec(info.name);
      if (match !== null) found.push({ info, order: [Number(match[1]), Number(match[2])] });
      else if (this.#ownership.lane === WHOLE_STREAM_LANE && info.name === durable) {
        found.push({ info, order: [-1, 0] });
      }
    }
    return found.sort((a, b) => a.order[0] - b.order[0] || a.order[1] - b.order[1]);
  }
}

/** Everything at or below it was settled by an earlier generation. */
function floorOf(info: ConsumerInfo): number {
  const started = (info.config.opt_start_seq ?? 1) - 1;
  return Math.max(info.ack_floor.stream_seq, started);
}
