/** Shared helpers for the NATS transport tests (real servers via the harness). */
import { after, before } from 'node:test';
import { type ConsumerInfo, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { EventBusError } from '../../../src/core/errors.ts';
import type { Logger } from '../../../src/core/logger.ts';
import type {
  FlowControl,
  InboundMessage,
  OutboundMessage,
  PublishOutcome,
  Transport,
} from '../../../src/core/transport.ts';
import { createEventBus, type EventBus, type EventBusOptions } from '../../../src/index.ts';
import { pollUntil } from '../../../src/testing/waiters.ts';
import { createNatsTransport, type NatsTransportOptions } from '../../../src/transports/nats/index.ts';
import type { PublisherStats } from '../../../src/transports/nats/publisher.ts';
import type { PullSubscriptionStats } from '../../../src/transports/nats/pull-subscription.ts';
import { type NatsServerHandle, type NatsServerOptions, startNatsServer } from '../../harness/nats-server.ts';

export interface LogEntry {
  readonly level: 'debug' | 'info' | 'warn' | 'error';
  readonly msg: string;
  readonly obj: object;
}

export function captureLogger(): Logger & { readonly entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const make =
    (level: LogEntry['level']) =>
    (obj: object | string, msg?: string): void => {
      const entry = typeof obj === 'string' ? { level, msg: obj, obj: {} } : { level, msg: msg ?? '', obj };
      entries.push(entry);
      if (process.env.NATS_TEST_DEBUG) console.error(level, entry.msg, JSON.stringify(entry.obj));
    };
  return { entries, debug: make('debug'), info: make('info'), warn: make('warn'), error: make('error') };
}

export async function openTransport(
  servers: string | readonly string[],
  options: NatsTransportOptions = {},
  logger: Logger = captureLogger(),
): Promise<Transport> {
  return createNatsTransport({ servers, ...options }, { clientId: 'test-client', logger });
}

/** Polls `condition` until it holds or the deadline passes (then throws with `what`): pollUntil's NATS-test defaults. */
export function waitUntil(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 15_000,
  intervalMs = 10,
): Promise<void> {
  return pollUntil(condition, { what, timeoutMs, intervalMs });
}

let counter = 0;
export function message(topic: string, body: string | Uint8Array, msgId?: string): OutboundMessage {
  const data = typeof body === 'string' ? new TextEncoder().encode(body) : body;
  const id = msgId ?? `m-${process.pid}-${++counter}`;
  return { topic, kind: 'envelope', data, headers: { 'X-Event-ID': id }, msgId: id, key: undefined };
}

export function sendAsync(transport: Transport, msg: OutboundMessage): Promise<PublishOutcome> {
  return new Promise((resolve) => transport.send(msg, resolve));
}

/**
 * A FlowControl whose capacity the test controls. Each delivery takes one slot
 * (like a dispatcher inbox); `release()` gives slots back. `lowestCapacity`
 * going below 0 would mean a pull asked for more than was free.
 */
export class FakeFlow implements FlowControl {
  readonly delivered: InboundMessage[] = [];
  readonly errors: EventBusError[] = [];
  lowestCapacity: number;
  #capacity: number;
  #waiters: Array<() => void> = [];
  onDeliver: ((message: InboundMessage) => void) | undefined;

  constructor(capacity: number) {
    this.#capacity = capacity;
    this.lowestCapacity = capacity;
  }

  get capacity(): number {
    return this.#capacity;
  }

  freeCapacity(): number {
    return Math.max(0, this.#capacity);
  }

  /** Times the fetch loop waited for capacity. */
  waits = 0;

  waitForCapacity(signal: AbortSignal): Promise<void> {
    this.waits++;
    if (this.#capacity > 0 || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        signal.removeEventListener('abort', done);
        resolve();
      };
      signal.addEventListener('abort', done, { once: true });
      this.#waiters.push(done);
    });
  }

  deliver(message: InboundMessage): void {
    this.#capacity--;
    if (this.#capacity < this.lowestCapacity) this.lowestCapacity = this.#capacity;
    this.delivered.push(message);
    this.onDeliver?.(message);
  }

  reportError(error: EventBusError): void {
    this.errors.push(error);
  }

  /** Gives `n` slots back (a dispatcher finished n messages). */
  release(n = 1): void {
    this.setCapacity(this.#capacity + n);
  }

  setCapacity(n: number): void {
    this.#capacity = n;
    if (n > 0) {
      const waiters = this.#waiters;
      this.#waiters = [];
      for (const wake of waiters) wake();
    }
  }
}

/** A separate plain client for inspecting the server (stream contents, consumer state). */
export interface Inspector {
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  /** Nats-Msg-Id header of every message in the stream, in order. */
  msgIds(stream: string): Promise<string[]>;
  close(): Promise<void>;
}

export async function inspector(servers: string | readonly string[]): Promise<Inspector> {
  const nc = await connect({ servers: typeof servers === 'string' ? servers : [...servers] });
  const jsm = await jetstreamManager(nc);
  return {
    nc,
    jsm,
    async msgIds(stream: string): Promise<string[]> {
      const info = await jsm.streams.info(stream);
      const total = info.state.messages;
      const consumer = await jetstream(nc).consumers.get(stream);
      const ids: string[] = [];
      while (ids.length < total) {
        const batch = await consumer.fetch({
          max_messages: Math.min(5_000, total - ids.length),
          expires: 2_000,
        });
        let got = 0;
        for await (const m of batch) {
          ids.push(m.headers?.get('Nats-Msg-Id') ?? '');
          got++;
        }
        if (got === 0) break;
      }
      return ids;
    },
    close: () => nc.close(),
  };
}

/** A describe block's nats-server, an inspector on it, and the buses its tests open. */
export interface NatsBuses {
  readonly server: NatsServerHandle;
  readonly inspect: Inspector;
  /** A bus on the block's server (metrics off); `extra` is spread last. Closed after the block. */
  open(clientId: string, extra?: Partial<EventBusOptions>): Promise<EventBus>;
}

/**
 * Call inside describe(): starts a nats-server (JetStream on, plus `server`
 * options) and an inspector before the block's tests, and closes every bus
 * opened through `open`, the inspector and the server after them.
 */
export function useNatsBuses(server: NatsServerOptions = {}): NatsBuses {
  let handle: NatsServerHandle | undefined;
  let inspect: Inspector | undefined;
  const buses: EventBus[] = [];
  before(async () => {
    handle = await startNatsServer({ jetstream: true, ...server });
    inspect = await inspector(handle.url);
  });
  after(async () => {
    for (const bus of buses) await bus.close({ timeoutMs: 5_000 });
    await inspect?.close();
    await handle?.stop();
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error("useNatsBuses: the server starts in the block's before() hook");
    return value;
  };
  return {
    get server() {
      return started(handle);
    },
    get inspect() {
      return started(inspect);
    },
    async open(clientId, extra = {}) {
      const bus = await createEventBus({
        transport: 'nats',
        clientId,
        metrics: { enabled: false },
        nats: { servers: started(handle).url },
        ...extra,
      } as EventBusOptions);
      buses.push(bus);
      return bus;
    },
  };
}

export interface PipelineResult {
  /** Outcome per message, in send order. */
  readonly outcomes: PublishOutcome[];
  /** How many times each message's callback ran (must be 1). */
  readonly calls: number[];
  /** Callbacks that ran synchronously inside send (must be 0). */
  readonly synchronous: number;
  readonly elapsedMs: number;
}

/**
 * Sends `messages` keeping at most `window` unacknowledged (what the bus's
 * publish window does), resolving when every callback has run.
 */
export function pipeline(
  transport: Transport,
  messages: readonly OutboundMessage[],
  window = 5_000,
  onProgress?: (completed: number) => void,
): Promise<PipelineResult> {
  const outcomes: PublishOutcome[] = new Array(messages.length);
  const calls: number[] = new Array(messages.length).fill(0);
  const started = performance.now();
  return new Promise((resolve) => {
    let next = 0;
    let inFlight = 0;
    let completed = 0;
    let synchronous = 0;
    const finish = (): void =>
      resolve({ outcomes, calls, synchronous, elapsedMs: performance.now() - started });
    const pump = (): void => {
      while (inFlight < window && next < messages.length) {
        const index = next++;
        inFlight++;
        let returned = false;
        transport.send(messages[index] as OutboundMessage, (outcome) => {
          if (!returned) synchronous++;
          calls[index] = (calls[index] ?? 0) + 1;
          if (calls[index] !== 1) return;
          outcomes[index] = outcome;
          inFlight--;
          completed++;
          onProgress?.(completed);
          if (completed === messages.length) finish();
          else pump();
        });
        returned = true;
      }
    };
    if (messages.length === 0) finish();
    else pump();
  });
}

export function publishStats(transport: Transport): PublisherStats {
  const publish = transport.health().details?.publish;
  if (publish === undefined) throw new Error('Expected health().details.publish');
  return publish as PublisherStats;
}

export function subscriptionStats(transport: Transport, topic: string): PullSubscriptionStats {
  const subs = (transport.health().details?.subscriptions ?? []) as Array<
    PullSubscriptionStats | { topic: string; lanes: PullSubscriptionStats[] }
  >;
  const found = subs.find((s) => s.topic === topic);
  if (found === undefined) throw new Error(`Expected a subscription on ${topic} in health()`);
  if (!('lanes' in found)) return found;
  // A partitioned subscription: the sum over its lanes' pull loops.
  const sum = (field: keyof PullSubscriptionStats): number =>
    found.lanes.reduce((total, lane) => total + (lane[field] as number), 0);
  return {
    topic,
    durable: found.lanes.map((l) => l.durable).join(','),
    pulls: sum('pulls'),
    delivered: sum('delivered'),
    recreated: sum('recreated'),
    inFlight: sum('inFlight'),
    skippedAcked: sum('skippedAcked'),
    skippedInFlight: sum('skippedInFlight'),
  };
}

/**
 * Sends `messages`, then resends every failed one with the SAME msgId until all
 * succeeded (what the bus/outbox does with TimeoutError/TransportError).
 */
export async function publishUntilStored(
  transport: Transport,
  messages: readonly OutboundMessage[],
  window = 500,
  onProgress?: (completed: number) => void,
): Promise<{
  firstRound: PipelineResult;
  rounds: number;
  failuresByCode: Record<string, number>;
  /** One error message per code, for the log. */
  sampleErrors: Record<string, string>;
  /** Retries the broker answered with duplicate:true (the first attempt had been stored). */
  retriedDuplicates: number;
}> {
  const firstRound = await pipeline(transport, messages, window, onProgress);
  const failuresByCode: Record<string, number> = {};
  const sampleErrors: Record<string, string> = {};
  let pending = messages.filter((_, i) => {
    const outcome = firstRound.outcomes[i];
    if (outcome === undefined || outcome.ok) return false;
    failuresByCode[outcome.error.code] = (failuresByCode[outcome.error.code] ?? 0) + 1;
    sampleErrors[outcome.error.code] ??= outcome.error.message;
    return true;
  });
  let rounds = 1;
  let retriedDuplicates = 0;
  while (pending.length > 0) {
    if (rounds++ > 30) throw new Error(`${pending.length} messages still failing after 30 rounds`);
    // Retry backoff (as the outbox relay does), not synchronisation.
    await new Promise((resolve) => setTimeout(resolve, Math.min(1_000, 50 * rounds)));
    const result = await pipeline(transport, pending, window);
    if (result.calls.some((c) => c !== 1)) throw new Error('a callback ran more than once');
    for (const outcome of result.outcomes) if (outcome.ok && outcome.duplicate === true) retriedDuplicates++;
    pending = pending.filter((_, i) => !result.outcomes[i]?.ok);
  }
  return { firstRound, rounds, failuresByCode, sampleErrors, retriedDuplicates };
}

/**
 * The consumers of a group on a stream: one per partition lane and generation
 * (`<group>_<lane>_<epoch>_<gen>`) for envelope topics, the group itself for raw ones.
 */
export async function groupConsumers(
  jsm: JetStreamManager,
  stream: string,
  group: string,
): Promise<ConsumerInfo[]> {
  const out: ConsumerInfo[] = [];
  for await (const info of jsm.consumers.list(stream)) {
    // Just after a restart nats-server 2.9 can list a consumer it has not loaded yet as null.
    if (info === null) continue;
    if (info.name === group || info.name.startsWith(`${group}_`)) out.push(info);
  }
  return out;
}
