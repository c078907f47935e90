/**
 * Delivery checker: classifies every expected event as ok, lost, duplicated
 * or out-of-order from what a consumer (or a stream) saw, per aggregate.
 * Counts alone hide a loss plus a duplicate; this does not.
 */

export interface ExpectedEvent {
  readonly eventId: string;
  readonly aggregateId: string;
  /** Position within its aggregate (publish order). */
  readonly index: number;
}

export interface SeenEvent {
  readonly eventId: string;
}

export type Verdict = 'ok' | 'lost' | 'duplicated' | 'out-of-order';

export interface CheckReport {
  readonly total: number;
  readonly ok: number;
  readonly lost: number;
  readonly duplicated: number;
  readonly outOfOrder: number;
  /** Seen events that were never expected. */
  readonly unexpected: number;
  readonly examples: readonly string[];
  readonly verdicts: ReadonlyMap<string, Verdict>;
}

export function checkDelivery(expected: readonly ExpectedEvent[], seen: readonly SeenEvent[]): CheckReport {
  const byId = new Map<string, ExpectedEvent>();
  for (const e of expected) byId.set(e.eventId, e);
  const count = new Map<string, number>();
  const outOfOrder = new Set<string>();
  const highest = new Map<string, number>();
  let unexpected = 0;
  for (const s of seen) {
    const e = byId.get(s.eventId);
    if (e === undefined) {
      unexpected++;
      continue;
    }
    const n = (count.get(s.eventId) ?? 0) + 1;
    count.set(s.eventId, n);
    if (n > 1) continue; // a redelivery is a duplicate, not an order violation
    const top = highest.get(e.aggregateId) ?? -1;
    if (e.index < top) outOfOrder.add(e.eventId);
    else highest.set(e.aggregateId, e.index);
  }
  const verdicts = new Map<string, Verdict>();
  const tally = { ok: 0, lost: 0, duplicated: 0, outOfOrder: 0 };
  const examples: string[] = [];
  for (const e of expected) {
    const n = count.get(e.eventId) ?? 0;
    let v: Verdict;
    if (n === 0) v = 'lost';
    else if (outOfOrder.has(e.eventId)) v = 'out-of-order';
    else if (n > 1) v = 'duplicated';
    else v = 'ok';
    verdicts.set(e.eventId, v);
    if (v === 'ok') tally.ok++;
    else {
      if (v === 'lost') tally.lost++;
      else if (v === 'duplicated') tally.duplicated++;
      else tally.outOfOrder++;
      if (examples.length < 5) examples.push(`${v}: ${e.aggregateId}#${e.index} (${e.eventId}) seen ${n}x`);
    }
  }
  return { total: expected.length, ...tally, unexpected, examples, verdicts };
}

export function summary(r: CheckReport): string {
  return `total=${r.total} ok=${r.ok} lost=${r.lost} duplicated=${r.duplicated} out-of-order=${r.outOfOrder} unexpected=${r.unexpected}${
    r.examples.length ? ` e.g. ${r.examples.join('; ')}` : ''
  }`;
}
