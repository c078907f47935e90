/**
 * Classifies every message of a run, per aggregate, after the Jepsen queue
 * checker: ok / lost / duplicated / out of order / unexpected / recovered.
 * Tests assert on the classification, never on bare counts.
 *
 * - published + acknowledged and consumed at least once → ok
 * - published + acknowledged and never consumed → lost
 * - publish failed (or outcome unknown) and never consumed → unknown
 * - consumed more than once → duplicated (allowed for at-least-once; counted)
 * - first consumption of a message whose index is below one already consumed
 *   for the same key → out of order
 * - consumed but never published → unexpected
 * - publish failed or had an unknown outcome, yet consumed → recovered
 */

export interface CheckerReport {
  readonly published: number;
  readonly acknowledged: number;
  readonly unknown: number;
  readonly consumed: number;
  readonly ok: number;
  /** Acknowledged, consumed exactly once and not out of order: the strict verdict. */
  readonly exactlyOnce: number;
  readonly lost: number;
  readonly duplicated: number;
  readonly outOfOrder: number;
  readonly unexpected: number;
  readonly recovered: number;
  /** Up to 10 examples per problem class, for failure messages. */
  readonly examples: {
    readonly lost: string[];
    readonly outOfOrder: string[];
    readonly unexpected: string[];
  };
}

interface Expected {
  readonly key: string;
  readonly index: number;
  acked: boolean;
  failed: boolean;
  seen: number;
  /** Its first consumption came after a later index of its key. */
  late: boolean;
}

export interface OrderChecker {
  /** A message about to be published: `index` is its position within `key`. */
  expect(id: string, key: string, index: number): void;
  /** The broker acknowledged the publish. */
  acknowledged(id: string): void;
  /** The publish failed or its outcome is unknown. */
  failed(id: string): void;
  /** A handler consumed `id`. */
  observe(id: string, key: string, index: number): void;
  /** Messages acknowledged but not yet consumed. */
  outstanding(): number;
  /** Messages announced with expect() so far (cheap, for wait conditions). */
  expectedCount(): number;
  report(): CheckerReport;
}

export function createOrderChecker(): OrderChecker {
  const expected = new Map<string, Expected>();
  const highest = new Map<string, number>();
  let consumed = 0;
  let unexpected = 0;
  let outOfOrder = 0;
  let pendingAcked = 0;
  // Ordering and unexpected examples are found while observing; lost ones per report.
  const seenExamples = { outOfOrder: [] as string[], unexpected: [] as string[] };
  const note = (list: string[], text: string): void => {
    if (list.length < 10) list.push(text);
  };

  return {
    expect(id, key, index) {
      expected.set(id, { key, index, acked: false, failed: false, seen: 0, late: false });
    },
    acknowledged(id) {
      const e = expected.get(id);
      if (e && !e.acked) {
        e.acked = true;
        if (e.seen === 0) pendingAcked++;
      }
    },
    failed(id) {
      const e = expected.get(id);
      if (e) e.failed = true;
    },
    observe(id, key, index) {
      consumed++;
      const e = expected.get(id);
      if (!e) {
        unexpected++;
        note(seenExamples.unexpected, `${key}#${index} (${id})`);
        return;
      }
      e.seen++;
      if (e.seen > 1) return; // a duplicate: not an ordering event
      if (e.acked) pendingAcked--;
      const top = highest.get(key) ?? -1;
      if (index < top) {
        outOfOrder++;
        e.late = true;
        note(seenExamples.outOfOrder, `${key}: #${index} after #${top}`);
      } else {
        highest.set(key, index);
      }
    },
    outstanding: () => pendingAcked,
    expectedCount: () => expected.size,
    report() {
      let ok = 0;
      let exactlyOnce = 0;
      let lost = 0;
      let duplicated = 0;
      let acknowledged = 0;
      let unknown = 0;
      let recovered = 0;
      const lostExamples: string[] = [];
      for (const [id, e] of expected) {
        if (e.acked) acknowledged++;
        if (e.failed && !e.acked && e.seen === 0) unknown++;
        if (e.seen > 1) duplicated++;
        if (e.seen > 0) {
          if (e.acked && e.seen === 1 && !e.late) exactlyOnce++;
          if (e.acked) ok++;
          else recovered++;
        } else if (e.acked) {
          lost++;
          note(lostExamples, `${e.key}#${e.index} (${id})`);
        }
      }
      return {
        published: expected.size,
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
        examples: { lost: lostExamples, ...seenExamples },
      };
    },
  };
}

/** One-line summary for logs and failure messages. */
export function formatReport(r: CheckerReport): string {
  return (
    `published=${r.published} acked=${r.acknowledged} unknown=${r.unknown} consumed=${r.consumed} ` +
    `ok=${r.ok} lost=${r.lost} duplicated=${r.duplicated} outOfOrder=${r.outOfOrder} ` +
    `unexpected=${r.unexpected} recovered=${r.recovered}` +
    (r.examples.lost.length ? ` lost e.g. ${r.examples.lost.slice(0, 3).join(', ')}` : '') +
    (r.examples.outOfOrder.length ? ` order e.g. ${r.examples.outOfOrder.slice(0, 3).join(', ')}` : '')
  );
}

export interface DeliveryExpectation {
  readonly eventId: string;
  readonly aggregateId: string;
  /** Position within its aggregate (publish order). */
  readonly index: number;
}

/**
 * Batch form: classifies what a consumer (or a stream read back) saw against
 * what was committed, every expected event counting as acknowledged (e.g. the
 * outbox: a committed row must arrive). `exactlyOnce === expected.length` is
 * "each exactly once, in aggregate order".
 */
export function checkDelivery(
  expected: readonly DeliveryExpectation[],
  seen: readonly { readonly eventId: string }[],
): CheckerReport {
  const checker = createOrderChecker();
  const byId = new Map<string, DeliveryExpectation>();
  for (const e of expected) {
    byId.set(e.eventId, e);
    checker.expect(e.eventId, e.aggregateId, e.index);
    checker.acknowledged(e.eventId);
  }
  for (const s of seen) {
    const e = byId.get(s.eventId);
    checker.observe(s.eventId, e?.aggregateId ?? '(unknown)', e?.index ?? -1);
  }
  return checker.report();
}

/**
 * Handler executions across members (processes), for the rule "no two
 * handler executions of one aggregate overlap". Members report each
 * execution's start and end on one clock (`process.hrtime.bigint()`:
 * CLOCK_MONOTONIC, comparable across the processes of one Linux machine).
 *
 * - Two executions of one key whose closed [start, end] intervals intersect
 *   → one overlap (counted per pair), whichever members ran them.
 * - Only executions that applied their effect count: a handler that found it
 *   had lost ownership before committing reports `applied: false` and is
 *   counted as fenced, not as an overlap.
 * - Started but never finished (its member was killed, or it still runs) →
 *   unfinished; it applied nothing, so it overlaps nothing.
 */
export interface ExecutionReport {
  readonly started: number;
  readonly finished: number;
  readonly applied: number;
  /** Finished with applied = false: the handler saw it no longer owned the key. */
  readonly fenced: number;
  readonly unfinished: number;
  /** finished() calls with no open start of that member and id (a harness bug if > 0). */
  readonly unmatched: number;
  /** Pairs of applied executions of one key whose intervals intersect. */
  readonly overlaps: number;
  /** Up to 10 overlapping pairs, naming both members and event ids. */
  readonly examples: { readonly overlaps: string[] };
}

export interface ExecutionChecker {
  /** `member` started handling event `id` of aggregate `key` at `t` (hrtime ns). */
  started(key: string, id: string, member: string, t: bigint): void;
  /** The execution ended at `t`; `applied` is whether its effect was committed. */
  finished(key: string, id: string, member: string, t: bigint, applied: boolean): void;
  report(): ExecutionReport;
}

interface Execution {
  readonly member: string;
  readonly id: string;
  readonly start: bigint;
  readonly end: bigint;
}

export function createExecutionChecker(): ExecutionChecker {
  /** Applied executions per key; sorted only when a report is asked for. */
  const appliedByKey = new Map<string, Execution[]>();
  /** Open starts per member and id, oldest first (one event may run again in one member). */
  const open = new Map<string, bigint[]>();
  const openKey = (member: string, id: string): string => `${member}\u0000${id}`;
  let started = 0;
  let finished = 0;
  let applied = 0;
  let fenced = 0;
  let unmatched = 0;

  return {
    started(_key, id, member, t) {
      started++;
      const k = openKey(member, id);
      const starts = open.get(k);
      if (starts) starts.push(t);
      else open.set(k, [t]);
    },
    finished(key, id, member, t, wasApplied) {
      finished++;
      const k = openKey(member, id);
      const starts = open.get(k);
      const start = starts?.shift();
      if (starts?.length === 0) open.delete(k);
      if (start === undefined) unmatched++;
      if (!wasApplied) {
        fenced++;
        return;
      }
      applied++;
      const execution = { member, id, start: start ?? t, end: t };
      const list = appliedByKey.get(key);
      if (list) list.push(execution);
      else appliedByKey.set(key, [execution]);
    },
    report() {
      let overlaps = 0;
      const examples: string[] = [];
      for (const [key, list] of appliedByKey) {
        list.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
        // Sweep by start: `active` holds earlier executions still running at the
        // current start. It stays as small as a key's real concurrency (1 when
        // all is well), so the sweep is linear after the sort.
        let active: Execution[] = [];
        for (const current of list) {
          active = active.filter((e) => e.end >= current.start);
          for (const earlier of active) {
            overlaps++;
            if (examples.length < 10) examples.push(describeOverlap(key, earlier, current));
          }
          active.push(current);
        }
      }
      let unfinished = 0;
      for (const starts of open.values()) unfinished += starts.length;
      return {
        started,
        finished,
        applied,
        fenced,
        unfinished,
        unmatched,
        overlaps,
        examples: { overlaps: examples },
      };
    },
  };
}

function describeOverlap(key: string, earlier: Execution, later: Execution): string {
  // bigint has no Math.min: the shared stretch ends with the earlier of the two ends.
  const sharedEnd = Number(earlier.end - later.start);
  const ms = (Math.min(sharedEnd, Number(later.end - later.start)) / 1e6).toFixed(3);
  return `${key}: ${earlier.member} ran ${earlier.id} while ${later.member} ran ${later.id} (together ${ms} ms)`;
}

/** One-line summary of an execution report, for logs and failure messages. */
export function formatExecutionReport(r: ExecutionReport): string {
  return (
    `executions started=${r.started} finished=${r.finished} applied=${r.applied} fenced=${r.fenced} ` +
    `unfinished=${r.unfinished} unmatched=${r.unmatched} overlaps=${r.overlaps}` +
    (r.examples.overlaps.length ? ` overlap e.g. ${r.examples.overlaps.slice(0, 3).join('; ')}` : '')
  );
}
