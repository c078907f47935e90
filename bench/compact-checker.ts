/**
 * The order checker's classification for the bench workload in ~3 bytes per
 * message instead of a Map entry per message: event ids are `<prefix><i>`,
 * so per-message state lives in typed arrays indexed by i, and "highest index
 * seen" per aggregate in one array of 1,000 numbers. Used by the memory soak
 * only, where the bench's own per-message bookkeeping must not be what grows.
 */
import type { CheckerReport, OrderChecker } from '../src/testing/checker.ts';
import type { Workload } from './workload.ts';

const ACKED = 1;
const FAILED = 2;
/** First consumed after a later version of its aggregate. */
const LATE = 4;

export function createCompactChecker(w: Workload, n: number): OrderChecker {
  const state = new Uint8Array(n);
  const seen = new Uint8Array(n);
  const highest = new Float64Array(w.aggregates).fill(-1);
  let expected = 0;
  let consumed = 0;
  let unexpected = 0;
  let outOfOrder = 0;
  let pendingAcked = 0;
  const examples = { lost: [] as string[], outOfOrder: [] as string[], unexpected: [] as string[] };
  const index = (id: string): number => {
    const i = w.indexOf(id);
    return Number.isInteger(i) && i >= 0 && i < n ? i : -1;
  };
  const acked = (i: number): boolean => ((state[i] as number) & ACKED) !== 0;
  return {
    expect(id) {
      if (index(id) >= 0) expected++;
    },
    acknowledged(id) {
      const i = index(id);
      if (i < 0 || acked(i)) return;
      state[i] = (state[i] as number) | ACKED;
      if (seen[i] === 0) pendingAcked++;
    },
    failed(id) {
      const i = index(id);
      if (i >= 0) state[i] = (state[i] as number) | FAILED;
    },
    observe(id, key, version) {
      consumed++;
      const i = index(id);
      if (i < 0) {
        unexpected++;
        if (examples.unexpected.length < 10) examples.unexpected.push(`${key}#${version} (${id})`);
        return;
      }
      if (seen[i] !== 255) seen[i] = (seen[i] as number) + 1;
      if (seen[i] !== 1) return;
      if (acked(i)) pendingAcked--;
      const a = i % w.aggregates;
      const top = highest[a] as number;
      if (version < top) {
        outOfOrder++;
        state[i] = (state[i] as number) | LATE;
        if (examples.outOfOrder.length < 10) examples.outOfOrder.push(`${key}: #${version} after #${top}`);
      } else highest[a] = version;
    },
    outstanding: () => pendingAcked,
    expectedCount: () => expected,
    report(): CheckerReport {
      let ok = 0;
      let exactlyOnce = 0;
      let lost = 0;
      let duplicated = 0;
      let acknowledged = 0;
      let unknown = 0;
      let recovered = 0;
      for (let i = 0; i < n; i++) {
        const flags = state[i] as number;
        const times = seen[i] as number;
        const wasAcked = (flags & ACKED) !== 0;
        if (wasAcked) acknowledged++;
        if ((flags & FAILED) !== 0 && !wasAcked && times === 0) unknown++;
        if (times > 1) duplicated++;
        if (times > 0) {
          if (wasAcked && times === 1 && (flags & LATE) === 0) exactlyOnce++;
          if (wasAcked) ok++;
          else recovered++;
        } else if (wasAcked) {
          lost++;
          if (examples.lost.length < 10) examples.lost.push(`${w.aggregateOf(i)}#${w.versionOf(i)}`);
        }
      }
      return {
        published: expected,
        acknowledged,
        unknown,
        consumed,
        ok,
        exactlyOnce,
        lost,
        duplicated,
        outOfOrder,
        unexpected,
        recovered,
        examples,
      };
    },
  };
}
