/**
 * One lane a group member owns (see partitioned-subscription.ts): its
 * consumer generations and the pull loop of the current one. A takeover or a
 * delivery gap starts the next generation at the previous one's ack floor
 * (a rewind); a handoff drains, a loss fences at once.
 */
import type { ConsumerInfo } from '@nats-io/jetstream';
import { Backoff } from '../../core/backoff.ts';
import { TransportError } from '../../core/errors.ts';
import type { DeliveryLane, FlowControl, InboundMessage } from '../../core/transport.ts';
import { sleep } from '../../core/waiting.ts';
import type { LeaseStore } from '../../groups/lease-store.ts';
import type { LaneOwnership } from '../../groups/membership.ts';
import type { GroupMetrics } from '../../metrics/metrics.ts';
import type { NatsInboundMessage } from './ack-tracker.ts';
import { ackModeOf, type ConsumerSpec, ensureConsumer } from './consumer.ts';
import { ApiCodes, apiErrorCode } from './errors.ts';
import type { LaneBudget } from './lane-budget.ts';
import { laneFilter } from './partitions.ts';
import { NatsPullSubscription, type PullSubscriptionDeps } from './pull-subscription.ts';
import type { SequenceSet } from './sequence-set.ts';
import type { StreamHandle } from './streams.ts';

/** Retrying a partition's consumer start: 250 ms doubling up to 5 s. */
const ATTACH_RETRY = { initialMs: 250, maxMs: 5_000, multiplier: 2, jitter: 0 };

/** The lane of a stream without partition subjects: one active member per group. */
export const WHOLE_STREAM_LANE = 'all';

export interface PartitionedSubscriptionDeps extends PullSubscriptionDeps {
  readonly store: LeaseStore;
  readonly memberId: string;
  readonly metrics?: GroupMetrics;
}

/** What a lane needs from the group member that owns it. */
export interface LaneOwner {
  /** Where a lane without any consumer generation starts (after this stream sequence). */
  readonly startFloor: number;
  /** Counts rewinds across the member's lanes. */
  rewinds: number;
  /** Before a lane delivers: the bus's preparation (the park policy reloads what is parked). */
  beforeLane(): Promise<void>;
  /** Every consumer of the stream, listed after this call (shared by lanes asking at once). */
  listConsumers(): Promise<ConsumerInfo[]>;
  report(error: TransportError): void;
}

function escapeRegExp(value: string): string {
  return value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** One owned lane: consumer generations and the pull loop of the current one. */
export class LaneRunner {
  readonly #owner: LaneOwner;
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
    owner: LaneOwner,
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

  /** Owned, not being handed off or fenced. */
  active(): boolean {
    return !this.#revoked && this.#ownership.mayStart();
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
    const retry = new Backoff(ATTACH_RETRY);
    for (;;) {
      if (this.#revoked) return;
      let delayMs: number;
      try {
        await this.#attach();
        return;
      } catch (error) {
        delayMs = retry.next();
        this.#owner.report(
          new TransportError(
            `Partition ${this.#ownership.lane} of ${this.#stream.topic}: could not start its consumer (retrying in ${delayMs} ms): ${(error as Error).message}`,
            { cause: error },
          ),
        );
      }
      await sleep(delayMs);
    }
  }

  /** Starts the next consumer generation at the previous one's ack floor, then drops the old ones. */
  async #attach(): Promise<void> {
    if (this.#revoked) return;
    // Before anything of the lane is delivered (a takeover: the previous owner may have parked aggregates).
    await this.#owner.beforeLane();
    const { jsm, logger } = this.#deps;
    const lineage = await this.#lineage();
    const previous = lineage[lineage.length - 1];
    const floor = previous === undefined ? this.#owner.startFloor : floorOf(previous.info);
    const gen = this.#gen;
    const spec: ConsumerSpec = {
      ...this.#base,
      durable: `${this.#base.durable}_${this.#ownership.lane}_${this.#ownership.epoch}_${gen}`,
      ...(this.#filter === undefined ? {} : { filterSubject: this.#filter }),
    };
    const listed = lineage.find((old) => old.info.name === spec.durable)?.info ?? null;
    if (previous !== undefined && previous.info.name !== spec.durable) {
      // Where a takeover or rewind resumes, and what the generation before it left:
      // the first thing to read when an event of this partition went missing.
      const before = previous.info;
      logger.info(
        {
          topic: this.#stream.topic,
          lane: this.#ownership.lane,
          from: before.name,
          ackFloor: before.ack_floor.stream_seq,
          delivered: before.delivered.stream_seq,
          ackPending: before.num_ack_pending,
          redelivered: before.num_redelivered,
          waiting: before.num_waiting,
        },
        `nats: partition ${this.#ownership.lane} resumes after sequence ${floor} (${before.name} left ack floor ${before.ack_floor.stream_seq}, ${before.num_ack_pending} unacknowledged)`,
      );
    }
    const info = await ensureConsumer(jsm, spec, logger, floor + 1, listed);
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
    for (const info of await this.#owner.listConsumers()) {
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
