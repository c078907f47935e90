/**
 * Keeps a subscription's parked aggregates in step with the broker (issue 12).
 * The parking lot (NATS: the `<prefix>_PARKED` KV bucket) is the truth; the
 * pool's parked set is this member's copy, read at subscribe, re-read before
 * each lane it takes over delivers (the previous owner may have parked
 * aggregates of that lane: their newer events must be parked here too, not
 * run), and updated from the watch when another member parks or unparks.
 * Resume requests for aggregates this member owns are answered here.
 *
 * Aggregates this member is resuming are left alone by both: their parked
 * entry is still in the lot until the replay settled, and re-parking them
 * from that stale entry would hold their newer events for no reason.
 */
import { TransportError, toError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { ParkingLot, ResumeRequest } from '../core/transport.ts';
import type { ActorPool } from '../dispatch/types.ts';

export interface ParkedSyncParts {
  readonly pool: ActorPool;
  readonly lot: ParkingLot;
  readonly topic: string;
  readonly group: string;
  readonly logger: Logger;
  /** Does this member own the aggregate's lane now? */
  readonly owns: (key: string) => boolean;
  /** Resumes an aggregate this member owns. */
  readonly resume: (key: string) => Promise<{ readonly resumed: boolean; readonly replayed: number }>;
}

export class ParkedSync {
  readonly #parts: ParkedSyncParts;
  /** Aggregates this member is resuming now. */
  readonly #resuming = new Set<string>();
  #watch: { stop(): Promise<void> } | undefined;
  /** The refresh running now, and the one queued behind it (see refresh()). */
  #running: Promise<void> | undefined;
  #queued: Promise<void> | undefined;

  constructor(parts: ParkedSyncParts) {
    this.#parts = parts;
  }

  /** Watch first, then read: a change made in between is seen by one or the other. */
  async start(): Promise<void> {
    const { lot } = this.#parts;
    if (lot.watch !== undefined) {
      this.#watch = await lot.watch({
        changed: (key, parked, reason) => this.#changed(key, parked, reason),
        resumeRequested: (request) => void this.#answer(request),
      });
    }
    await this.#load();
  }

  async stop(): Promise<void> {
    await this.#watch?.stop();
  }

  /**
   * Marks `key` as being resumed by this member until `done` settles. Reads
   * the parked set first: a member that has just taken the aggregate over may
   * not have re-read it yet, and would answer "not parked".
   */
  async resuming<T>(key: string, done: () => Promise<T>): Promise<T> {
    try {
      await this.refresh();
    } catch (error) {
      throw new TransportError('Failed to read the parked aggregates before resuming', { cause: error });
    }
    this.#resuming.add(key);
    try {
      return await done();
    } finally {
      this.#resuming.delete(key);
    }
  }

  /**
   * Re-reads the parked aggregates; resolves once a read that started after
   * this call finished. Calls that arrive together share one read.
   */
  refresh(): Promise<void> {
    if (this.#running === undefined) {
      this.#running = this.#load().finally(() => {
        this.#running = undefined;
      });
      return this.#running;
    }
    this.#queued ??= this.#running
      .catch(() => {})
      .then(() => {
        this.#queued = undefined;
        return this.refresh();
      });
    return this.#queued;
  }

  async #load(): Promise<void> {
    const parked = await this.#parts.lot.list();
    for (const key of this.#resuming) parked.delete(key);
    this.#parts.pool.restoreParked(parked);
  }

  #changed(key: string, parked: boolean, reason: string): void {
    if (this.#resuming.has(key)) return;
    const { pool, logger, topic, group } = this.#parts;
    if (parked) {
      pool.restoreParked(new Map([[key, reason]]));
    } else if (pool.unpark(key)) {
      logger.info({ topic, group, key }, 'Aggregate unparked by another member');
    }
  }

  async #answer(request: ResumeRequest): Promise<void> {
    const { lot, logger, topic, group, owns, resume } = this.#parts;
    if (lot.answer === undefined || !owns(request.key)) return;
    const { id, key } = request;
    try {
      await lot.answer({ id, key, state: 'accepted' });
      let result: { resumed: boolean; replayed: number } | undefined;
      let failure: string | undefined;
      try {
        result = await resume(key);
      } catch (error) {
        failure = toError(error).message;
      }
      await lot.answer({
        id,
        key,
        state: 'done',
        ...(result === undefined ? { error: failure ?? 'failed' } : result),
      });
      logger.info({ topic, group, key, request: id, ...result, error: failure }, 'Resume request answered');
    } catch (error) {
      logger.error(
        { topic, group, key, request: id, err: toError(error) },
        'Answering a resume request failed',
      );
    }
  }
}
