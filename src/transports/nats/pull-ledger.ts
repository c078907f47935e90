/**
 * The open pulls of one pull loop and what they may still deliver.
 *
 * The loop waits on one pull (`current`); once messages are flowing it moves
 * on 25 ms before that pull expires, so the server holds the next request
 * already and serves it the moment the old one runs out, instead of a gap of
 * one round trip per pull (measured at 5,000 msg/s: handler p90 2.0 → 1.3 ms,
 * p99 21–24 → 8–16 ms). A pull the loop moved on from stays "open" (owed)
 * until the server ended it or its expiry (as the server saw it: a busy server
 * starts the clock late) has surely passed, so pulls never ask for more than
 * the pool can take (sizing by free capacity alone overfilled a pool of 256
 * with 332 in CI).
 *
 * nats-server 2.9 ends a partly answered pull without a word when it expires,
 * and the messages it sent that pull before the expiry can reach us much later
 * (a trace on a CPU-starved machine saw them ~190 ms late). No clock can say
 * when they are all in, so a fence asks the server: once such a pull has
 * surely expired, the loop reads the consumer's info, whose delivered consumer
 * sequence counts every delivery it ever made. Messages of one consumer come in
 * consumer-sequence order, so what may still arrive for the expired pulls is
 * exactly the deliveries after the last one we saw up to that count: the
 * pulls leave the open set and that count (the tail) is owed instead, until
 * the last of it arrives. Before this, other partitions took such a pull's room
 * 25 ms after its expiry and the pool overfilled on a busy machine (308 in a
 * pool of 256).
 *
 * Why this file is over 400 lines (~460): the open pulls, the tail and the
 * timers that end them are one account (what this loop may still receive),
 * and most of the lines are the comments saying which server behaviour each
 * rule answers.
 */
import { DONE, EXPIRED, type PullOutcome, UNANSWERED } from './pull-wire.ts';

export interface ActivePull {
  readonly id: number;
  readonly batch: number;
  /** Messages counted towards this pull (the oldest open one gets each message). */
  received: number;
  /** The loop's message count when it was sent (see `arrivedDuring`). */
  readonly arrivedBefore: number;
  /** performance.now() when it was sent. */
  readonly sentAt: number;
  /** When the broker ends this pull, judged from our send time (performance.now() time). */
  readonly expiresAt: number;
  /**
   * When the broker ends it at the latest as far as we can tell: a busy server
   * starts the clock when it reads the request, which the first message shows.
   */
  serverExpiresAt: number;
  /** The broker ended it (batch filled or a status answered it). */
  serverDone: boolean;
  /** Published while disconnected: nats.js buffers it and sends it after the reconnect. */
  readonly buffered: boolean;
  readonly resolve: (outcome: PullOutcome) => void;
  timer: NodeJS.Timeout | undefined;
}

/**
 * How long after its expiry a pull may still deliver, as our event loop sees
 * it. The server ends every pull with a filled batch or a 408, so this only
 * bounds a lost answer; it must also outlast our own stalls (GC, a publish
 * burst): messages the server sent in time still sit unread in the socket, and
 * with 250 ms CI saw them overfill the pool (329 in a pool of 256).
 */
const SERVER_PULL_GRACE_MS = 2_000;
/** Slack after a pull's expiry before a partly answered pull counts as expired. */
const PULL_EXPIRY_GRACE_MS = 25;
/** How long past its expiry an unanswered pull must be before a consumer check drops it. */
const UNANSWERED_DROP_AFTER_MS = 1_000;
/** A delivering pull is followed by the next this long before it expires (at most half its life). */
const PULL_RENEW_LEAD_MS = 25;

/** What the fenced pulls may still deliver: consumer sequences after the last seen, up to `until`. */
interface Tail {
  readonly until: number;
  remaining: number;
  /** Given up on (the messages died with a connection, or went to someone else) at this time. */
  readonly deadline: number;
}

export interface PullLedgerOptions {
  /** How long one pull waits on the broker (its `expires`). */
  readonly fetchMaxWaitMs: number;
  readonly connected: () => boolean;
  /** A pull left the open set: capacity may be free now. */
  readonly onServerDone: () => void;
  /**
   * A partly answered pull has surely expired at the server and someone waits
   * for its room (requestFence): read the consumer's delivered sequence and
   * pass it to settle(). Without it such pulls stay owed for their whole grace.
   */
  readonly fence?: () => void;
  /** The ledger's clock (default performance.now; tests pass a mocked one). */
  readonly clock?: () => number;
}

export class PullLedger {
  readonly #options: PullLedgerOptions;
  /** The pull the loop waits on. */
  current: ActivePull | undefined;
  /** Pulls the server may still deliver to (the loop's one and renewed ones), by id, oldest first. */
  readonly #open = new Map<number, ActivePull>();
  /** Woken when a pull leaves #open. */
  #onOpenChange: (() => void) | undefined;
  #seq = 0;
  /** Messages from the broker, ever. */
  #arrived = 0;
  /** performance.now() of the last message from the broker. */
  #lastMessageAt = 0;
  /** The highest consumer (delivery) sequence seen. */
  #maxDelivery = 0;
  #tail: Tail | undefined;
  #fenceTimer: NodeJS.Timeout | undefined;
  #fenceAt = Number.POSITIVE_INFINITY;
  /** Bumped on reconnect: a fence read before it says nothing about pulls after it. */
  #generation = 0;

  readonly #now: () => number;

  constructor(options: PullLedgerOptions) {
    this.#options = options;
    this.#now = options.clock ?? (() => performance.now());
  }

  /** Records a new pull as the current one (the caller sends it). */
  begin(batch: number, resolve: (outcome: PullOutcome) => void): ActivePull {
    const sentAt = this.#now();
    const expiresAt = sentAt + this.#options.fetchMaxWaitMs;
    const pull: ActivePull = {
      id: ++this.#seq,
      sentAt,
      batch,
      received: 0,
      arrivedBefore: this.#arrived,
      expiresAt,
      serverExpiresAt: expiresAt,
      serverDone: false,
      buffered: !this.#options.connected(),
      resolve,
      timer: undefined,
    };
    this.current = pull;
    this.#open.set(pull.id, pull);
    this.armSafety(pull);
    return pull;
  }

  /**
   * Messages that arrived while `pull` was open, whichever pull they are
   * counted towards. Pull sizing reads this, not `received`: once the loop
   * moves on before expiry, the messages of the pull it waits on are counted
   * towards older open pulls (a partly answered pull stays open through its
   * grace), so `received` said "2" for pulls that brought their full batch, and
   * a lane kept asking for 32 through a whole backlog (~430 msg/s at the tail
   * of a 100k consume while the other lanes were done).
   */
  arrivedDuring(pull: ActivePull): number {
    return this.#arrived - pull.arrivedBefore;
  }

  open(id: number): ActivePull | undefined {
    return this.#open.get(id);
  }

  /**
   * The one timer per pull, in two steps. (1) At the renewal point, 25 ms
   * before expiry: if messages arrived since it was sent, the consumer exists
   * and the loop moves on (the next pull queues up behind this one; messages
   * count towards the oldest open pull, so "anything since it was sent" is the
   * test, not its own count). (2) Shortly after expiry, the same test:
   * nats-server 2.9 sends no 408 for a pull that expired after delivering part
   * of its batch, and waiting for a long margin there stalled delivery for
   * ~1 s (p99 publish→handler ≈ 980 ms at 1,000 msg/s). A pull with no answer
   * at all by then ends as `unanswered` and stays owed: nats-server 2.9.10 now
   * and then drops an expired pull without a 408 (8 of ~10,000 pulls in a 15 s
   * run at 1,000 msg/s), and waiting 1.1 s on each before pulling again put
   * p99 publish→handler at 110–480 ms with 1 s pauses; whether the consumer
   * is still there is the loop's call (a second silent pull in a row). While
   * disconnected the reconnect handler decides instead.
   */
  armSafety(pull: ActivePull): void {
    clearTimeout(pull.timer);
    const wait = this.#options.fetchMaxWaitMs;
    const renewAt = Math.max(wait / 2, wait - PULL_RENEW_LEAD_MS);
    const afterExpiry = wait + PULL_EXPIRY_GRACE_MS;
    const answered = (): boolean => this.#lastMessageAt > pull.sentAt && this.#options.connected();
    pull.timer = setTimeout(() => {
      // Over for the loop; it stays in #open (owed) until the server ends it.
      if (answered()) return this.finish(pull, EXPIRED);
      pull.timer = setTimeout(() => {
        if (answered()) return this.finish(pull, EXPIRED);
        if (this.#options.connected()) this.finish(pull, UNANSWERED);
        else this.armSafety(pull);
      }, afterExpiry - renewAt);
    }, renewAt);
  }

  /** The loop is done waiting on `pull` (if it still waits on it). */
  finish(pull: ActivePull, outcome: PullOutcome): void {
    if (this.current !== pull) return;
    this.current = undefined;
    clearTimeout(pull.timer);
    pull.resolve(outcome);
  }

  /** Ends the current pull, if any. */
  finishCurrent(outcome: PullOutcome): void {
    const pull = this.current;
    if (pull !== undefined) this.finish(pull, outcome);
  }

  /**
   * A data message arrived. Counted towards the oldest open pull: the server
   * serves waiting pulls in order (a data message carries the stream subject,
   * not the pull's inbox). Counting it towards an older pull than the one it
   * answered is safe: the total owed stays right, and a pull counted full
   * early ends early.
   */
  received(delivery = 0): void {
    const now = this.#now();
    this.#lastMessageAt = now;
    this.#arrived++;
    if (delivery > this.#maxDelivery) this.#maxDelivery = delivery;
    const tail = this.#tail;
    if (tail !== undefined && delivery > 0) {
      if (delivery <= tail.until) {
        // One of the fenced pulls' messages (or of a live pull, delivered before the fence: counted
        // here and still owed by that pull, which errs on the side of asking for less).
        if (--tail.remaining <= 0 || delivery === tail.until) this.#endTail();
        return;
      }
      this.#endTail(); // a later delivery: nothing up to `until` is still on its way
    }
    let pull: ActivePull | undefined;
    for (const open of this.#open.values()) {
      pull = open;
      break;
    }
    if (pull === undefined) return; // every pull already counted as ended
    if (pull.received++ === 0) {
      pull.serverExpiresAt = Math.max(pull.expiresAt, now + this.#options.fetchMaxWaitMs);
    }
    if (pull.received >= pull.batch) {
      this.serverDone(pull);
      this.finish(pull, DONE);
    }
  }

  /**
   * A fence's answer: the consumer's delivered sequence, read by a request
   * sent at `sentAt` (performance.now()) in `generation`. Every partly
   * answered pull that had surely expired at the server by then (it read the
   * pull before its first message reached us, so it expired by
   * `serverExpiresAt`) got all it will get within `delivered`: it leaves the
   * open set, and the deliveries after the last one seen, up to `delivered`,
   * are owed as the tail.
   */
  settle(delivered: number, sentAt: number, generation: number): void {
    if (generation !== this.#generation) return;
    let settled = false;
    // What the settled pulls could still deliver at most: the tail never owes more
    // (other members of a group pulling the same consumer take sequences too).
    let mostOwed = this.#tail?.remaining ?? 0;
    for (const pull of [...this.#open.values()]) {
      if (pull === this.current || pull.received === 0 || pull.serverExpiresAt > sentAt) continue;
      pull.serverDone = true;
      this.#open.delete(pull.id);
      mostOwed += pull.batch - pull.received;
      settled = true;
    }
    if (settled) {
      const until = Math.max(delivered, this.#tail?.until ?? 0);
      const remaining = Math.min(until - this.#maxDelivery, mostOwed);
      this.#tail =
        remaining > 0 ? { until, remaining, deadline: this.#now() + SERVER_PULL_GRACE_MS } : undefined;
      this.#changed();
    }
  }

  /**
   * Someone waits for room that this loop's partly answered pulls hold: fence
   * them as soon as one has surely expired (at once if one has). Fences are
   * read only on demand: one per pull while messages flow put hundreds of
   * consumer info requests a second on the server and cost the end-to-end
   * bench ~20%.
   */
  requestFence(): void {
    for (const pull of this.#open.values()) {
      if (pull.received > 0 && pull !== this.current) this.#armFence(pull.serverExpiresAt);
    }
  }

  /** Stops the fence timer (the loop is closed). */
  dispose(): void {
    clearTimeout(this.#fenceTimer);
    this.#fenceTimer = undefined;
    this.#fenceAt = Number.POSITIVE_INFINITY;
  }

  /** Which fence answers settle() takes (see settle). */
  get generation(): number {
    return this.#generation;
  }

  #endTail(): void {
    this.#tail = undefined;
    this.#changed();
  }

  /** Something left what is owed: wake the loop and the other lanes. */
  #changed(): void {
    const wake = this.#onOpenChange;
    this.#onOpenChange = undefined;
    wake?.();
    this.#options.onServerDone();
  }

  /** Asks for a fence just after `serverExpiresAt` (the earliest one wins). */
  #armFence(serverExpiresAt: number): void {
    if (this.#options.fence === undefined || serverExpiresAt >= this.#fenceAt) return;
    const now = this.#now();
    clearTimeout(this.#fenceTimer);
    this.#fenceAt = serverExpiresAt;
    this.#fenceTimer = setTimeout(
      () => {
        this.#fenceAt = Number.POSITIVE_INFINITY;
        this.#fenceTimer = undefined;
        this.#options.fence?.();
      },
      Math.max(0, serverExpiresAt - now) + 1,
    );
  }

  /** The connection was re-established: pulls sent on the old one died with it. */
  reconnected(): void {
    this.#generation++;
    // What the fenced pulls still owed died with the old connection too.
    if (this.#tail !== undefined) this.#endTail();
    // One sent while disconnected is flushed now, so keep waiting for it (two would overfill).
    for (const open of [...this.#open.values()]) if (!open.buffered) this.serverDone(open);
    const pull = this.current;
    if (pull !== undefined && !pull.buffered) this.finish(pull, { kind: 'reconnected' });
    else if (pull !== undefined) this.armSafety(pull);
  }

  /** The server will send nothing more for `pull`. */
  serverDone(pull: ActivePull): void {
    if (pull.serverDone) return;
    pull.serverDone = true;
    this.#open.delete(pull.id);
    this.#changed();
  }

  /**
   * Pulls that got no answer at all, checked afterwards: the consumer
   * answered an info request sent (at `checkedAt`) on the same connection,
   * so whatever the server sent those pulls came before that answer. One
   * whose expiry passed at least a second before the check was dropped
   * (nats-server 2.9.10 can drop an expired pull without a 408): it owes
   * nothing and ends now instead of holding its batch for the 2 s grace. The
   * second is there because a busy server starts a pull's clock when it reads
   * the request: a pull sent 125 ms before the check may still be live there,
   * and dropping it would let it overfill the pool.
   */
  dropUnanswered(checkedAt: number): void {
    for (const open of [...this.#open.values()]) {
      if (open === this.current || open.received > 0) continue;
      if (open.serverExpiresAt + UNANSWERED_DROP_AFTER_MS <= checkedAt) this.serverDone(open);
    }
  }

  /**
   * Whether a consumer check now would drop an unanswered pull (see
   * dropUnanswered): a loop whose room such a pull holds checks instead of
   * waiting out its 2 s grace.
   */
  mayDropUnanswered(now = this.#now()): boolean {
    for (const open of this.#open.values()) {
      if (open === this.current || open.received > 0) continue;
      if (open.serverExpiresAt + UNANSWERED_DROP_AFTER_MS <= now) return true;
    }
    return false;
  }

  /** When an open pull surely ended even without a word from the server. */
  #deadlineOf(pull: ActivePull): number {
    return pull.serverExpiresAt + SERVER_PULL_GRACE_MS;
  }

  /** Drops open pulls (and the tail) past their deadline; returns the latest deadline left (0: none). */
  prune(): number {
    const now = this.#now();
    let latest = 0;
    const tail = this.#tail;
    if (tail !== undefined && now >= tail.deadline) this.#endTail();
    else if (tail !== undefined) latest = tail.deadline;
    for (const pull of [...this.#open.values()]) {
      const deadline = this.#deadlineOf(pull);
      if (pull !== this.current && now >= deadline) this.serverDone(pull);
      else latest = Math.max(latest, deadline);
    }
    return latest;
  }

  /** What the open pulls (and the tail) may still deliver. */
  owed(): number {
    this.prune();
    let owed = this.#tail?.remaining ?? 0;
    for (const pull of this.#open.values()) owed += pull.batch - pull.received;
    return owed;
  }

  /**
   * What OTHER lanes must leave room for: the tail, the partly answered pulls
   * until a fence settles them (their messages may still be on the way), and
   * the unanswered ones until shortly after their expiry. An unanswered pull
   * stays owed for this loop's own sizing until a check drops it, but
   * counting it against every other lane for its whole grace blocked them
   * all: with 17 lanes, p99 publish→handler went to ~1.9 s.
   */
  liveOwed(): number {
    this.prune();
    const now = this.#now();
    let owed = this.#tail?.remaining ?? 0;
    for (const pull of this.#open.values()) {
      if (pull.received > 0 || now < pull.serverExpiresAt + PULL_EXPIRY_GRACE_MS) {
        owed += pull.batch - pull.received;
      }
    }
    return owed;
  }

  /** Resolves when a pull leaves the open set (ended, or its deadline passed) or on abort. */
  untilOpenChanges(signal: AbortSignal): Promise<void> {
    const now = this.#now();
    let earliest = Number.POSITIVE_INFINITY;
    for (const pull of this.#open.values()) {
      // Also when a pull expires at the server: a lane's share of the pool counts
      // only its live pulls (lane-budget.ts), so free capacity may come back then,
      // long before the expired pull's grace is over (waiting for the grace put
      // p99 publish→handler at ~1.9 s with 17 lanes).
      const live = pull.serverExpiresAt + PULL_EXPIRY_GRACE_MS;
      earliest = Math.min(earliest, live > now ? live : this.#deadlineOf(pull));
      // And when an unanswered one may be dropped after a check (see mayDropUnanswered).
      const droppable = pull.serverExpiresAt + UNANSWERED_DROP_AFTER_MS;
      if (pull.received === 0 && droppable > now) earliest = Math.min(earliest, droppable);
    }
    if (this.#tail !== undefined) earliest = Math.min(earliest, this.#tail.deadline);
    if (!Number.isFinite(earliest)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        if (this.#onOpenChange === done) this.#onOpenChange = undefined;
        resolve();
      };
      const timer = setTimeout(done, Math.max(1, earliest - now));
      signal.addEventListener('abort', done, { once: true });
      this.#onOpenChange = done;
    });
  }
}
