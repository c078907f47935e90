/**
 * Publish-side chaos of the memory transport (`memory.chaos.publish`): the
 * faults a broker connection shows a publisher, so code above the transport
 * (the bus's retries, the outbox relay) can be tested on the real bus
 * instead of a hand-written double.
 *
 * - `fail`: the broker did not store it (a refused or lost request): reported
 *   as the given error, by default a retryable `TransportError`.
 * - `lose-ack`: stored, but the ack never came: reported as a retryable
 *   `TimeoutError` (outcome unknown; the same-id re-send is de-duplicated).
 * - `hold-ack`: stored now, acked only when `until` settles (an ack in
 *   transit). Held acks keep the transport's close waiting up to its
 *   deadline; those still held then end as `TimeoutError`.
 * - random ack delays (`maxAckDelayMs`) let acks of different messages
 *   arrive out of send order, as acks of pipelined publishes can.
 *
 * Every fault keeps the send contract: one outcome per send, never inside
 * `send()`. Storage order stays send order: the faults are about what the
 * publisher hears, not about the broker reordering a key's messages.
 */
import { type EventBusError, TimeoutError, TransportError } from '../../core/errors.ts';
import type { OutboundMessage, PublishCallback, PublishOutcome } from '../../core/transport.ts';
import { prng } from './delivery.ts';

/** What happens to one send (see `MemoryPublishChaosOptions.fault`). */
export type MemoryPublishFault =
  | {
      readonly kind: 'fail';
      /** Reported instead of an ack. Default: a retryable TransportError. */
      readonly error?: EventBusError;
      /** Report the failure only once this settles. */
      readonly until?: PromiseLike<unknown>;
    }
  | { readonly kind: 'lose-ack'; readonly until?: PromiseLike<unknown> }
  | { readonly kind: 'hold-ack'; readonly until: PromiseLike<unknown> };

export interface MemoryPublishChaosOptions {
  /** Probability (0..1) that a send fails unstored with a retryable TransportError. */
  readonly failRate?: number;
  /** Probability (0..1) that a send is stored but its ack is lost (a retryable TimeoutError). */
  readonly lostAckRate?: number;
  /** Upper bound (ms) of a random delay before each outcome is reported; acks then arrive out of send order. */
  readonly maxAckDelayMs?: number;
  /**
   * Decides each send's fault before the rates apply (undefined: no fault
   * from here). For tests that fail a given event, the next N sends, or hold
   * acks until they say so.
   */
  readonly fault?: (message: OutboundMessage) => MemoryPublishFault | undefined;
}

export interface ResolvedPublishChaos {
  readonly failRate: number;
  readonly lostAckRate: number;
  readonly maxAckDelayMs: number;
  readonly fault: ((message: OutboundMessage) => MemoryPublishFault | undefined) | undefined;
  readonly seed: number;
}

/** How one send goes: stored or not, what is reported, and when. */
export interface Decision {
  readonly store: boolean;
  readonly error: EventBusError | undefined;
  readonly until: PromiseLike<unknown> | undefined;
  readonly delayMs: number;
}

interface PendingAck {
  readonly done: PublishCallback;
  readonly outcome: PublishOutcome;
  readonly stored: boolean;
  readonly msgId: string;
}

export class PublishChaos {
  readonly #o: ResolvedPublishChaos;
  readonly #random: () => number;
  /** Outcomes not reported yet (delayed or held), so close can end them. */
  readonly #pending = new Set<PendingAck>();
  #drained: (() => void) | undefined;

  constructor(options: ResolvedPublishChaos) {
    this.#o = options;
    // Its own stream, so publish chaos does not shift the consume-side sequence of a seed.
    this.#random = prng(options.seed ^ 0x5bd1e995);
  }

  /** Undefined: the send goes the normal way (stored, acked in the next microtask batch). */
  decide(message: OutboundMessage): Decision | undefined {
    const o = this.#o;
    const delayMs = o.maxAckDelayMs > 0 ? this.#random() * o.maxAckDelayMs : 0;
    const fault = o.fault?.(message);
    if (fault !== undefined) {
      const until = fault.until;
      if (fault.kind === 'fail')
        return { store: false, error: fault.error ?? injected(message), until, delayMs };
      if (fault.kind === 'lose-ack') return { store: true, error: lostAck(message), until, delayMs };
      return { store: true, error: undefined, until, delayMs };
    }
    if (o.failRate > 0 && this.#random() < o.failRate) {
      return { store: false, error: injected(message), until: undefined, delayMs };
    }
    if (o.lostAckRate > 0 && this.#random() < o.lostAckRate) {
      return { store: true, error: lostAck(message), until: undefined, delayMs };
    }
    if (delayMs > 0) return { store: true, error: undefined, until: undefined, delayMs };
    return undefined;
  }

  /** Reports `outcome` per `decision`: after its delay and once `until` settled, exactly once. */
  report(decision: Decision, message: OutboundMessage, outcome: PublishOutcome, done: PublishCallback): void {
    const entry: PendingAck = { done, outcome, stored: decision.store, msgId: message.msgId };
    this.#pending.add(entry);
    const fire = (): void => this.#settle(entry, entry.outcome);
    const afterDelay = (): void => {
      if (decision.until === undefined) fire();
      else void Promise.resolve(decision.until).then(fire, fire);
    };
    if (decision.delayMs > 0) setTimeout(afterDelay, decision.delayMs);
    else queueMicrotask(afterDelay);
  }

  get pending(): number {
    return this.#pending.size;
  }

  /** Resolves once nothing is pending, or when `deadline` aborts. */
  async drain(deadline: AbortSignal): Promise<void> {
    if (this.#pending.size === 0 || deadline.aborted) return;
    await new Promise<void>((resolve) => {
      const onAbort = (): void => finish();
      const finish = (): void => {
        deadline.removeEventListener('abort', onAbort);
        this.#drained = undefined;
        resolve();
      };
      this.#drained = finish;
      deadline.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Closing past the deadline: what is still held ends as unknown (TimeoutError) or not sent. */
  endPending(): void {
    for (const entry of [...this.#pending]) {
      const error = new TimeoutError(
        `memory chaos: no ack for ${entry.msgId} before the transport closed; the outcome is unknown`,
      );
      this.#settle(entry, entry.stored ? { ok: false, error } : entry.outcome);
    }
  }

  #settle(entry: PendingAck, outcome: PublishOutcome): void {
    if (!this.#pending.delete(entry)) return;
    entry.done(outcome);
    if (this.#pending.size === 0) this.#drained?.();
  }
}

function injected(message: OutboundMessage): TransportError {
  return new TransportError(
    `memory chaos: publish of ${message.msgId} failed (injected); nothing was stored`,
  );
}

function lostAck(message: OutboundMessage): TimeoutError {
  return new TimeoutError(
    `memory chaos: the ack of ${message.msgId} was lost (injected); it was stored, the outcome is unknown to the publisher`,
  );
}
