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
 * Leases (relay-leases.ts). A crashed relay's rows become claimable when
 * its leases expire; republishing them is safe because eventId = row id =
 * the broker's message id: a transport with broker de-duplication stores the
 * re-send once; without it (Kafka) the consumers' inbox absorbs the second
 * copy. The relay reads which one it has from the bus's features
 * (relay-features.ts).
 *
 * The rooms: options and public types (relay-options.ts), what the
 * transport gives (relay-features.ts), lane bookkeeping
 * (relay-lanes.ts), claiming (relay-claims.ts), lease renewal
 * (relay-leases.ts), serialised writes (serial-writes.ts), the lag monitor
 * (lag-monitor.ts), LISTEN (commit-listener.ts). This file sends, records
 * results and shuts down; at ~480 lines it stays one file because those
 * three share the per-row state machine (queued → sending → acked/releasing).
 */
import { closeDeadline } from '../core/close-deadline.ts';
import { decodeEnvelope, type Envelope } from '../core/envelope.ts';
import { InvalidArgumentError, toError } from '../core/errors.ts';
import type { CloseOptions, PublishResult, PublishResultStream } from '../core/types.ts';
import { wakeOrAbort } from '../core/waiting.ts';
import { backoffDelayMs } from './backoff.ts';
import { CommitListener } from './commit-listener.ts';
import { LagMonitor } from './lag-monitor.ts';
import { Claimer } from './relay-claims.ts';
import { type Held, type Lane, LaneBook, leaseValidUntil } from './relay-lanes.ts';
import { renewHeldLeases } from './relay-leases.ts';
import {
  type OutboxRelay,
  type OutboxRelayOptions,
  type OutboxRelayState,
  type OutboxRelayStats,
  type ResolvedRelayOptions,
  resolveRelayOptions,
} from './relay-options.ts';
import { SerialWrites } from './serial-writes.ts';
import type { ClaimedRow } from './types.ts';

export type {
  OutboxRelay,
  OutboxRelayOptions,
  OutboxRelayState,
  OutboxRelayStats,
} from './relay-options.ts';

const encoder = new TextEncoder();

class Relay implements OutboxRelay {
  readonly relayId: string;
  readonly closed: Promise<void>;
  readonly #o: ResolvedRelayOptions;

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

  readonly #book = new LaneBook();
  readonly #writes = new SerialWrites(() => this.#is('aborted'));
  readonly #claimer: Claimer;
  readonly #lag: LagMonitor;
  readonly #listener: CommitListener;
  #inFlight = 0;
  #inFlightDrained: (() => void) | undefined;

  #markBuffer: string[] = [];
  #flushScheduled = false;

  #claimed = 0;
  #published = 0;
  #failed = 0;

  constructor(options: OutboxRelayOptions) {
    const o = resolveRelayOptions(options);
    this.#o = o;
    this.relayId = o.relayId;
    this.#lag = new LagMonitor(o);
    this.#listener = new CommitListener(
      o.relayId,
      o.store,
      o.logger,
      () => this.notify(),
      () => this.#is('running'),
    );
    this.#claimer = new Claimer({
      ...o,
      held: () => this.#book.held.size,
      running: () => this.#is('running'),
      aborted: () => this.#is('aborted'),
      ingest: (rows, claimedAt) => this.#ingest(rows, claimedAt),
    });
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
    const results = this.#o.bus.publishResults();
    this.#results = results;
    this.#readLoop = this.#readResults(results);
    if (this.#o.listen) await this.#listener.ensure();
    if (this.#state !== 'running') return;
    this.#timers.push(
      setInterval(() => this.#tick(), this.#o.pollIntervalMs),
      setInterval(() => void this.#renew(), Math.max(1, Math.floor(this.#o.leaseMs / 3))),
      setInterval(() => void this.#measure(), this.#o.statsIntervalMs),
    );
    this.#o.logger.info(
      {
        relayId: this.relayId,
        batchSize: this.#o.batchSize,
        leaseMs: this.#o.leaseMs,
        store: this.#o.store.kind,
        brokerDeduplication: this.#o.brokerDeduplication,
      },
      'Outbox relay started',
    );
    for (const warning of this.#o.featureWarnings) {
      this.#o.logger.warn({ relayId: this.relayId }, `Outbox relay: ${warning}`);
    }
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
      held: this.#book.held.size,
      inFlight: this.#inFlight,
      aggregates: this.#book.lanes.size,
      pending: this.#lag.pending,
      lagSeconds: this.#lag.lagSeconds,
      failing: this.#lag.failing,
      oldestFailingSeconds: this.#lag.oldestFailingSeconds,
      lagWarning: this.#lag.lagWarning,
    };
  }

  // ---- results ---------------------------------------------------------------------------

  async #readResults(stream: PublishResultStream): Promise<void> {
    try {
      for await (const result of stream) this.#onResult(result);
    } catch (error) {
      if (this.#state === 'running') {
        this.#o.logger.error(
          { relayId: this.relayId, err: toError(error) },
          'Outbox relay: result stream failed',
        );
      }
    }
  }

  #onResult(result: PublishResult): void {
    const held = this.#book.held.get(result.eventId);
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
    if (this.#o.listen && !this.#listener.listening) void this.#listener.ensure();
  }

  #requestClaim(): void {
    this.#claimer.request();
  }

  #ingest(rows: readonly ClaimedRow[], claimedAt: number): void {
    const { touched, added } = this.#book.ingest(
      rows,
      leaseValidUntil(claimedAt, this.#o.leaseMs, this.#o.leaseMarginMs),
    );
    this.#claimed += added;
    for (const lane of touched) this.#pump(lane);
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
    const held = this.#book.held.get(row.id);
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
      accepted = this.#o.bus.publishEnvelope(row.topic, envelope);
    } catch (error) {
      accepted = Promise.reject(error);
    }
    // Not accepted → no PublishResult will come: settle it here.
    accepted.then(undefined, (error: unknown) => {
      if (held.state === 'sending' && this.#book.held.get(row.id) === held)
        this.#settleSend(held, false, error);
    });
  }

  #fail(lane: Lane, row: ClaimedRow, error: unknown): void {
    this.#failed++;
    const attempts = row.attempts + 1;
    const retryDelayMs = backoffDelayMs(attempts, this.#o.backoff);
    const later = lane.queue.splice(0);
    const ids = [row.id, ...later.map((r) => r.id)];
    const releasing: Held[] = [];
    for (const id of ids) {
      const held = this.#book.held.get(id);
      if (held === undefined) continue;
      held.state = 'releasing';
      releasing.push(held);
    }
    lane.releasing += ids.length;
    const err = toError(error);
    this.#o.logger.warn(
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
    this.#writes
      .enqueue(() => this.#o.store.release(this.relayId, ids, { id: row.id, error: message, retryDelayMs }))
      .then(
        () => this.#afterRelease(lane, ids.length, releasing),
        (releaseError: unknown) => {
          if (this.#state === 'aborted') return;
          // The leases run out by themselves (they are no longer renewed); the attempt is not counted.
          this.#o.logger.error(
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
    for (const held of released)
      if (this.#book.held.get(held.row.id) === held) this.#book.held.delete(held.row.id);
    lane.releasing -= count;
    this.#maybeRetire(lane);
    this.#pump(lane);
  }

  #maybeRetire(lane: Lane): void {
    if (this.#book.retireIfDone(lane)) this.#requestClaim();
  }

  // ---- database writes (serialised, so our own statements never deadlock each other) --------

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#state === 'aborted') return;
    this.#flushScheduled = true;
    this.#writes.enqueue(() => this.#flushMarks()).catch(() => {});
  }

  async #flushMarks(): Promise<void> {
    this.#flushScheduled = false;
    const ids = this.#markBuffer;
    if (ids.length === 0) return;
    this.#markBuffer = [];
    try {
      await this.#o.store.markPublished(ids);
    } catch (error) {
      if (this.#state === 'aborted') return;
      this.#markBuffer = ids.concat(this.#markBuffer);
      this.#o.logger.error(
        { relayId: this.relayId, rows: ids.length, err: toError(error) },
        'Outbox relay: marking rows published failed; retrying on the next poll',
      );
      return;
    }
    if (this.#state === 'aborted') return;
    for (const id of ids) {
      const held = this.#book.held.get(id);
      if (held === undefined || held.state !== 'acked') continue;
      this.#book.held.delete(id);
      this.#published++;
      held.lane.awaitingMark--;
      this.#maybeRetire(held.lane);
    }
  }

  async #renew(): Promise<void> {
    if (this.#state !== 'running' && this.#state !== 'closing') return;
    await renewHeldLeases({
      ...this.#o,
      book: this.#book,
      writes: this.#writes,
      aborted: () => this.#is('aborted'),
      resume: (lane) => this.#pump(lane),
      retire: (lane) => this.#maybeRetire(lane),
    });
  }

  // ---- observability -----------------------------------------------------------------------

  #measure(): Promise<void> {
    return this.#lag.measure(() => this.#is('running'));
  }

  // ---- shutdown ----------------------------------------------------------------------------

  close(options?: CloseOptions): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    let deadline: AbortSignal;
    try {
      // Validated before anything changes: a bad option leaves the relay running.
      deadline = closeDeadline(options, this.#o.closeTimeoutMs);
    } catch (error) {
      return Promise.reject(error);
    }
    // Stop sending at once: results arriving from now on are recorded, nothing new goes out.
    if (this.#state === 'running') this.#state = 'closing';
    this.#closing = this.#close(deadline);
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #close(deadline: AbortSignal): Promise<void> {
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
    await this.#listener.stop();
    await this.#claimer.inProgress?.catch(() => {});

    // In-flight publishes: wait for their results (they are recorded as they arrive).
    if (this.#inFlight > 0) {
      await wakeOrAbort(deadline, (wake) => {
        this.#inFlightDrained = wake;
        return undefined;
      });
      this.#inFlightDrained = undefined;
      if (this.#inFlight > 0) {
        this.#o.logger.warn(
          { relayId: this.relayId, inFlight: this.#inFlight },
          this.#o.brokerDeduplication
            ? 'Outbox relay: close deadline passed with publishes unconfirmed; releasing them (their republish is de-duplicated)'
            : 'Outbox relay: close deadline passed with publishes unconfirmed; releasing them (the transport does not de-duplicate: a republish of one the broker stored is a duplicate consumers must absorb)',
        );
      }
    }
    this.#scheduleFlush();
    await this.#writes.idle();

    // Give back everything else: queued rows, unconfirmed sends, marks that could not be written.
    const release: string[] = [];
    for (const [id, held] of this.#book.held) if (held.state !== 'releasing') release.push(id);
    if (release.length > 0) {
      await this.#writes
        .enqueue(() => this.#o.store.release(this.relayId, release))
        .catch((error: unknown) => {
          this.#o.logger.error(
            { relayId: this.relayId, rows: release.length, err: toError(error) },
            'Outbox relay: releasing leases on close failed; they expire by themselves',
          );
        });
    }
    await this.#writes.idle();
    this.#book.clear();
    this.#results?.close();
    await this.#readLoop;
    if (!this.#is('closing')) return; // aborted meanwhile
    this.#state = 'closed';
    this.#o.logger.info(
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
    void this.#listener.stop();
    this.#results?.close();
    this.#inFlightDrained?.();
    this.#book.clear();
    this.#markBuffer = [];
    this.#o.logger.warn({ relayId: this.relayId }, 'Outbox relay aborted; its leases expire by themselves');
    this.#resolveClosed();
  }
}

/** Creates a relay; call `start()` to run it. */
export function createOutboxRelay(options: OutboxRelayOptions): OutboxRelay {
  return new Relay(options);
}
