/**
 * The part every transport's delivered message shares: the first of
 * ack / nak / term counts, later calls are ignored (the dispatcher may settle
 * a message from a timeout and again from the handler that finally returned;
 * the broker must hear only one answer). A transport extends this and says
 * what a settlement does in `onSettle`.
 */

export type Settlement =
  | { readonly how: 'ack' }
  | { readonly how: 'nak'; readonly delayMs: number | undefined }
  | { readonly how: 'term'; readonly reason: string };

export abstract class SettleOnce {
  #settled = false;

  /** True once ack, nak or term was called (or the message was fenced). */
  get settled(): boolean {
    return this.#settled;
  }

  ack(): void {
    this.#settle({ how: 'ack' });
  }

  nak(delayMs?: number): void {
    this.#settle({ how: 'nak', delayMs });
  }

  term(reason: string): void {
    this.#settle({ how: 'term', reason });
  }

  /** Still working on it: passed on (onWorking) until the message is settled. */
  working(): void {
    if (this.#settled) return;
    if (this.fenced()) {
      this.#settled = true;
      return;
    }
    this.onWorking();
  }

  /** The first settlement; called at most once per message. */
  protected abstract onSettle(settlement: Settlement): void;

  /**
   * Checked before the first settlement: true means "settle nothing" (e.g. a
   * message of a partition no longer owned); the message counts as settled.
   * Also checked before passing on `working()`.
   */
  protected fenced(): boolean {
    return false;
  }

  /** Extends the broker's ack deadline; nothing by default (no per-message deadline). */
  protected onWorking(): void {}

  #settle(settlement: Settlement): void {
    if (this.#settled) return;
    this.#settled = true;
    if (this.fenced()) return;
    this.onSettle(settlement);
  }
}
