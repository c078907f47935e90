/**
 * The consumer side against a fake group member and stream (no broker):
 * intake in partition order, pausing on capacity, the commit watermark,
 * revocation through the pre-join hook, stale-record filtering, close.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import type { EventBusError } from '../../../src/core/errors.ts';
import { silentLogger } from '../../../src/core/logger.ts';
import type { FlowControl, InboundMessage } from '../../../src/core/transport.ts';
import type { PartitionCommit } from '../../../src/transports/kafka/commit-tracker.ts';
import {
  type ConsumerClient,
  type ConsumerHooks,
  KafkaSubscription,
  type RecordStream,
  type StreamRecord,
  type TopicAssignment,
} from '../../../src/transports/kafka/subscription.ts';

const TOPIC = 'orders';

/** Like the client's MessagesStream in flowing mode: emits while resumed, buffers while paused. */
class FakeStream implements RecordStream {
  #onRecord: ((r: StreamRecord) => void) | undefined;
  #onClose: (() => void) | undefined;
  #onError: ((e: Error) => void) | undefined;
  readonly buffer: StreamRecord[] = [];
  /** Read positions set by rewind() (partition → offset, undefined: from the reset policy). */
  readonly rewinds = new Map<number, bigint | undefined>();
  paused = false;
  pauses = 0;
  closed = false;

  onRecord(listener: (r: StreamRecord) => void): void {
    this.#onRecord = listener;
  }
  onError(listener: (e: Error) => void): void {
    this.#onError = listener;
  }
  onClose(listener: () => void): void {
    this.#onClose = listener;
  }
  pause(): void {
    this.paused = true;
    this.pauses++;
  }
  resume(): void {
    this.paused = false;
    // Node streams flush their buffer asynchronously after resume().
    process.nextTick(() => this.#drain());
  }
  rewind(_topic: string, partition: number, offset: bigint | undefined): void {
    this.rewinds.set(partition, offset);
  }
  async close(): Promise<void> {
    this.closed = true;
  }
  push(record: StreamRecord): void {
    this.buffer.push(record);
    this.#drain();
  }
  #drain(): void {
    while (!this.paused && this.buffer.length > 0) this.#onRecord?.(this.buffer.shift() as StreamRecord);
  }
  die(error: Error): void {
    this.#onError?.(error);
    this.closed = true;
    this.#onClose?.();
  }
}

/** A group member: join/rebalance call the hooks the way the client does (beforeJoin awaited, then join). */
class FakeConsumer implements ConsumerClient {
  generationId = 0;
  assignments: TopicAssignment[] | null = null;
  readonly commits: PartitionCommit[][] = [];
  readonly events: string[] = [];
  readonly streams: FakeStream[] = [];
  fetching = 0;
  closed = false;
  readonly hooks: ConsumerHooks;
  #next: number[];

  constructor(hooks: ConsumerHooks, partitions: number[]) {
    this.hooks = hooks;
    this.#next = partitions;
  }
  get stream(): FakeStream {
    return this.streams[this.streams.length - 1] as FakeStream;
  }
  async consume(): Promise<RecordStream> {
    await this.#join(this.#next);
    const stream = new FakeStream();
    this.streams.push(stream);
    return stream;
  }
  async #join(partitions: number[]): Promise<void> {
    this.events.push('beforeJoin:start');
    await this.hooks.beforeJoin();
    this.events.push('beforeJoin:end');
    this.generationId++;
    this.assignments = [{ topic: TOPIC, partitions }];
    this.events.push(`join:${this.generationId}`);
    this.hooks.onJoin(this.generationId, this.assignments);
  }
  rebalance(partitions: number[]): Promise<void> {
    return this.#join(partitions);
  }
  async commit(commits: readonly PartitionCommit[]): Promise<void> {
    this.events.push(`commit:${commits.map((c) => `${c.partition}@${c.offset}`).join(',')}`);
    this.commits.push([...commits]);
  }
  async fetchesSettled(): Promise<void> {}
  async rejoin(): Promise<void> {
    await this.#join(this.#next);
  }
  isActive(): boolean {
    return !this.closed;
  }
  isConnected(): boolean {
    return !this.closed;
  }
  async close(): Promise<void> {
    this.closed = true;
    this.events.push('close');
  }
  /** Last committed offset per partition. */
  committed(): Map<number, bigint> {
    const out = new Map<number, bigint>();
    for (const batch of this.commits) for (const c of batch) out.set(c.partition, c.offset);
    return out;
  }
}

/** A dispatcher stand-in: bounded capacity, records deliveries, frees capacity on settlement. */
class FakeFlow implements FlowControl {
  readonly delivered: InboundMessage[] = [];
  readonly errors: EventBusError[] = [];
  #outstanding = 0;
  #waiters = new Set<() => void>();
  readonly capacity: number;
  constructor(capacity = 1_000) {
    this.capacity = capacity;
  }
  freeCapacity(): number {
    return this.capacity - this.#outstanding;
  }
  waitForCapacity(signal: AbortSignal): Promise<void> {
    if (this.freeCapacity() > 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.#waiters.delete(done);
        resolve();
      };
      this.#waiters.add(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }
  deliver(message: InboundMessage): void {
    this.#outstanding++;
    const settle = (fn: (...args: never[]) => void) =>
      ((...args: never[]) => {
        this.#outstanding--;
        fn(...args);
        for (const w of [...this.#waiters]) w();
      }) as never;
    // Wrapped in place: the delivery's own getters (lazy headers, key) need the real instance.
    const ack = message.ack.bind(message);
    const nak = message.nak.bind(message);
    const term = message.term.bind(message);
    this.delivered.push(
      Object.assign(message, {
        ack: settle(() => ack()),
        nak: settle(() => nak()),
        term: settle((reason: string) => term(reason)),
      }),
    );
  }
  reportError(error: EventBusError): void {
    this.errors.push(error);
  }
  byOffset(partition: number, offset: number): InboundMessage[] {
    return this.delivered.filter((m) => m.sequence === offset && m.headers.p === String(partition));
  }
}

function rec(
  partition: number,
  offset: number,
  generationId: number,
  key = `agg-${offset % 3}`,
): StreamRecord {
  return {
    topic: TOPIC,
    partition,
    offset: BigInt(offset),
    leaderEpoch: 0,
    key: Buffer.from(key),
    value: Buffer.from(`v${offset}`),
    headerEntries: [
      [Buffer.from('X-Aggregate-ID'), Buffer.from(key)],
      [Buffer.from('p'), Buffer.from(String(partition))],
    ],
    metadata: { consumer: { generationId } },
  };
}

const settings = {
  topic: TOPIC,
  group: 'g',
  kind: 'envelope' as const,
  commitIntervalMs: 10,
  revokeTimeoutMs: 200,
  closeTimeoutMs: 1_000,
};

async function start(partitions: number[], flow = new FakeFlow(), overrides: Partial<typeof settings> = {}) {
  let consumer: FakeConsumer | undefined;
  const sub = await KafkaSubscription.start(
    (hooks) => {
      consumer = new FakeConsumer(hooks, partitions);
      return consumer;
    },
    { ...settings, ...overrides },
    flow,
    silentLogger,
  );
  return { sub, consumer: consumer as FakeConsumer, flow };
}

/**
 * The commit timer and restart delays run on node:test mock timers: a test
 * moves the clock by exactly the interval it means, nothing sleeps.
 */
function mockClock(t: TestContext): void {
  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
}

/** Moves the mocked clock by `ms`, then lets the callbacks it started run (promise chains, nextTick). */
async function advance(t: TestContext, ms: number): Promise<void> {
  t.mock.timers.tick(ms);
  await tick();
  await tick();
}

describe('KafkaSubscription', () => {
  it('delivers records in partition order as InboundMessages', async () => {
    const { sub, consumer, flow } = await start([0, 1]);
    for (let o = 0; o < 3; o++) consumer.stream.push(rec(0, o, 1));
    consumer.stream.push(rec(1, 7, 1, 'order-9'));
    assert.deepEqual(
      flow.delivered.map((m) => `${m.headers.p}:${m.sequence}`),
      ['0:0', '0:1', '0:2', '1:7'],
    );
    const m = flow.delivered[3] as InboundMessage;
    assert.equal(m.topic, TOPIC);
    assert.equal(m.key, 'order-9');
    assert.equal(Buffer.from(m.data).toString(), 'v7');
    assert.deepEqual(m.headers, { 'X-Aggregate-ID': 'order-9', p: '1' });
    assert.equal(m.deliveryCount, 1);
    assert.equal(typeof m.sequence, 'number');
    m.working(); // a no-op on Kafka
    await sub.close();
  });

  it('commits, coalesced, the highest offset below which everything is done', async (t) => {
    mockClock(t);
    const { sub, consumer, flow } = await start([0, 1]);
    for (let o = 0; o < 5; o++) consumer.stream.push(rec(0, o, 1));
    for (let o = 0; o < 3; o++) consumer.stream.push(rec(1, o, 1));
    const p0 = flow.delivered.filter((m) => m.headers.p === '0');
    const p1 = flow.delivered.filter((m) => m.headers.p === '1');
    // Out of order across "actors": 1, 3, 4 done on p0 while 0 and 2 run.
    p0[1]?.ack();
    p0[3]?.ack();
    p0[4]?.term('dead-lettered');
    p1[0]?.ack();
    p1[1]?.ack();
    await advance(t, settings.commitIntervalMs);
    assert.equal(consumer.committed().get(0), undefined, 'offset 0 still runs on p0');
    assert.equal(consumer.committed().get(1), 2n, 'p1: 0 and 1 done → next to read is 2');
    p0[0]?.ack();
    await advance(t, settings.commitIntervalMs);
    assert.equal(consumer.committed().get(0), 2n, 'p0: stops before 2');
    p0[2]?.ack();
    p1[2]?.ack();
    await advance(t, settings.commitIntervalMs);
    assert.equal(consumer.committed().get(0), 5n);
    assert.equal(consumer.committed().get(1), 3n);
    const commitCalls = consumer.commits.length;
    await advance(t, settings.commitIntervalMs);
    assert.equal(consumer.commits.length, commitCalls, 'no commit when nothing moved');
    await sub.close();
  });

  it('pauses intake when the dispatcher is full and resumes when it has room', async () => {
    const flow = new FakeFlow(3);
    const { sub, consumer } = await start([0], flow);
    for (let o = 0; o < 10; o++) consumer.stream.push(rec(0, o, 1));
    assert.equal(flow.delivered.length, 3, 'stops at capacity');
    assert.equal(consumer.stream.paused, true);
    assert.equal(consumer.stream.buffer.length, 7, 'the rest waits in the stream');
    flow.delivered[0]?.ack();
    await tick();
    await tick();
    assert.equal(flow.delivered.length, 4);
    assert.equal(consumer.stream.paused, true);
    for (const m of flow.delivered.slice(1)) m.ack();
    await tick();
    for (let i = 0; i < 10 && flow.delivered.length < 10; i++) {
      for (const m of flow.delivered) m.ack();
      await tick(); // resume() flushes the stream's buffer on the next tick
    }
    assert.deepEqual(
      flow.delivered.map((m) => m.sequence),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      'nothing lost or reordered by pausing',
    );
    await sub.close();
  });

  it('on rebalance: stops intake, waits for in-flight messages, commits, then lets the join proceed', async () => {
    const { sub, consumer, flow } = await start([0, 1], new FakeFlow(), { commitIntervalMs: 60_000 });
    for (let o = 0; o < 4; o++) consumer.stream.push(rec(0, o, 1));
    consumer.stream.push(rec(1, 0, 1));
    flow.delivered[0]?.ack();
    const rebalance = consumer.rebalance([1]);
    await tick();
    assert.equal(consumer.stream.paused, true, 'intake stopped');
    consumer.stream.push(rec(0, 4, 1));
    assert.equal(flow.delivered.length, 5, 'nothing delivered for revoked partitions');
    assert.deepEqual(consumer.events.slice(-1), ['beforeJoin:start'], 'the join waits for the drain');
    for (const m of flow.delivered) m.ack(); // the in-flight messages finish during the drain
    await rebalance;
    const commitIndex = consumer.events.findIndex((e) => e.startsWith('commit:'));
    assert.ok(
      commitIndex >= 0 && commitIndex < consumer.events.indexOf('join:2'),
      'committed before the join',
    );
    assert.deepEqual(
      consumer.committed(),
      new Map([
        [0, 4n],
        [1, 1n],
      ]),
    );
    assert.deepEqual(sub.partitions, [1]);
    await tick();
    assert.equal(consumer.stream.paused, false, 'intake resumed after the join');
    // Records fetched for the old generation are dropped; p1 re-read from its commit at the new generation.
    consumer.stream.push(rec(1, 1, 1));
    consumer.stream.push(rec(0, 5, 2));
    consumer.stream.push(rec(1, 1, 2));
    assert.deepEqual(
      flow.delivered.slice(5).map((m) => `${m.headers.p}:${m.sequence}`),
      ['1:1'],
    );
    await sub.close();
  });

  it('bounds the rebalance drain by revokeTimeoutMs: unfinished messages stay uncommitted', async (t) => {
    t.mock.timers.enable({ apis: ['setInterval'] }); // the drain deadline (AbortSignal.timeout) stays real
    const { sub, consumer, flow } = await start([0], new FakeFlow(), {
      commitIntervalMs: 60_000,
      revokeTimeoutMs: 50,
    });
    for (let o = 0; o < 3; o++) consumer.stream.push(rec(0, o, 1));
    flow.delivered[0]?.ack();
    flow.delivered[2]?.ack();
    const rebalance = consumer.rebalance([0]);
    await tick();
    assert.deepEqual(consumer.events.slice(-1), ['beforeJoin:start'], 'the join waits for the drain');
    await rebalance; // offset 1 never finishes: the drain ends at revokeTimeoutMs
    assert.equal(consumer.committed().get(0), 1n, 'only below the unfinished offset 1');
    flow.delivered[1]?.ack(); // finishes after the revocation: belongs to the old assignment
    t.mock.timers.tick(60_000); // a commit interval passes
    await tick();
    assert.equal(consumer.committed().get(0), 1n);
    // The new generation re-reads from 1: redelivered offsets are flagged.
    consumer.stream.push(rec(0, 1, 2));
    consumer.stream.push(rec(0, 2, 2));
    consumer.stream.push(rec(0, 3, 2));
    const again = flow.delivered.slice(3);
    assert.deepEqual(
      again.map((m) => [m.sequence, m.deliveryCount]),
      [
        [1, 2],
        [2, 2],
        [3, 1],
      ],
    );
    await sub.close();
  });

  it('drops re-fetched records at or below the last delivered offset', async () => {
    const { sub, consumer, flow } = await start([0]);
    consumer.stream.push(rec(0, 0, 1));
    consumer.stream.push(rec(0, 1, 1));
    consumer.stream.push(rec(0, 1, 1));
    consumer.stream.push(rec(0, 0, 1));
    consumer.stream.push(rec(0, 2, 1));
    assert.deepEqual(
      flow.delivered.map((m) => m.sequence),
      [0, 1, 2],
    );
    assert.equal(sub.stats.dropped, 2);
    await sub.close();
  });

  it('a nak holds the commit at its offset; close commits only what is safe', async () => {
    const { sub, consumer, flow } = await start([0], new FakeFlow(), { commitIntervalMs: 60_000 });
    for (let o = 0; o < 5; o++) consumer.stream.push(rec(0, o, 1));
    flow.delivered[0]?.ack();
    flow.delivered[1]?.ack();
    flow.delivered[2]?.nak();
    flow.delivered[3]?.ack();
    flow.delivered[4]?.ack();
    await sub.stop();
    consumer.stream.push(rec(0, 5, 1));
    assert.equal(flow.delivered.length, 5, 'stopped: nothing more is delivered');
    await sub.close();
    assert.equal(consumer.committed().get(0), 2n, 'the nak-ed offset 2 is read again after a restart');
    assert.equal(consumer.stream.closed, true);
    assert.equal(consumer.closed, true, 'left the group');
  });

  it('restarts the stream through a fresh join when it dies', async (t) => {
    mockClock(t);
    const { sub, consumer, flow } = await start([0]);
    consumer.stream.push(rec(0, 0, 1));
    flow.delivered[0]?.ack();
    consumer.stream.die(new Error('fetch failed'));
    assert.equal(flow.errors.length, 1);
    assert.match(flow.errors[0]?.message ?? '', /keep reading/);
    await advance(t, 499);
    assert.equal(consumer.streams.length, 1, 'the restart waits its backoff (500 ms)');
    await advance(t, 1);
    assert.equal(consumer.streams.length, 2, 'a new stream');
    assert.equal(consumer.generationId, 2);
    assert.equal(consumer.committed().get(0), 1n, 'committed before rejoining');
    consumer.stream.push(rec(0, 1, 2));
    assert.equal(flow.delivered.length, 2);
    await sub.close();
  });

  it('never commits a partition of an older generation', async (t) => {
    mockClock(t);
    const { sub, consumer, flow } = await start([0]);
    consumer.stream.push(rec(0, 0, 1));
    consumer.generationId = 5; // the client rejoined behind our back (no hook): the assignment is stale
    flow.delivered[0]?.ack();
    await advance(t, settings.commitIntervalMs);
    assert.equal(consumer.commits.length, 0);
    await sub.close();
  });

  it('takes the free capacity as one batch: a flow that reports 0 mid-batch still gets the batch', async () => {
    // Like the actor pool: free capacity drops to 0 as soon as one actor inbox is full, long
    // before the pool holds its capacity. Asking after every record stopped intake there.
    const flow = new FakeFlow(8);
    let inboxFull = false;
    flow.freeCapacity = () => (inboxFull ? 0 : 8 - flow.delivered.length);
    const { sub, consumer } = await start([0], flow);
    consumer.stream.push(rec(0, 0, 1)); // the first record sizes the batch: 7 more
    inboxFull = true;
    for (let o = 1; o < 12; o++) consumer.stream.push(rec(0, o, 1));
    assert.equal(flow.delivered.length, 8, 'the whole batch, not one record');
    assert.equal(consumer.stream.paused, true, 'then it waits for capacity');
    await sub.close();
  });

  it('on revocation: lanes stop starting work, the finished prefix (or the first offset) is committed and the read position rewound; late acks count for nothing', async (t) => {
    t.mock.timers.enable({ apis: ['setInterval'] }); // the drain deadline (AbortSignal.timeout) stays real
    const { sub, consumer, flow } = await start([0, 1], new FakeFlow(), { revokeTimeoutMs: 100 });
    for (let o = 0; o < 5; o++) consumer.stream.push(rec(0, o, 1));
    for (let o = 10; o < 13; o++) consumer.stream.push(rec(1, o, 1));
    const p0 = flow.delivered.filter((m) => m.headers.p === '0');
    const p1 = flow.delivered.filter((m) => m.headers.p === '1');
    const lane0 = p0[0]?.lane;
    assert.equal(lane0?.id, `${TOPIC}/g/p0`);
    assert.equal(lane0?.mayStart(), true);
    p0[0]?.ack();
    p0[1]?.ack();
    // p0 #2 and p1 #10 are running; the rest is queued.
    const rebalance = consumer.rebalance([0]);
    await tick();
    assert.equal(lane0?.mayStart(), false, 'nothing new starts');
    assert.equal(lane0?.stillOwned(), true, 'running handlers still count');
    for (const m of [p0[3], p0[4], p1[1], p1[2]]) m?.lane?.dropped(m); // the pool lets the queued ones go
    p0[2]?.ack(); // finishes within the drain
    await rebalance; // p1 #10 outlives the drain deadline
    assert.equal(lane0?.stillOwned(), false, 'released once the rebalance proceeds');
    assert.deepEqual(
      [...consumer.committed()],
      [
        [0, 3n],
        [1, 10n],
      ],
      'p0: the finished prefix; p1 (nothing finished, no commit yet): its first offset',
    );
    assert.deepEqual(
      [...consumer.stream.rewinds],
      [
        [0, 3n],
        [1, 10n],
      ],
    );
    const commitsBefore = consumer.commits.length;
    p1[0]?.ack(); // late: the partition may be another member's now
    await advance(t, settings.commitIntervalMs);
    assert.equal(consumer.commits.length, commitsBefore, 'a late ack moves no commit');
    // Generation 2 reads p0 again from 3: delivered again (deliveryCount 2), never skipped.
    consumer.stream.push(rec(0, 4, 1)); // an old-generation leftover: dropped
    for (let o = 3; o < 6; o++) consumer.stream.push(rec(0, o, 2));
    assert.deepEqual(
      flow.delivered.slice(8).map((m) => [m.sequence, m.deliveryCount]),
      [
        [3, 2],
        [4, 2],
        [5, 1],
      ],
    );
    await sub.close();
  });
});
