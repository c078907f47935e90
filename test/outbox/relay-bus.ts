/**
 * The real bus on the memory transport for relay tests, steered through the
 * transport's publish chaos (src/transports/memory/README.md, "Chaos mode"):
 * per-send faults, acks held until the test releases them, random ack
 * delays. The relay gets a thin spy over the bus that records its calls and
 * detects a second publish of an aggregate while one is unacknowledged (the
 * bus would queue it silently, so only the relay's side of the bus shows it).
 */
import { createEventBus } from '../../src/bus/create-event-bus.ts';
import { decodeEnvelope, type Envelope, type EnvelopeInput } from '../../src/core/envelope.ts';
import type { StandardSchemaV1 } from '../../src/core/standard-schema.ts';
import type { EventBus, PublishResult } from '../../src/core/types.ts';
import type { RelayBus } from '../../src/outbox/relay-options.ts';
import {
  createMemoryBroker,
  type MemoryBroker,
  type MemoryPublishFault,
} from '../../src/transports/memory/index.ts';

type TestPayload = { readonly aggregateId: string; readonly index: number };

export interface RelayBusOptions {
  /** The fault of a send, given its envelope and attempt (1-based per event, counting the bus's own retries). */
  readonly fault?: (envelope: Envelope, attempt: number) => MemoryPublishFault | undefined;
  /** Refuse to accept a publish of this payload (the topic's schema rejects it: `publishEnvelope` throws). */
  readonly refuse?: (payload: TestPayload) => boolean;
  /** Random ack delay bound (acks out of send order). */
  readonly maxAckDelayMs?: number;
  /** The bus's publish deadline; a small one ends a retryable failure at once as TimeoutError. */
  readonly publishDeadlineMs?: number;
}

export class TestRelayBus {
  readonly broker: MemoryBroker = createMemoryBroker();
  /** Every PublishResult of the bus, in order. */
  readonly results: PublishResult[] = [];
  /** The relay's publishEnvelope calls per eventId. */
  readonly calls = new Map<string, number>();
  /** Transport sends per eventId (bus retries included). */
  readonly sends = new Map<string, number>();
  /** Publishes of an aggregate made while an earlier one of it was unacknowledged. */
  readonly concurrentPerAggregate: string[] = [];
  /** While true, each send is stored and its ack held until `releaseHeld()`. */
  hold = false;
  #bus: EventBus | undefined;
  #held: Array<() => void> = [];
  readonly #unacked = new Map<string, string>();
  readonly #options: RelayBusOptions;

  private constructor(options: RelayBusOptions) {
    this.#options = options;
  }

  static async create(options: RelayBusOptions = {}): Promise<TestRelayBus> {
    const b = new TestRelayBus(options);
    await b.#open();
    return b;
  }

  async #open(): Promise<void> {
    const o = this.#options;
    this.#bus = await createEventBus({
      transport: 'memory',
      clientId: 'relay-test',
      memory: {
        broker: this.broker,
        chaos: {
          publish: {
            fault: (message) => this.#fault(decodeEnvelope(message.data)),
            ...(o.maxAckDelayMs === undefined ? {} : { maxAckDelayMs: o.maxAckDelayMs }),
          },
        },
      },
      metrics: { enabled: false },
      ...(o.publishDeadlineMs === undefined ? {} : { publishDeadlineMs: o.publishDeadlineMs }),
      ...(o.refuse === undefined ? {} : { topics: { orders: { TestEvent: refusingSchema(o.refuse) } } }),
      onPublishResult: (r) => {
        this.results.push(r);
        if (r.aggregateId !== undefined && this.#unacked.get(r.aggregateId) === r.eventId)
          this.#unacked.delete(r.aggregateId);
      },
    });
  }

  #fault(envelope: Envelope): MemoryPublishFault | undefined {
    const attempt = (this.sends.get(envelope.eventId) ?? 0) + 1;
    this.sends.set(envelope.eventId, attempt);
    const fault = this.#options.fault?.(envelope, attempt);
    if (fault !== undefined || !this.hold) return fault;
    return { kind: 'hold-ack', until: new Promise<void>((release) => this.#held.push(release)) };
  }

  get bus(): EventBus {
    return this.#bus as EventBus;
  }

  /** What the relay is given: the real bus behind a recording spy. */
  get relayBus(): RelayBus {
    const bus = this.bus;
    return {
      features: bus.features,
      publishResults: () => bus.publishResults(),
      publishEnvelope: async <P>(topic: string, input: EnvelopeInput<P>) => {
        const id = input.eventId as string;
        this.calls.set(id, (this.calls.get(id) ?? 0) + 1);
        const inFlight = this.#unacked.get(input.aggregateId);
        if (inFlight !== undefined)
          this.concurrentPerAggregate.push(`${input.aggregateId}: ${id} while ${inFlight}`);
        this.#unacked.set(input.aggregateId, id);
        try {
          return await bus.publishEnvelope(topic, input);
        } catch (error) {
          if (this.#unacked.get(input.aggregateId) === id) this.#unacked.delete(input.aggregateId);
          throw error;
        }
      },
    };
  }

  get heldCount(): number {
    return this.#held.length;
  }

  releaseHeld(): void {
    for (const release of this.#held.splice(0)) release();
  }

  /** The broker's stored stream of `topic`, decoded, in stream order (one copy per stored message). */
  log(topic = 'orders'): Envelope[] {
    return this.broker.messages(topic).map((m) => decodeEnvelope(m.data));
  }

  /** The stored stream as the checker's observations. */
  observed(topic = 'orders'): { eventId: string }[] {
    return this.log(topic).map((e) => ({ eventId: e.eventId }));
  }

  async close(): Promise<void> {
    this.hold = false;
    this.releaseHeld();
    await this.#bus?.close({ timeoutMs: 5000 });
  }
}

/** Opens a bus, runs `fn`, closes the bus. */
export async function withRelayBus<T>(
  options: RelayBusOptions,
  fn: (b: TestRelayBus) => Promise<T>,
): Promise<T> {
  const b = await TestRelayBus.create(options);
  try {
    return await fn(b);
  } finally {
    await b.close();
  }
}

/** A Standard Schema that refuses the payloads `refuse` names (everything else passes unchanged). */
function refusingSchema(refuse: (payload: TestPayload) => boolean): StandardSchemaV1 {
  return {
    '~standard': {
      version: 1,
      vendor: 'relay-test',
      validate: (value: unknown) =>
        refuse(value as TestPayload) ? { issues: [{ message: 'refused by the test schema' }] } : { value },
    },
  } as StandardSchemaV1;
}
