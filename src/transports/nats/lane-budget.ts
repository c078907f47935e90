/**
 * One actor pool, several pull loops (one per owned partition): each loop may
 * ask only for what the pool can take minus what the OTHER loops' open pulls
 * may still deliver, or the pool overfills (the conformance backpressure
 * scenario saw 767 in a pool of 256 without this). A loop's share is also
 * capped at an even split, so one lane with an empty partition cannot hold
 * the whole pool's capacity in a pull that returns nothing.
 */
import type { FlowControl } from '../../core/transport.ts';

export interface OwedSource {
  owed(): number;
}

export class LaneBudget {
  readonly #flow: FlowControl;
  readonly #loops = new Set<OwedSource>();
  #waiters: Array<() => void> = [];

  constructor(flow: FlowControl) {
    this.#flow = flow;
  }

  add(loop: OwedSource): void {
    this.#loops.add(loop);
  }

  remove(loop: OwedSource): void {
    this.#loops.delete(loop);
    this.changed();
  }

  /** An open pull ended somewhere: wake loops waiting for their share. */
  changed(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  /** The FlowControl one lane's loop sees. */
  flowFor(getLoop: () => OwedSource | undefined): FlowControl {
    const flow = this.#flow;
    const share = (): number => {
      const self = getLoop();
      const poolFree = flow.freeCapacity();
      if (poolFree <= 0) return 0;
      let allOwed = 0;
      let othersOwed = 0;
      for (const loop of this.#loops) {
        const owed = loop.owed();
        allOwed += owed;
        if (loop !== self) othersOwed += owed;
      }
      const even = Math.ceil((poolFree + allOwed) / Math.max(1, this.#loops.size));
      // The loop subtracts its own owed pulls from what this returns.
      return Math.max(0, Math.min(poolFree - othersOwed, even));
    };
    return {
      freeCapacity: share,
      waitForCapacity: (signal) => {
        if (signal.aborted || share() > 0) return Promise.resolve();
        if (flow.freeCapacity() <= 0) return flow.waitForCapacity(signal);
        // The pool has room but other lanes' pulls may still fill it: wait until one ends.
        return new Promise<void>((resolve) => {
          const done = (): void => {
            signal.removeEventListener('abort', done);
            resolve();
          };
          this.#waiters.push(done);
          signal.addEventListener('abort', done, { once: true });
        });
      },
      deliver: (message) => flow.deliver(message),
      reportError: (error) => flow.reportError(error),
    };
  }
}
