/**
 * The outbox relay: claims pending rows, publishes them through the bus and
 * marks them published only when their PublishResult reports success.
 *
 * Ordering. Rows are held per aggregate in a *lane*. A lane has at most one
 * publish in flight; its next row is sent only after the previous one's
 * successful result. A failed publish releases the failed row (attempts+1,
 * retry after backoff) together with every later row of the lane, so nothing
 * of that aggregate goes out before the failed row does. Different
 * aggregates run in parallel. Which aggregates a relay may hold is decided
 * in the database (see sql.ts): only the head of an aggregate can be claimed,
 * under `FOR UPDATE SKIP LOCKED`, and the claimer leases a contiguous prefix.
 *
 * Leases. Held rows are renewed every leaseMs/3. A lane stops sending when
 * its lease may have lapsed locally, and is dropped when the renewal shows
 * another relay took it over. A crashed relay's rows become claimable when
 * its leases expire; republishing them is safe because eventId = row id =
 * Nats-Msg-Id (broker de-duplication).
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { decodeEnvelope, type Envelope } from '../core/envelope.ts';
import { InvalidArgumentError, toError } from '../core/errors.ts';
import { type Logger, silentLogger } from '../core/logger.ts';
import type { BackoffOptions, EventBus, PublishResult, PublishResultStream } from '../core/types.ts';
import type { OutboxMetrics } from '../metrics/metrics.ts';
import { backoffDelayMs, type ResolvedBackoff, resolveBackoff } from './backoff.ts';
import type { ClaimedRow, RelayStore } from './types.ts';

export interface OutboxRelayOptions {
  readonly store: RelayStore;
  /** Any bus: the relay uses `publishEnvelope` and `publishResults` only, and never closes it. */
  readonly bus: Pick<EventBus, 'publishEnvelope' | 'publishResults'>;
  /** Identifies this relay's leases. Default `<hostname>-<pid>-<random>`. */
  readonly relayId?: string;
  /** Most rows claimed at once, and most rows held (in memory and leased). Default 1000. */
  readonly batchSize?: number;
  /** Poll for due rows this often (besides NOTIFY and `notify()`). Default 1000 ms. */
  readonly pollIntervalMs?: number;
  /** Lease on claimed rows; renewed every leaseMs/3 while held. Default 30 s. */
  readonly leaseMs?: number;
  /** Retry delay after a failed publish. Default 500 ms × 2^n up to 60 s, 20% jitter. */
  readonly backoff?: BackoffOptions;
  /** The stream's duplicate window (JetStream default 2 min). Default 120,000 ms. */
  readonly duplicateWindowMs?: number;
  /** Warn when lag exceeds this fraction of the duplicate window. Default 0.5. */
  readonly lagWarningRatio?: number;
  /** Measure pending count and lag this often. Default 5000 ms. */
  readonly statsIntervalMs?: number;
  /** LISTEN for commits of `outbox.add` (publish right after commit). Default true. */
  readonly listen?: boolean;
  /** Default deadline of `close()`. Default 30 s. */
  readonly closeTimeoutMs?: number;
  readonly logger?: Logger;
  /** `createOutboxMetrics({ transport, clientId, registry })` (`jxt-eventbus/outbox`). */
  readonly metrics?: OutboxMetrics;
}

export type OutboxRelayState = 'idle' | 'running' | 'closing' | 'closed' | 'aborted';

export interface OutboxRelayStats {
  readonly relayId: string;
  readonly state: OutboxRelayState;
  /** Rows claimed so far (a row claimed again after a failure counts again). */
  readonly claimed: number;
  /** Rows this relay marked published. */
  readonly published: number;
  /** Failed publish attempts. */
  readonly failed: number;
  /** Rows currently leased by this relay. */
  readonly held: number;
  readonly inFlight: number;
  readonly aggregates: number;
  /** Last measured outbox backlog (all relays), undefined before the first measurement. */
  readonly pending: number | undefined;
  readonly lagSeconds: number | undefined;
  /** Last measured rows that failed at least once (all relays), and the age of the oldest. */
  readonly failing: number | undefined;
  readonly oldestFailingSeconds: number | undefined;
  /** Lag is above lagWarningRatio × duplicateWindowMs: de-duplication is at risk. */
  readonly lagWarning: boolean;
}

export interface OutboxRelay extends AsyncDisposable {
  readonly relayId: string;
  /** Starts listening for results and commits, polling and renewing. Idempotent. */
  start(): Promise<void>;
  /** Look for new rows now (call it after committing a transaction that used `outbox.add`). */
  notify(): void;
  /**
   * Graceful: stops claiming and sending, waits (up to `timeoutMs`) for the
   * results of in-flight publishes, records them, releases every other lease.
   * Idempotent; concurrent calls share one promise.
   */
  close(options?: { timeoutMs?: number }): Promise<void>;
  /**
   * Stops at once without touching the database again (as if the process
   * died): the rows it held stay leased until their lease expires.
   */
  abort(): void;
  stats(): OutboxRelayStats;
  readonly closed: Promise<void>;
}

type RowState = 'queued' | 'sending' | 'acked' | 'releasing';

interface Lane {
  readonly aggregateId: string;
  queue: ClaimedRow[];
  inFlight: ClaimedRow | undefined;
  awaitingMark: number;
  releasing: number;
  /** Local clock: stop sending after this unless a renewal extends it. */
  leaseValidUntil: number;
}

interface Held {
  readonly row: ClaimedRow;
  readonly lane: Lane;
  state: RowState;
}

const encoder = new TextEncoder();

/** Between claims while the database fails: 200 ms doubling up to 10 s. */
const CLAIM_BACKOFF = resolveBackoff({ initialMs: 200, maxMs: 10_000, multiplier: 2, jitter: 0.2 });

function positiveInt(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new InvalidArgumentError(`Expected \`${name}\` to be a positive integer, got ${String(value)}`);
  }
  return value;
}

function ratio(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value > 0 && value <= 1)) {
    throw new InvalidArgumentError(`Expected \`${name}\` to be a number in (0, 1], got ${String(value)}`);
  }
  return value;
}

class Relay implements OutboxRelay {
  readonly relayId: string;
  readonly closed: Promise<void>;
  readonly #store: RelayStore;
  readonly #bus: Pick<EventBus, 'publishEnvelope' | 'publishResults'>;
  readonly #batchSize: number;
  readonly #minClaim: number;
  readonly #pollIntervalMs: number;
  readonly #leaseMs: number;
  readonly #leaseMarginMs: number;
  readonly #backoff: ResolvedBackoff;
  readonly #duplicateWindowMs: number;
  readonly #lagWarningRatio: number;
  readonly #statsIntervalMs: number;
  readonly #listen: boolean;
  readonly #closeTimeoutMs: number;
  readonly #logger: Logger;
  readonly #metrics: OutboxMetrics | undefined;

  #state: OutboxRelayState = 'idle';
  /** Read through a method so TypeScript does not narrow it across awaits. */
  #is(state: OutboxRelayState): boolean {
    return this.#state === state;
  }
  #resolveClosed!: () => void;
  #closing: Promise<void> | undefined;
  #starting: Promise<void> | undefined;
  #results: PublishResultStream | undefined;
  #readLoop: Promise<void> | undefined;
  #timers: NodeJS.Timeout[] = [];
  #unlisten: (() => Promise<void>) | undefined;
  #listenStarting = false;

  readonly #lanes = new Map<string, Lane>();
  readonly #held = new Map<string, Held>();
  #inFlight = 0;
  #inFlightDrained: (() => void) | undefined;

  #claiming: Promise<void> | undefined;
  #claimAgain = false;
  #markBuffer: string[] = [];
  #flushScheduled = false;
  #writeChain: Promise<unknown> = Promise.resolve();
  #measuring = false;

  #claimed = 0;
  #published = 0;
  #failed = 0;
  #pending: number | undefined;
  #lagSeconds: number | undefined;
  #failing: number | undefined;
  /** Consecutive failed claims (database unreachable): claims back off, one log line per outage. */
  #claimFailures = 0;
  #claimBlockedUntil = 0;
  #oldestFailingSeconds: number | undefined;
  #lagWarning = false;
  #lastLagWarnAt = 0;

  constructor(options: OutboxRelayOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new InvalidArgumentError(`Expected relay options, got ${String(options)}`);
    }
    if (typeof options.store?.claim !== 'function') {
      throw new InvalidArgumentError(
        'Expected `store` to be an outbox store (createPgOutboxStore / createPgliteOutboxStore)',
      );
    }
    if (
      typeof options.bus?.publishEnvelope !== 'function' ||
      typeof options.bus.publishResults !== 'function'
    ) {
      throw new InvalidArgumentError('Expected `bus` to be an EventBus (publishEnvelope, publishResults)');
    }
    const relayId = options.relayId ?? `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
    if (typeof relayId !== 'string' || relayId.length === 0 || relayId.length > 200) {
      throw new InvalidArgumentError(
        `Expected \`relayId\` to be 1-200 characters, got ${JSON.stringify(relayId)}`,
      );
    }
    this.relayId = relayId;
    this.#store = options.store;
    this.#bus = options.bus;
    this.#batchSize = positiveInt('batchSize', options.batchSize, 1000);
    this.#minClaim = Math.max(1, Math.floor(this.#batchSize / 4));
    this.#pollIntervalMs = positiveInt('pollIntervalMs', options.pollIntervalMs, 1000);
    this.#leaseMs = positiveInt('leaseMs', options.leaseMs, 30_000);
    this.#leaseMarginMs = Math.floor(this.#leaseMs / 5);
    this.#backoff = resolveBackoff(options.backoff);
    this.#duplicateWindowMs = positiveInt('duplicateWindowMs', options.duplicateWindowMs, 120_000);
    this.#lagWarningRatio = ratio('lagWarningRatio', options.lagWarningRatio, 0.5);
    this.#statsIntervalMs = positiveInt('statsIntervalMs', options.statsIntervalMs, 5000);
    this.#listen = options.listen ?? true;
    this.#closeTimeoutMs = positiveInt('closeTimeoutMs', options.closeTimeoutMs, 30_000);
    this.#logger = options.logger ?? silentLogger;
    this.#metrics = options.metrics;
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
  }

  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    if (this.#state !== 'idle') return;
    this.#state = 'running';
    // Subscribe before the first publish: every result we wait for arrives on this stream.
    const results = this.#bus.publishResults();
    this.#results = results;
    this.#readLoop = this.#readResults(results);
    if (this.#listen) await this.#ensureListening();
    if (this.#state !== 'running') return;
    this.#timers.push(
      setInterval(() => this.#tick(), this.#pollIntervalMs),
      setInterval(() => void this.#renew(), Math.max(1, Math.floor(this.#leaseMs / 3))),
      setInterval(() => void this.#measure(), this.#statsIntervalMs),
    );
    this.#logger.info(
      { relayId: this.relayId, batchSize: this.#batchSize, leaseMs: this.#leaseMs, store: this.#store.kind },
      'Outbox relay started',
    );
    this.#requestClaim();
    void this.#measure();
  }

  notify(): void {
    this.#requestClaim();
  }

  stats(): OutboxRelayStats {
    return {
      relayId: this.relayId,
      state: this.#state,
      claimed: this.#claimed,
      published: this.#published,
      failed: this.#failed,
      held: this.#held.size,
      inFlight: this.#inFlight,
      aggregates: this.#lanes.size,
      pending: this.#pending,
      lagSeconds: this.#lagSeconds,
      failing: this.#failing,
      oldestFailingSeconds: this.#oldestFailingSeconds,
      lagWarning: this.#lagWarning,
    };
  }

  // ---- results ---------------------------------------------------------------------------

  async #readResults(stream: PublishResultStream): Promise<void> {
    try {
      for await (const result of stream) this.#onResult(result);
    } catch (error) {
      if (this.#state === 'running') {
        this.#logger.error(
          { relayId: this.relayId, err: toError(error) },
          'Outbox relay: result stream failed',
        );
      }
    }
  }

  #onResult(result: PublishResult): void {
    const held = this.#held.get(result.eventId);
    if (held === undefined || held.state !== 'sending') return;
    this.#settleSend(held, result.success, result.error);
  }

  #settleSend(held: Held, success: boolean, error: unknown): void {
    if (this.#state === 'aborted') return;
    const lane = held.lane;
    lane.inFlight = undefined;
    this.#inFlight--;
    if (this.#inFlight === 0) this.#inFlightDrained?.();
    if (success) {
      held.state = 'acked';
      lane.awaitingMark++;
      this.#markBuffer.push(held.row.id);
      this.#scheduleFlush();
      this.#pump(lane);
    } else {
      this.#fail(lane, held.row, error);
    }
  }

  // ---- claiming ----------------------------------------------------------------------------

  #tick(): void {
    if (this.#state !== 'running') return;
    this.#requestClaim();
    if (this.#markBuffer.length > 0) this.#scheduleFlush();
    if (this.#listen && this.#unlisten === undefined) void this.#ensureListening();
  }

  /**
   * Claims now, or right after the claim in progress (requests in between
   * coalesce into one). Every trigger — a lane retiring, NOTIFY, notify(), the
   * poll tick — goes through here, so none is lost while a claim runs.
   */
  #requestClaim(): void {
    if (this.#state !== 'running') return;
    if (Date.now() < this.#claimBlockedUntil) return; // backing off: a later tick claims
    if (this.#claiming !== undefined) {
      this.#claimAgain = true;
      return;
    }
    this.#claimAgain = false;
    this.#claiming = this.#claimOnce().finally(() => {
      this.#claiming = undefined;
      if (this.#claimAgain) this.#requestClaim();
    });
  }

  async #claimOnce(): Promise<void> {
    const capacity = this.#batchSize - this.#held.size;
    // Wait for a worthwhile batch unless idle (the lanes still running will ask again).
    if (capacity <= 0 || (capacity < this.#minClaim && this.#held.size > 0)) return;
    const startedAt = Date.now();
    let rows: ClaimedRow[];
    try {
      rows = await this.#store.claim(this.relayId, capacity, this.#leaseMs);
    } catch (error) {
      // No hot loop against a failing database: back off (poll ticks skip until then).
      this.#claimAgain = false;
      this.#claimFailures++;
      const delay = backoffDelayMs(this.#claimFailures, CLAIM_BACKOFF);
      this.#claimBlockedUntil = Date.now() + delay;
      if (this.#state === 'running' && this.#claimFailures === 1) {
        this.#logger.error(
          { relayId: this.relayId, err: toError(error) },
          'Outbox relay: claim failed; retrying with backoff until the database answers again',
        );
      }
      return;
    }
    if (this.#claimFailures > 0) {
      this.#logger.info(
        { relayId: this.relayId, failedClaims: this.#claimFailures },
        'Outbox relay: claiming works again',
      );
      this.#claimFailures = 0;
      this.#claimBlockedUntil = 0;
    }
    if (this.#state === 'aborted') return;
    if (rows.length > 0) {
      this.#logger.debug({ relayId: this.relayId, rows: rows.length }, 'Outbox relay: claimed');
      this.#ingest(rows, startedAt);
    }
    // A full batch: there is probably more.
    if (rows.length >= capacity) this.#claimAgain = true;
  }

  #ingest(rows: readonly ClaimedRow[], claimedAt: number): void {
    const validUntil = claimedAt + this.#leaseMs - this.#leaseMarginMs;
    const touched = new Set<Lane>();
    for (const row of rows) {
      const known = this.#held.get(row.id);
      // Already ours and tracked (the claim merely re-leased it).
      if (known !== undefined && known.state !== 'releasing') continue;
      // A row we were releasing came back: the release committed (else the claim could not
      // have taken it), so this claim's grant is current. Track it afresh, in seq order with
      // the rest of its aggregate, so nothing later of the aggregate can overtake it.
      let lane = this.#lanes.get(row.aggregateId);
      if (lane === undefined) {
        lane = {
          aggregateId: row.aggregateId,
          queue: [],
          inFlight: undefined,
          awaitingMark: 0,
          releasing: 0,
          leaseValidUntil: validUntil,
        };
        this.#lanes.set(row.aggregateId, lane);
      }
      lane.queue.push(row);
      lane.leaseValidUntil = validUntil;
      this.#held.set(row.id, { row, lane, state: 'queued' });
      this.#claimed++;
      touched.add(lane);
    }
    for (const lane of touched) {
      lane.queue.sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
      this.#pump(lane);
    }
  }

  // ---- sending -----------------------------------------------------------------------------

  /** Sends the lane's next row if nothing of the lane is in flight or being released. */
  #pump(lane: Lane): void {
    if (this.#state !== 'running' || lane.inFlight !== undefined || lane.releasing > 0) return;
    const row = lane.queue[0];
    if (row === undefined) {
      this.#maybeRetire(lane);
      return;
    }
    // Our lease may have lapsed: wait for the renewal to confirm it (or take the lane away).
    if (Date.now() >= lane.leaseValidUntil) return;
    lane.queue.shift();
    const held = this.#held.get(row.id);
    if (held === undefined) return;
    let envelope: Envelope;
    try {
      envelope = decodeEnvelope(encoder.encode(row.envelope));
      if (envelope.eventId !== row.id) {
        throw new InvalidArgumentError(
          `Expected the stored envelope's eventId to equal the outbox row id ${row.id}, got ${envelope.eventId}`,
        );
      }
    } catch (error) {
      this.#fail(lane, row, error);
      return;
    }
    held.state = 'sending';
    lane.inFlight = row;
    this.#inFlight++;
    let accepted: Promise<unknown>;
    try {
      accepted = this.#bus.publishEnvelope(row.topic, envelope);
    } catch (error) {
      accepted = Promise.reject(error);
    }
    // Not accepted → no PublishResult will come: settle it here.
    accepted.then(undefined, (error: unknown) => {
      if (held.state === 'sending' && this.#held.get(row.id) === held) this.#settleSend(held, false, error);
    });
  }

  #fail(lane: Lane, row: ClaimedRow, error: unknown): void {
    this.#failed++;
    const attempts = row.attempts + 1;
    const retryDelayMs = backoffDelayMs(attempts, this.#backoff);
    const later = lane.queue.splice(0);
    const ids = [row.id, ...later.map((r) => r.id)];
    const releasing: Held[] = [];
    for (const id of ids) {
      const held = this.#held.get(id);
      if (held === undefined) continue;
      held.state = 'releasing';
      releasing.push(held);
    }
    lane.releasing += ids.length;
    const err = toError(error);
    this.#logger.warn(
      {
        relayId: this.relayId,
        eventId: row.id,
        aggregateId: row.aggregateId,
        topic: row.topic,
        attempts,
        retryInMs: retryDelayMs,
        heldBack: later.length,
        err,
      },
      'Outbox relay: publish failed; will retry the aggregate from this event',
    );
    const message = `${(err as { code?: string }).code ?? err.name}: ${err.message}`.slice(0, 2000);
    this.#enqueueWrite(() =>
      this.#store.release(this.relayId, ids, { id: row.id, error: message, retryDelayMs }),
    ).then(
      () => this.#afterRelease(lane, ids.length, releasing),
      (releaseError: unknown) => {
        if (this.#state === 'aborted') return;
        // The leases run out by themselves (they are no longer renewed); the attempt is not counted.
        this.#logger.error(
          { relayId: this.relayId, eventId: row.id, err: toError(releaseError) },
          'Outbox relay: releasing a failed row failed; it becomes claimable when its lease expires',
        );
        this.#afterRelease(lane, ids.length, releasing);
      },
    );
  }

  #afterRelease(lane: Lane, count: number, released: readonly Held[]): void {
    if (this.#state === 'aborted') return;
    // Entries a newer claim re-granted to us (see #ingest) stay.
    for (const held of released) if (this.#held.get(held.row.id) === held) this.#held.delete(held.row.id);
    lane.releasing -= count;
    this.#maybeRetire(lane);
    this.#pump(lane);
  }

  #maybeRetire(lane: Lane): void {
    if (
      lane.inFlight !== undefined ||
      lane.queue.length > 0 ||
      lane.awaitingMark > 0 ||
      lane.releasing > 0 ||
      this.#lanes.get(lane.aggregateId) !== lane
    ) {
      return;
    }
    this.#lanes.delete(lane.aggregateId);
    this.#requestClaim();
  }

  // ---- database writes (serialised, so our own statements never deadlock each other) --------

  #enqueueWrite<T>(op: () => Promise<T>): Promise<T> {
    const run = this.#writeChain.then(() => {
      if (this.#state === 'aborted') throw new Error('Outbox relay aborted');
      return op();
    });
    this.#writeChain = run.then(
      () => {},
      () => {},
    );
    return run;
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#state === 'aborted') return;
    this.#flushScheduled = true;
    this.#enqueueWrite(() => this.#flushMarks()).catch(() => {});
  }

  async #flushMarks(): Promise<void> {
    this.#flushScheduled = false;
    const ids = this.#markBuffer;
    if (ids.length === 0) return;
    this.#markBuffer = [];
    try {
      await this.#store.markPublished(ids);
    } catch (error) {
      if (this.#state === 'aborted') return;
      this.#markBuffer = ids.concat(this.#markBuffer);
      this.#logger.error(
        { relayId: this.relayId, rows: ids.length, err: toError(error) },
        'Outbox relay: marking rows published failed; retrying on the next poll',
      );
      return;
    }
    if (this.#state === 'aborted') return;
    for (const id of ids) {
      const held = this.#held.get(id);
      if (held === undefined || held.state !== 'acked') continue;
      this.#held.delete(id);
      this.#published++;
      held.lane.awaitingMark--;
      this.#maybeRetire(held.lane);
    }
  }

  async #renew(): Promise<void> {
    if (this.#state !== 'running' && this.#state !== 'closing') return;
    const ids: string[] = [];
    for (const [id, held] of this.#held) if (held.state !== 'releasing') ids.push(id);
    if (ids.length === 0) return;
    const startedAt = Date.now();
    let mine: string[];
    try {
      mine = await this.#enqueueWrite(() => this.#store.renewLeases(this.relayId, ids, this.#leaseMs));
    } catch (error) {
      if (!this.#is('aborted')) {
        this.#logger.error(
          { relayId: this.relayId, err: toError(error) },
          'Outbox relay: lease renewal failed',
        );
      }
      return;
    }
    if (this.#is('aborted')) return;
    const stillMine = new Set(mine);
    const lost = new Set<Lane>();
    for (const id of ids) {
      const held = this.#held.get(id);
      // Gone (marked or released meanwhile), or acked (marking it is harmless either way).
      if (held === undefined || held.state === 'acked' || held.state === 'releasing') continue;
      if (!stillMine.has(id)) lost.add(held.lane);
    }
    const validUntil = startedAt + this.#leaseMs - this.#leaseMarginMs;
    for (const lane of this.#lanes.values()) {
      if (lost.has(lane)) continue;
      lane.leaseValidUntil = validUntil;
      this.#pump(lane);
    }
    for (const lane of lost) {
      // Another relay owns this aggregate now: send nothing more of it.
      this.#logger.warn(
        { relayId: this.relayId, aggregateId: lane.aggregateId, dropped: lane.queue.length },
        'Outbox relay: lease lost (expired and taken over); dropping the aggregate',
      );
      for (const row of lane.queue) this.#held.delete(row.id);
      lane.queue = [];
      lane.leaseValidUntil = 0;
      this.#maybeRetire(lane);
    }
  }

  // ---- observability -----------------------------------------------------------------------

  async #measure(): Promise<void> {
    if (this.#measuring || this.#state !== 'running') return;
    this.#measuring = true;
    try {
      const { pending, lagSeconds, failing, oldestFailingSeconds } = await this.#store.stats();
      if (this.#state !== 'running') return;
      this.#pending = pending;
      this.#lagSeconds = lagSeconds;
      this.#failing = failing;
      this.#oldestFailingSeconds = oldestFailingSeconds;
      this.#metrics?.pending(pending);
      this.#metrics?.lagSeconds(lagSeconds);
      this.#metrics?.failing?.(failing, oldestFailingSeconds);
      const lagMs = lagSeconds * 1000;
      const threshold = this.#duplicateWindowMs * this.#lagWarningRatio;
      if (lagMs > threshold) {
        const now = Date.now();
        if (!this.#lagWarning || now - this.#lastLagWarnAt >= 60_000) {
          this.#lastLagWarnAt = now;
          this.#logger.warn(
            {
              relayId: this.relayId,
              pending,
              lagSeconds,
              duplicateWindowMs: this.#duplicateWindowMs,
              ratio: lagMs / this.#duplicateWindowMs,
            },
            lagMs > this.#duplicateWindowMs
              ? 'Outbox lag exceeds the stream duplicate window: a republished event may be stored twice'
              : 'Outbox lag approaches the stream duplicate window',
          );
        }
        this.#lagWarning = true;
      } else if (this.#lagWarning) {
        this.#lagWarning = false;
        this.#logger.info(
          { relayId: this.relayId, pending, lagSeconds },
          'Outbox lag back below the warning level',
        );
      }
    } catch (error) {
      if (this.#state === 'running') {
        this.#logger.warn(
          { relayId: this.relayId, err: toError(error) },
          'Outbox relay: measuring the backlog failed',
        );
      }
    } finally {
      this.#measuring = false;
    }
  }

  async #ensureListening(): Promise<void> {
    if (this.#unlisten !== undefined || this.#listenStarting) return;
    this.#listenStarting = true;
    try {
      const unlisten = await this.#store.listen(
        () => this.notify(),
        (error) => {
          this.#unlisten = undefined;
          if (this.#state === 'running') {
            this.#logger.warn(
              { relayId: this.relayId, err: error },
              'Outbox relay: LISTEN connection lost; polling until it is back',
            );
          }
        },
      );
      if (this.#state === 'running') this.#unlisten = unlisten;
      else await unlisten().catch(() => {});
    } catch (error) {
      this.#logger.warn(
        { relayId: this.relayId, err: toError(error) },
        'Outbox relay: LISTEN failed; relying on polling and notify()',
      );
    } finally {
      this.#listenStarting = false;
    }
  }

  // ---- shutdown ----------------------------------------------------------------------------

  close(options: { timeoutMs?: number } = {}): Promise<void> {
    // Stop sending at once: results arriving from now on are recorded, nothing new goes out.
    if (this.#state === 'running') this.#state = 'closing';
    this.#closing ??= this.#close(options.timeoutMs ?? this.#closeTimeoutMs);
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #close(timeoutMs: number): Promise<void> {
    if (this.#state === 'aborted' || this.#state === 'closed') return;
    if (this.#state === 'idle') {
      this.#state = 'closed';
      this.#resolveClosed();
      return;
    }
    await this.#starting?.catch(() => {});
    if (!this.#is('closing')) return;
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    const unlisten = this.#unlisten;
    this.#unlisten = undefined;
    await unlisten?.().catch(() => {});
    await this.#claiming?.catch(() => {});

    // In-flight publishes: wait for their results (they are recorded as they arrive).
    if (this.#inFlight > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => {
          this.#inFlightDrained = resolve;
        }),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, timeoutMs);
        }),
      ]);
      clearTimeout(timer);
      this.#inFlightDrained = undefined;
      if (this.#inFlight > 0) {
        this.#logger.warn(
          { relayId: this.relayId, inFlight: this.#inFlight, timeoutMs },
          'Outbox relay: close deadline passed with publishes unconfirmed; releasing them (their republish is de-duplicated)',
        );
      }
    }
    this.#scheduleFlush();
    await this.#writeChain;

    // Give back everything else: queued rows, unconfirmed sends, marks that could not be written.
    const release: string[] = [];
    for (const [id, held] of this.#held) if (held.state !== 'releasing') release.push(id);
    if (release.length > 0) {
      await this.#enqueueWrite(() => this.#store.release(this.relayId, release)).catch((error: unknown) => {
        this.#logger.error(
          { relayId: this.relayId, rows: release.length, err: toError(error) },
          'Outbox relay: releasing leases on close failed; they expire by themselves',
        );
      });
    }
    await this.#writeChain;
    this.#held.clear();
    this.#lanes.clear();
    this.#results?.close();
    await this.#readLoop;
    if (!this.#is('closing')) return; // aborted meanwhile
    this.#state = 'closed';
    this.#logger.info(
      { relayId: this.relayId, published: this.#published, failed: this.#failed, released: release.length },
      'Outbox relay closed',
    );
    this.#resolveClosed();
  }

  abort(): void {
    if (this.#state === 'aborted' || this.#state === 'closed') return;
    this.#state = 'aborted';
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    const unlisten = this.#unlisten;
    this.#unlisten = undefined;
    void unlisten?.().catch(() => {});
    this.#results?.close();
    this.#inFlightDrained?.();
    this.#held.clear();
    this.#lanes.clear();
    this.#markBuffer = [];
    this.#logger.warn({ relayId: this.relayId }, 'Outbox relay aborted; its leases expire by themselves');
    this.#resolveClosed();
  }
}

/** Creates a relay; call `start()` to run it. */
export function createOutboxRelay(options: OutboxRelayOptions): OutboxRelay {
  return new Relay(options);
}
