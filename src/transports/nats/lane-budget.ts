/**
 * One actor pool, several pull loops (one per owned partition): each loop may
 * ask only for what the pool can take minus what the OTHER loops' open pulls
 * may still deliver, or the pool overfills (the conformance backpressure
 * scenario saw 767 in a pool of 256 without this). A loop's share is also
 * capped at an even split among the lanes that have messages to pull, so one
 * lane cannot hold the whole pool while the others wait. Idle lanes (whose
 * last pull brought little: they ask for at most MIN_PULL_BATCH, see
 * pull-sizing.ts) are left what their live pulls hold and not counted in the split:
 * at the end of a backlog, with 16 of 17 lanes drained, the last busy lane
 * was held to 1/17 of the pool (pulls of ~250 when 500 were allowed).
 */

import type { FlowControl } from '../../core/transport.ts';
import { wakeOrAbort } from '../../core/waiting.ts';
import { MIN_PULL_BATCH } from './pull-sizing.ts';

/** Re-check interval for a lane waiting on other lanes' pulls. */
const RECHECK_MS = 20;

export interface OwedSource {
  owed(): number;
  liveOwed(): number;
  /** What its next pull asks for when room allows. */
  wanted(): number;
  /** Another lane waits for room: settle expired pulls as soon as possible. */
  requestFence(): void;
}

export class LaneBudget {
  readonly #flow: FlowControl;
  readonly #loops = new Set<OwedSource>();
  #waiters: Array<() => void> = [];
  /** Lanes of a claim round in progress that have no loop yet: counted as busy in the split. */
  #expected = 0;

  constructor(flow: FlowControl) {
    this.#flow = flow;
  }

  /**
   * `lanes` loops are about to join (a subscription's first claim round; 0
   * once it is over). Without it the loops that attach first split the pool
   * among themselves, fill it with pulls their partitions cannot fill, and the
   * lanes that attach last get no room until those pulls expire (a fresh
   * subscription of 50 events: the last handled ~130 ms after subscribe, the
   * consumers all existed by ~45 ms).
   */
  expect(lanes: number): void {
    this.#expected = Math.max(0, lanes);
    this.changed();
  }

  add(loop: OwedSource): void {
    this.#loops.add(loop);
    if (this.#expected > 0) this.#expected--;
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
      let othersLive = 0;
      let idleReserve = 0;
      let busy = 1 + this.#expected;
      for (const loop of this.#loops) {
        const live = loop.liveOwed();
        if (loop === self) continue;
        othersLive += live;
        const wanted = loop.wanted();
        // An idle lane is left what its live pulls hold, never more: a reserve for
        // lanes that hold nothing could exceed a small pool and starve everyone.
        if (wanted <= MIN_PULL_BATCH) idleReserve += Math.min(wanted, live);
        else busy++;
      }
      const ownAll = self?.owed() ?? 0;
      const ownLive = self?.liveOwed() ?? 0;
      // The loop subtracts everything it is owed (also expired pulls in their grace)
      // from what this returns. The pool bound counts other lanes' live pulls; the
      // even split caps only this lane's live pulls, or an expired pull that the
      // server ended silently would hold a small share for its whole grace. The
      // split is of the room left for pulls (live pulls deliver into it): splitting
      // room plus what is already promised gave each later lane more than the one
      // before, and the last ones nothing.
      const even = Math.ceil(Math.max(0, poolFree - idleReserve) / busy);
      return Math.max(0, Math.min(poolFree - othersLive, even - ownLive + ownAll));
    };
    return {
      freeCapacity: share,
      waitForCapacity: (signal) => {
        if (signal.aborted || share() > 0) return Promise.resolve();
        if (flow.freeCapacity() <= 0) return flow.waitForCapacity(signal);
        // Expired pulls (this lane's too) may hold that room: have them settled.
        for (const loop of this.#loops) loop.requestFence();
        // The pool has room but other lanes' pulls may still fill it: wait until one ends.
        // nats-server 2.9 ends a partly answered pull without a word when it expires,
        // so "one ended" is also re-checked on a short timer (a pull lives ~100 ms).
        return wakeOrAbort(
          signal,
          (wake) => {
            this.#waiters.push(wake);
            return undefined; // woken (and dropped) when the next pull ends
          },
          RECHECK_MS,
        );
      },
      deliver: (message) => flow.deliver(message),
      reportError: (error) => flow.reportError(error),
    };
  }
}
