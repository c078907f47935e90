/**
 * Merges timestamped reports from several processes into one stream in time
 * order, for checkers that judge order by the sequence of calls (the order
 * checker's observe()).
 *
 * Each source sends its events in time order, with a watermark: a time no
 * later event of that source can precede. An event is released once every
 * open source's watermark has reached it, so nothing released can be
 * preceded by an event still on its way. A source that sends nothing (a
 * SIGSTOPped process) holds back the release until it reports again or is
 * closed (exited): exact, at the price of a stall while it is stopped.
 */

export interface Timed {
  readonly t: bigint;
}

interface Source<E> {
  queue: E[];
  watermark: bigint;
  /** Sends nothing more: no longer holds others back, but its queue still goes out in order. */
  closed: boolean;
}

export class TimeOrderedMerge<E extends Timed> {
  readonly #sources = new Map<string, Source<E>>();
  readonly #release: (events: E[]) => void;

  /** `release` receives each released run of events, in time order. */
  constructor(release: (events: E[]) => void) {
    this.#release = release;
  }

  /** A new source; none of its events will be earlier than `since` (e.g. its spawn time). */
  open(source: string, since: bigint): void {
    if (this.#sources.has(source)) throw new Error(`time merge: source ${source} is already open`);
    this.#sources.set(source, { queue: [], watermark: since, closed: false });
  }

  /** Events of `source` (in time order), all at or before `watermark`. */
  push(source: string, events: readonly E[], watermark: bigint): void {
    const s = this.#sources.get(source);
    if (s === undefined || s.closed) throw new Error(`time merge: source ${source} is not open`);
    for (const e of events) s.queue.push(e);
    if (watermark > s.watermark) s.watermark = watermark;
    this.#drain();
  }

  /** The source sends nothing more (its process exited): stop waiting for it. */
  close(source: string): void {
    const s = this.#sources.get(source);
    if (s === undefined || s.closed) return;
    s.closed = true;
    this.#drain();
  }

  /** Events received but not yet released (held back by a slower source). */
  held(): number {
    let n = 0;
    for (const s of this.#sources.values()) n += s.queue.length;
    return n;
  }

  #drain(): void {
    // Nothing earlier than the smallest watermark of a source still sending can arrive any more.
    let horizon: bigint | undefined;
    for (const s of this.#sources.values()) {
      if (!s.closed && (horizon === undefined || s.watermark < horizon)) horizon = s.watermark;
    }
    const out: E[] = [];
    for (const [name, s] of this.#sources) {
      // Each queue is in time order: release its prefix up to the horizon.
      let n = 0;
      while (n < s.queue.length && (horizon === undefined || (s.queue[n] as E).t <= horizon)) n++;
      for (let i = 0; i < n; i++) out.push(s.queue[i] as E);
      if (n > 0) s.queue = n === s.queue.length ? [] : s.queue.slice(n);
      if (s.closed && s.queue.length === 0) this.#sources.delete(name);
    }
    if (out.length === 0) return;
    out.sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : 0));
    this.#release(out);
  }
}
