/**
 * Park across the members of a consumer group, on a real nats-server (issue 12).
 *
 * Two buses in one group split the topic's partitions. The member that owns
 * aggregate X's partition parks X; it leaves and the other member takes the
 * partition over: X's newer events must be parked there too (it learns what
 * the previous owner parked from the `<prefix>_PARKED` bucket), not run ahead
 * of the parked ones. `eventbus dlq requeue --parked` then asks the new owner
 * to resume X: it replays X's parked events in order, before X's newer ones.
 * Also: `resume()` called on a member that does not own X is carried out by
 * the owner, and a request nobody owns fails within its bound with exit 1.
 * Order and loss are judged by the order checker.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { Kvm } from '@nats-io/kv';
import { runDlqResume } from '../../../src/cli/dlq-resume.ts';
import { partitionOf } from '../../../src/groups/lanes.ts';
import type { Envelope, EventBus, Subscription } from '../../../src/index.ts';
import { createOrderChecker, formatReport, type OrderChecker } from '../../../src/testing/checker.ts';
import { type Signal, until } from '../../../src/testing/index.ts';
import { streamNameFor } from '../../../src/transports/nats/names.ts';
import { NATS_DEFAULTS } from '../../../src/transports/nats/options.ts';
import { groupPrefix } from '../../../src/transports/nats/resume-requests.ts';
import { captureWriter, natsOptions } from '../../cli/helpers.ts';
import { useNatsBuses, waitUntil } from './helpers.ts';

interface Payload {
  readonly index: number;
}

interface MembershipView {
  readonly topic: string;
  readonly membership?: {
    readonly memberId: string;
    readonly owned: readonly string[];
    readonly releasing: readonly string[];
  };
}

function memberIdOf(bus: EventBus, topic: string): string {
  const subs = (bus.health().details?.subscriptions ?? []) as MembershipView[];
  return subs.find((s) => s.topic === topic && s.membership !== undefined)?.membership?.memberId ?? '?';
}

/** The lanes this bus owns on `topic` (from health details), [] when none. */
function ownedLanes(bus: EventBus, topic: string): string[] {
  const subs = (bus.health().details?.subscriptions ?? []) as MembershipView[];
  const sub = subs.find((s) => s.topic === topic && s.membership !== undefined);
  if (sub?.membership === undefined || sub.membership.releasing.length > 0) return [];
  return [...sub.membership.owned];
}

/** One topic's world: a producer, the checker, the handler's record, waiters. */
class Scenario {
  readonly topic = `pm-${randomUUID().slice(0, 6)}`;
  readonly checker: OrderChecker = createOrderChecker();
  readonly seen: string[] = [];
  poisoned = true;
  parkedSeen = 0;
  readonly #signals: Signal[] = [];
  readonly #next = new Map<string, number>();
  readonly #producer: EventBus;

  constructor(producer: EventBus) {
    this.#producer = producer;
  }

  /** X's event 1 fails while poisoned; everything else is applied and recorded as `<member>:<aggregate><index>`. */
  handler(member: string) {
    return (e: Envelope<Payload>): void => {
      if (e.payload.index === 1 && e.aggregateId.startsWith('x') && this.poisoned) throw new Error('poison');
      this.checker.observe(e.eventId, e.aggregateId, e.payload.index);
      this.seen.push(`${member}:${e.aggregateId}${e.payload.index}`);
      this.check();
    };
  }

  check(): void {
    for (const s of this.#signals) s.check();
  }

  applied(aggregateId: string): string[] {
    return this.seen.map((s) => s.split(':')[1] as string).filter((s) => s.startsWith(aggregateId));
  }

  async watchParked(): Promise<void> {
    await this.#producer.subscribe(
      `${this.topic}.PARKED`,
      () => {
        this.parkedSeen++;
        this.check();
      },
      { group: 'watch' },
    );
  }

  async publish(aggregateId: string): Promise<void> {
    const index = this.#next.get(aggregateId) ?? 0;
    this.#next.set(aggregateId, index + 1);
    // Announced before publishing: delivery may come before publishEnvelope resolves.
    const eventId = randomUUID();
    this.checker.expect(eventId, aggregateId, index);
    await this.#producer.publishEnvelope(this.topic, {
      eventId,
      aggregateId,
      eventType: 'T',
      eventVersion: 1,
      payload: { index },
    });
    this.checker.acknowledged(eventId);
  }

  async waitFor(what: () => boolean, describe: string): Promise<void> {
    const signal = until(
      what,
      () =>
        `${describe}: ${formatReport(this.checker.report())} seen=${this.seen.join(',')} parked=${this.parkedSeen}`,
    );
    this.#signals.push(signal);
    await signal.wait(30_000);
  }
}

describe('nats: park across the members of a group', () => {
  const nats = useNatsBuses();
  const { open } = nats;
  const subscribe = (bus: EventBus, s: Scenario, member: string): Promise<Subscription> =>
    bus.subscribeEnvelope<Payload>(s.topic, s.handler(member), {
      group: 'g',
      deadLetterPolicy: 'park',
      maxAttempts: 2,
      backoff: { initialMs: 1, maxMs: 1 },
    });

  /** Two members with a settled split of the partitions; `x` is an aggregate of a partition member `a` owns. */
  const twoMembers = async (s: Scenario) => {
    const busA = await open(`a-${s.topic}`);
    const subA = await subscribe(busA, s, 'a');
    const busB = await open(`b-${s.topic}`);
    const subB = await subscribe(busB, s, 'b');
    let lanesA: string[] = [];
    await waitUntil(
      () => {
        lanesA = ownedLanes(busA, s.topic);
        const lanesB = ownedLanes(busB, s.topic);
        return (
          lanesA.some((l) => l.startsWith('p')) && lanesB.length > 0 && lanesA.length + lanesB.length === 17
        );
      },
      'both members own partitions and none is being handed over',
      30_000,
      50,
    );
    const partitions = 16;
    let x = '';
    for (let i = 0; x === ''; i++) {
      if (lanesA.includes(`p${partitionOf(`x${i}`, partitions)}`)) x = `x${i}`;
    }
    return { busA, subA, busB, subB, x, lane: `p${partitionOf(x, partitions)}` };
  };

  it('the member that takes a partition over keeps its parked aggregate parked; dlq requeue --parked resumes it there, in order', {
    timeout: 120_000,
  }, async () => {
    const producer = await open(`producer-${randomUUID().slice(0, 6)}`);
    const s = new Scenario(producer);
    await s.watchParked();
    const { busA, busB, x, lane } = await twoMembers(s);

    for (let i = 0; i < 4; i++) await s.publish(x); // x0 ok on a, x1 poison → DLQ + parked, x2 x3 parked
    await s.waitFor(() => s.applied(x).length === 1 && s.parkedSeen === 2, `${x} parked on a`);
    assert.ok(s.seen.includes(`a:${x}0`), `member a owns ${x}: ${s.seen.join(',')}`);

    await busA.close({ timeoutMs: 10_000 });
    await waitUntil(() => ownedLanes(busB, s.topic).includes(lane), `b took ${lane} over`, 30_000, 50);
    await s.publish(x); // x4: parked by b, never run ahead of x2, x3
    await s.publish('y'); // y0: b is consuming
    await s.waitFor(() => s.applied('y').length === 1 && s.parkedSeen === 3, `${x}4 parked on b`);
    assert.deepEqual(s.applied(x), [`${x}0`], 'after the takeover the aggregate is still parked');

    s.poisoned = false;
    const writer = captureWriter();
    const code = await runDlqResume(
      {
        nats: natsOptions(nats.server.url),
        topic: s.topic,
        aggregates: [x],
        group: 'g',
        timeoutMs: 30_000,
        dryRun: false,
      },
      writer,
    );
    assert.equal(code, 0, `${writer.lines.join('\n')}\n${writer.errors.join('\n')}`);
    assert.match(
      writer.lines.join('\n'),
      new RegExp(`^resumed ${x} group=g member=${memberIdOf(busB, s.topic)} replayed=3$`, 'm'),
    );
    await s.publish(x); // x5: after the replay
    await s.waitFor(() => s.applied(x).length === 5, `${x}5 handled`);
    assert.deepEqual(s.applied(x), [`${x}0`, `${x}2`, `${x}3`, `${x}4`, `${x}5`]);
    assert.ok(
      s.seen.filter((e) => e.includes(`:${x}`) && !e.endsWith(`${x}0`)).every((e) => e.startsWith('b:')),
      `replayed and newer events ran on b: ${s.seen.join(',')}`,
    );
    const report = s.checker.report();
    assert.equal(report.outOfOrder, 0, formatReport(report));
    assert.equal(report.lost, 1, `only the poison event (in the DLQ) is unconsumed: ${formatReport(report)}`);
    const parked = await nats.inspect.jsm.streams.info(
      streamNameFor(NATS_DEFAULTS.streamPrefix, `${s.topic}.PARKED`),
    );
    assert.equal(parked.state.messages, 0, 'replayed events were deleted from the parked stream');
  });

  it('resume() on a member that does not own the aggregate is carried out by its owner', {
    timeout: 120_000,
  }, async () => {
    const producer = await open(`producer-${randomUUID().slice(0, 6)}`);
    const s = new Scenario(producer);
    await s.watchParked();
    const { subB, x } = await twoMembers(s);
    for (let i = 0; i < 3; i++) await s.publish(x); // x0 on a, x1 poison, x2 parked
    await s.waitFor(() => s.applied(x).length === 1 && s.parkedSeen === 1, `${x} parked on a`);
    s.poisoned = false;
    assert.deepEqual(await subB.resume(x, { timeoutMs: 30_000 }), { resumed: true, replayed: 1 });
    await s.publish(x);
    await s.waitFor(() => s.applied(x).length === 3, `${x}3 handled`);
    assert.deepEqual(s.applied(x), [`${x}0`, `${x}2`, `${x}3`]);
    assert.ok(s.seen.includes(`a:${x}2`), `the owner (a) replayed: ${s.seen.join(',')}`);
    const report = s.checker.report();
    assert.equal(report.outOfOrder, 0, formatReport(report));
    assert.equal(report.lost, 1, formatReport(report));
  });

  it('dlq requeue --parked: a request no member picks up fails within its bound (exit 1) and is withdrawn', {
    timeout: 60_000,
  }, async () => {
    const producer = await open(`producer-${randomUUID().slice(0, 6)}`);
    const s = new Scenario(producer);
    await s.watchParked();
    const consumer = await open(`c-${s.topic}`);
    await subscribe(consumer, s, 'c');
    for (let i = 0; i < 3; i++) await s.publish('x');
    await s.waitFor(() => s.parkedSeen === 1, 'x parked');
    await consumer.close({ timeoutMs: 10_000 }); // nobody consumes the group now

    const writer = captureWriter();
    const code = await runDlqResume(
      {
        nats: natsOptions(nats.server.url),
        topic: s.topic,
        aggregates: ['x', 'never-parked'],
        group: undefined,
        timeoutMs: 1_000,
        dryRun: false,
      },
      writer,
    );
    assert.equal(code, 1);
    const out = writer.lines.join('\n');
    assert.match(out, /^not parked: never-parked in pm-/m);
    assert.match(out, /^not picked up: x group=g: no member of the group that owns .* within 1000 ms/m);
    const kv = await new Kvm(nats.inspect.nc).open(`${NATS_DEFAULTS.streamPrefix}_PARKED`);
    const prefix = groupPrefix(streamNameFor(NATS_DEFAULTS.streamPrefix, s.topic), 'g');
    const request = await kv.get(`${prefix}resume.${Buffer.from('x').toString('base64url')}`);
    assert.ok(request === null || request.operation !== 'PUT', 'the unanswered request was withdrawn');
    assert.equal(
      (await kv.get(`${prefix}${Buffer.from('x').toString('base64url')}`))?.operation,
      'PUT',
      'x is still parked',
    );
  });
});
