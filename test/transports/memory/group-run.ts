/**
 * Harness of the memory consumer-group tests (groups.test.ts): one group on
 * one broker, a producer feeding the order checker, and per-aggregate
 * bookkeeping of running executions to count overlaps.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setImmediate as nextTurn, setTimeout as sleepMs } from 'node:timers/promises';
import {
  createEventBus,
  createMemoryBroker,
  type Envelope,
  type EventBus,
  type MessageContext,
} from '../../../src/index.ts';
import {
  createOrderChecker,
  deferred,
  formatReport,
  type OrderChecker,
  until,
} from '../../../src/testing/index.ts';
import type { MemoryBroker, MemoryTransportOptions } from '../../../src/transports/memory/index.ts';

export const LANES = 17; // 16 partitions + the unpartitioned lane
const AGGREGATES = 40;
export const open = new Set<EventBus>();

export interface MembershipView {
  readonly memberId: string;
  readonly members: readonly string[];
  readonly owned: readonly string[];
  readonly releasing: readonly string[];
  readonly handoffs: number;
  readonly leasesLost: number;
}

export interface SubscriptionView {
  readonly membership: MembershipView;
  readonly droppedMessages: number;
  readonly fencedSettlements: number;
}

export interface RunOptions {
  /** Memory transport options of the members (not the producer). */
  readonly member?: Omit<MemoryTransportOptions, 'broker'>;
  /** Handlers never await (so none is suspended across a stall); default: async handlers. */
  readonly synchronous?: boolean;
  /** The first execution of this event index blocks the event loop this long (a stalled process). */
  readonly stall?: { readonly index: number; readonly ms: number };
}

/** One group on one broker: a producer, its checker, and the members' bookkeeping. */
export class GroupRun {
  readonly #options: RunOptions;
  #stalled = false;
  readonly broker: MemoryBroker = createMemoryBroker();
  readonly topic = `groups-${randomUUID().slice(0, 8)}`;
  readonly group = 'workers';
  readonly checker: OrderChecker = createOrderChecker();
  readonly members = new Map<string, EventBus>();
  readonly handled = new Map<string, number>();
  /** Executions running now, per aggregate, with their context (for its stillOwner()). */
  readonly running = new Map<string, Set<MessageContext>>();
  /** Events whose handler ran to the end at least once (the checker sees them when they start). */
  readonly completed = new Set<string>();
  /** An execution started while another of its aggregate ran and still owned its partition. */
  overlaps = 0;
  /**
   * Started while an earlier one still ran but had lost its partition (its
   * process stalled past the lease): the one overlap the guarantee allows,
   * visible to that handler as ctx.stillOwner() === false.
   */
  fencedOverlaps = 0;
  published = 0;
  consumed = 0;
  /** Handlers started (before the gate), per member. */
  readonly started = new Map<string, number>();
  #producer: EventBus | undefined;
  #progress: Array<() => void> = [];
  /** While set, handlers wait for it (or for their abort signal): the pools hold work. */
  #gate: ReturnType<typeof deferred<void>> | undefined;

  constructor(options: RunOptions = {}) {
    this.#options = options;
  }

  closeGate(): void {
    this.#gate = deferred();
  }

  openGate(): void {
    this.#gate?.resolve();
    this.#gate = undefined;
  }

  async producer(): Promise<EventBus> {
    this.#producer ??= await this.#bus('producer', (r) =>
      r.success ? this.checker.acknowledged(r.eventId) : this.checker.failed(r.eventId),
    );
    return this.#producer;
  }

  async join(name: string): Promise<EventBus> {
    const bus = await this.#bus(name, undefined, this.#options.member);
    this.members.set(name, bus);
    this.handled.set(name, 0);
    this.started.set(name, 0);
    await bus.subscribeEnvelope(this.topic, (env, ctx) => this.#handle(name, env, ctx), {
      group: this.group,
    });
    return bus;
  }

  /**
   * Closes a member's bus; `whileClosing` runs once its intake stopped (close
   * stops it synchronously) and while its pool drains.
   */
  async leave(name: string, closeTimeoutMs: number, whileClosing: () => void = () => {}): Promise<void> {
    const bus = this.members.get(name);
    assert.ok(bus, `no member ${name}`);
    const closing = bus.close({ timeoutMs: closeTimeoutMs });
    whileClosing();
    await closing;
    open.delete(bus);
    this.members.delete(name);
  }

  /** Publishes events [from, to) sequentially, spread round-robin over the aggregates. */
  async publish(count: number): Promise<void> {
    const producer = await this.producer();
    for (let n = 0; n < count; n++) {
      const i = this.published++;
      const eventId = randomUUID();
      const aggregateId = `agg-${i % AGGREGATES}`;
      const eventVersion = Math.floor(i / AGGREGATES);
      this.checker.expect(eventId, aggregateId, eventVersion);
      await producer.publishEnvelope(this.topic, {
        eventId,
        aggregateId,
        eventType: 'Counted',
        eventVersion,
        payload: { i },
      });
    }
    await producer.flush();
  }

  /** Resolves once `condition` holds (re-checked on every handled event and on a short poll). */
  async until(condition: () => boolean, describe: () => string, timeoutMs = 30_000): Promise<void> {
    const signal = until(condition, describe);
    const check = (): void => signal.check();
    this.#progress.push(check);
    // Membership changes have no event of their own: look at them regularly as well.
    const poll = setInterval(check, 20);
    try {
      await signal.wait(timeoutMs);
    } finally {
      clearInterval(poll);
      this.#progress = this.#progress.filter((c) => c !== check);
    }
  }

  allConsumed(): Promise<void> {
    return this.until(
      () =>
        this.checker.expectedCount() === this.published &&
        this.checker.outstanding() === 0 &&
        this.completed.size === this.published,
      () => `${formatReport(this.checker.report())}, completed ${this.completed.size}/${this.published}`,
    );
  }

  subscription(name: string): SubscriptionView {
    const bus = this.members.get(name);
    const details = bus?.health().details as { subscriptions?: SubscriptionView[] } | undefined;
    const view = details?.subscriptions?.[0];
    assert.ok(view, `member ${name} shows its membership in health()`);
    return view;
  }

  membership(name: string): MembershipView {
    return this.subscription(name).membership;
  }

  /** Messages the present members' pools let go unrun because their lane was being handed off. */
  droppedInAll(): number {
    let sum = 0;
    for (const name of this.members.keys()) sum += this.subscription(name).droppedMessages;
    return sum;
  }

  /** Every member has at least `n` handlers held at the gate. */
  holdingWork(n: number): boolean {
    return [...this.members.keys()].every((m) => (this.started.get(m) ?? 0) >= n);
  }

  /** Every member sees all members and owns its fair share, with no handoff under way. */
  balanced(): boolean {
    const names = [...this.members.keys()];
    const views = names.map((n) => this.membership(n));
    const owned = views.reduce((sum, v) => sum + v.owned.length, 0);
    const low = Math.floor(LANES / names.length);
    return (
      owned === LANES &&
      views.every(
        (v) =>
          v.members.length === names.length &&
          v.releasing.length === 0 &&
          v.owned.length >= low &&
          v.owned.length <= low + 1,
      )
    );
  }

  describeOwnership(): string {
    return [...this.members.keys()]
      .map((n) => {
        const v = this.membership(n);
        return `${n}: members ${v.members.length}, owned ${v.owned.length}, releasing ${v.releasing.length}`;
      })
      .join('; ');
  }

  figures(scenario: string): string {
    const r = this.checker.report();
    const perMember = [...this.handled].map(([n, c]) => `${n}=${c}`).join(' ');
    const line = `${scenario}: published ${r.published}, out of order ${r.outOfOrder}, lost ${r.lost}, overlaps ${this.overlaps} (+${this.fencedOverlaps} after a lost lease), duplicated ${r.duplicated}, let go at handoff ${this.droppedInAll()}, handled ${perMember}`;
    process.stdout.write(`# ${line}\n`);
    return line;
  }

  assertClean(scenario: string): void {
    const line = this.figures(scenario);
    const r = this.checker.report();
    assert.equal(r.published, this.published, line);
    assert.equal(r.lost, 0, `${line}\n${formatReport(r)}`);
    assert.equal(r.outOfOrder, 0, `${line}\n${formatReport(r)}`);
    assert.equal(r.unexpected, 0, `${line}\n${formatReport(r)}`);
    assert.equal(this.overlaps, 0, line);
    assert.equal(this.completed.size, this.published, `${line}: every event's handler finished`);
  }

  async #handle(name: string, env: Envelope, ctx: MessageContext): Promise<void> {
    const key = env.aggregateId;
    let running = this.running.get(key);
    if (running === undefined) {
      running = new Set();
      this.running.set(key, running);
    }
    for (const other of running) {
      if (other.stillOwner()) this.overlaps++;
      else this.fencedOverlaps++;
    }
    running.add(ctx);
    try {
      this.checker.observe(env.eventId, key, env.eventVersion);
      this.started.set(name, (this.started.get(name) ?? 0) + 1);
      for (const check of this.#progress) check();
      const gate = this.#gate;
      if (gate !== undefined) {
        // Held until the test opens the gate; a handler aborted by a close deadline gives up.
        const aborted = new Promise((resolve) =>
          ctx.signal.addEventListener('abort', resolve, { once: true }),
        );
        await Promise.race([gate.promise, aborted]);
        if (ctx.signal.aborted) throw new Error('aborted: the subscription is closing');
      }
      const stall = this.#options.stall;
      if (stall !== undefined && !this.#stalled && (env.payload as { i: number }).i === stall.index) {
        this.#stalled = true;
        blockEventLoop(stall.ms);
      }
      if (this.#options.synchronous !== true) {
        // Async work: mostly a turn of the event loop, sometimes a timer.
        if (env.eventVersion % 5 === 0) await sleepMs(1);
        else await nextTurn();
      }
    } finally {
      running.delete(ctx);
    }
    this.completed.add(env.eventId);
    this.handled.set(name, (this.handled.get(name) ?? 0) + 1);
    this.consumed++;
    for (const check of this.#progress) check();
  }

  async #bus(
    name: string,
    onPublishResult?: Parameters<typeof createEventBus>[0]['onPublishResult'],
    memory: Omit<MemoryTransportOptions, 'broker'> = {},
  ) {
    const bus = await createEventBus({
      transport: 'memory',
      clientId: name,
      memory: { ...memory, broker: this.broker },
      metrics: { enabled: false },
      ...(onPublishResult ? { onPublishResult } : {}),
    });
    open.add(bus);
    return bus;
  }
}

/** A synchronous stall, like a long GC pause or a CPU-bound handler: no timer of this process runs meanwhile. */
function blockEventLoop(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // spin
  }
}
