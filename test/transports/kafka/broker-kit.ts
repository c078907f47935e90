/**
 * Shared pieces of the Kafka tests that run against a broker (the kfake test
 * broker from test/harness/kafka-broker.ts, or KAFKA_BROKERS): transports,
 * publishing with the checker's bookkeeping, and a small FlowControl that
 * stands in for the bus.
 *
 * The stand-in behaves like the actor pool where it matters here: bounded
 * capacity, one message per key at a time in delivery order, keys
 * concurrently (so acks complete out of offset order), and the DeliveryLane
 * contract: a message whose lane may no longer start is let go unrun
 * (`lane.dropped`), never handled.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EventBusError } from '../../../src/core/errors.ts';
import { silentLogger } from '../../../src/core/logger.ts';
import type {
  FlowControl,
  InboundMessage,
  OutboundMessage,
  PublishOutcome,
  Transport,
  TransportSubscription,
} from '../../../src/core/transport.ts';
import type { OrderChecker } from '../../../src/testing/checker.ts';
import { pollUntil } from '../../../src/testing/waiters.ts';
import { createKafkaTransport, type KafkaTransportOptions } from '../../../src/transports/kafka/index.ts';

export const unique = (name: string): string => `jxt-kt-${name}-${randomUUID().slice(0, 8)}`;

export function kafkaTransport(
  brokers: readonly string[],
  name: string,
  overrides: Partial<KafkaTransportOptions> = {},
): Promise<Transport> {
  return createKafkaTransport(
    {
      brokers: [...brokers],
      partitions: 6,
      commitIntervalMs: 200,
      sessionTimeoutMs: 10_000,
      heartbeatIntervalMs: 500,
      ...overrides,
    },
    { clientId: unique(name), logger: silentLogger },
  );
}

interface Payload {
  readonly key: string;
  readonly seq: number;
}

export function event(topic: string, key: string, seq: number, pad = 0): OutboundMessage {
  const eventId = randomUUID();
  return {
    topic,
    kind: 'envelope',
    data: Buffer.from(JSON.stringify({ key, seq, pad: 'x'.repeat(pad) })),
    headers: {
      'X-Event-ID': eventId,
      'X-Aggregate-ID': key,
      'X-Event-Type': 'Tested',
      'X-Event-Version': '1',
    },
    msgId: eventId,
    key,
  };
}

export function keysOf(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `agg-${i}`);
}

/** Per-key publish order: sequence-major, so every batch interleaves many keys. */
export function events(topic: string, keys: readonly string[], perKey: number, from = 0): OutboundMessage[] {
  const out: OutboundMessage[] = [];
  for (let seq = from; seq < perKey; seq++) for (const key of keys) out.push(event(topic, key, seq));
  return out;
}

/** Publishes, telling the checker what was sent and what the broker acknowledged. */
export async function publishChecked(
  t: Transport,
  checker: OrderChecker,
  messages: readonly OutboundMessage[],
): Promise<PublishOutcome[]> {
  return Promise.all(
    messages.map((m) => {
      const { key, seq } = JSON.parse(Buffer.from(m.data).toString()) as Payload;
      checker.expect(m.msgId, key, seq);
      return new Promise<PublishOutcome>((resolve) =>
        t.send(m, (outcome) => {
          if (outcome.ok) checker.acknowledged(m.msgId);
          else checker.failed(m.msgId);
          resolve(outcome);
        }),
      );
    }),
  );
}

export function publishFailures(outcomes: readonly PublishOutcome[]): string[] {
  return outcomes.flatMap((o) => (o.ok ? [] : [o.error.message]));
}

export interface FlowOptions {
  readonly capacity?: number;
  /** Each handler's work; it may wait (a gate, a delay). */
  readonly handler?: (message: InboundMessage) => Promise<void>;
}

/** The bus stand-in (see the file comment). */
export class CheckedFlow implements FlowControl {
  readonly errors: EventBusError[] = [];
  readonly received: InboundMessage[] = [];
  /** Messages let go unrun because their lane was revoked. */
  dropped = 0;
  /** Handlers running now. */
  running = 0;
  readonly #checker: OrderChecker;
  readonly #capacity: number;
  readonly #handler: ((message: InboundMessage) => Promise<void>) | undefined;
  readonly #keys = new Map<string, Promise<void>>();
  readonly #waiters = new Set<() => void>();
  #inFlight = 0;
  #stopped = false;

  constructor(checker: OrderChecker, options: FlowOptions = {}) {
    this.#checker = checker;
    this.#capacity = options.capacity ?? 256;
    this.#handler = options.handler;
  }
  get inFlight(): number {
    return this.#inFlight;
  }
  freeCapacity(): number {
    return Math.max(0, this.#capacity - this.#inFlight);
  }
  waitForCapacity(signal: AbortSignal): Promise<void> {
    if (this.freeCapacity() > 0 || signal.aborted) return Promise.resolve();
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
    this.#inFlight++;
    this.received.push(message);
    const key = message.key ?? 'none';
    const previous = this.#keys.get(key) ?? Promise.resolve();
    const run = previous.then(() => this.#run(message));
    this.#keys.set(key, run);
  }
  async #run(message: InboundMessage): Promise<void> {
    try {
      if (message.lane !== undefined && !message.lane.mayStart()) {
        this.dropped++;
        message.lane.dropped(message);
        return;
      }
      if (this.#stopped) {
        message.nak(); // shutting down: not processed, must come again
        return;
      }
      this.running++;
      try {
        if (this.#handler !== undefined) await this.#handler(message);
        else if (Math.random() < 0.2) await sleep(Math.floor(Math.random() * 3));
      } finally {
        this.running--;
      }
      const { key, seq } = JSON.parse(Buffer.from(message.data).toString()) as Payload;
      this.#checker.observe(message.headers['X-Event-ID'] ?? '', key, seq);
      message.ack();
    } catch (error) {
      message.nak();
      throw error;
    } finally {
      this.#inFlight--;
      for (const w of [...this.#waiters]) w();
    }
  }
  reportError(error: EventBusError): void {
    this.errors.push(error);
  }
  /** Waits for in-flight messages (the bus's drain), then naks the rest. */
  async drain(timeoutMs: number): Promise<void> {
    await until('the drain', () => this.#inFlight === 0, timeoutMs).catch(() => {});
    this.#stopped = true;
    await until('in-flight handlers', () => this.#inFlight === 0, 60_000);
  }
}

/** Waits for a condition (checked every 20 ms), failing with `what` after `timeoutMs`. */
export function until(what: string, condition: () => boolean, timeoutMs: number): Promise<void> {
  return pollUntil(condition, { what, timeoutMs });
}

/** Graceful shutdown as the bus does it: stop intake, drain, close. */
export async function shutdown(sub: TransportSubscription, flow: CheckedFlow): Promise<void> {
  await sub.stop();
  await flow.drain(5_000);
  await sub.close();
}

/** The Kafka transport's view of its (single) subscription, from health(). */
export interface SubscriptionView {
  readonly partitions: number[];
  readonly paused: string[];
  readonly delivered: number;
}

export function subscriptionView(t: Transport): SubscriptionView | undefined {
  const subs = t.health().details?.subscriptions as SubscriptionView[] | undefined;
  return subs?.[0];
}

export interface Gate {
  readonly promise: Promise<void>;
  open(): void;
}

export function gate(): Gate {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}
