/**
 * The contract suite's stand-in for the bus: a FlowControl that records what a
 * transport delivers and settles it on request, with a fixed capacity, so a
 * transport is checked against the seam alone (core/transport.ts).
 */
import { randomUUID } from 'node:crypto';
import type { EventBusError } from '../core/errors.ts';
import type {
  FlowControl,
  InboundMessage,
  OutboundMessage,
  PublishOutcome,
  Transport,
} from '../core/transport.ts';
import { type Signal, until } from './waiters.ts';

export const uniqueContractTopic = (name: string): string => `tc-${name}-${randomUUID().slice(0, 8)}`;

/** One envelope-kind message; the body is opaque to a transport. */
export function outbound(
  topic: string,
  key: string | undefined,
  body: string,
  msgId?: string,
): OutboundMessage {
  const id = msgId ?? randomUUID();
  return {
    topic,
    kind: 'envelope',
    data: new TextEncoder().encode(body),
    headers: { 'X-Event-ID': id, 'X-Contract': body },
    msgId: id,
    key,
  };
}

export const bodyOf = (message: InboundMessage): string => new TextDecoder().decode(message.data);

/** Sends and resolves with the outcome; records whether the callback came synchronously (it must not). */
export function sendAndWait(
  transport: Transport,
  message: OutboundMessage,
): Promise<PublishOutcome & { readonly synchronous: boolean }> {
  return new Promise((resolve) => {
    let returned = false;
    transport.send(message, (outcome) => resolve({ ...outcome, synchronous: !returned }));
    returned = true;
  });
}

type Settle = 'ack' | 'nak' | 'term' | 'hold';

/** A FlowControl with `capacity` slots; `onDeliver` decides how each delivery is settled. */
export class ContractIntake implements FlowControl {
  readonly delivered: InboundMessage[] = [];
  readonly errors: EventBusError[] = [];
  /** Deliveries after the subscription's stop() resolved: a contract violation. */
  readonly late: InboundMessage[] = [];
  stopped = false;
  #unsettled = 0;
  readonly #capacity: number;
  readonly #onDeliver: (message: InboundMessage, intake: ContractIntake) => Settle;
  readonly #waiters = new Set<() => void>();
  readonly #signals = new Set<Signal>();

  constructor(onDeliver: (message: InboundMessage, intake: ContractIntake) => Settle, capacity = 64) {
    this.#onDeliver = onDeliver;
    this.#capacity = capacity;
  }

  get unsettled(): number {
    return this.#unsettled;
  }

  freeCapacity(): number {
    return Math.max(0, this.#capacity - this.#unsettled);
  }

  waitForCapacity(signal: AbortSignal): Promise<void> {
    if (signal.aborted || this.freeCapacity() > 0) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = (): void => {
        this.#waiters.delete(wake);
        signal.removeEventListener('abort', wake);
        resolve();
      };
      this.#waiters.add(wake);
      signal.addEventListener('abort', wake, { once: true });
    });
  }

  deliver(message: InboundMessage): void {
    if (this.stopped) this.late.push(message);
    this.delivered.push(message);
    this.#unsettled++;
    const how = this.#onDeliver(message, this);
    if (how !== 'hold') this.settle(message, how);
    this.#changed();
  }

  /** Settles a delivery (held ones too) and frees its slot. */
  settle(message: InboundMessage, how: Exclude<Settle, 'hold'>): void {
    if (how === 'ack') message.ack();
    else if (how === 'nak') message.nak();
    else message.term('contract suite');
    this.#unsettled--;
    for (const wake of [...this.#waiters]) wake();
  }

  reportError(error: EventBusError): void {
    this.errors.push(error);
  }

  /** Resolves once `condition` holds, re-checked on every delivery. */
  until(condition: () => boolean, describe: () => string, timeoutMs: number): Promise<void> {
    return untilAcross([this], condition, describe, timeoutMs);
  }

  /** Re-checks `signal` on every delivery until the returned function is called. */
  watch(signal: Signal): () => void {
    this.#signals.add(signal);
    return () => this.#signals.delete(signal);
  }

  bodies(): string[] {
    return this.delivered.map(bodyOf);
  }

  #changed(): void {
    for (const signal of this.#signals) signal.check();
  }
}

/** Resolves once `condition` holds, re-checked on every delivery to any of `intakes`. */
export async function untilAcross(
  intakes: readonly ContractIntake[],
  condition: () => boolean,
  describe: () => string,
  timeoutMs: number,
): Promise<void> {
  const signal = until(condition, describe);
  const unwatch = intakes.map((intake) => intake.watch(signal));
  try {
    await signal.wait(timeoutMs);
  } finally {
    for (const stop of unwatch) stop();
  }
}
