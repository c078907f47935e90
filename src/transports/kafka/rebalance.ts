/**
 * Handing partitions over at a rebalance: steps 2–4 of the revocation
 * described in subscription.ts. Once intake of the partitions stopped and
 * their lanes are revoking: wait (up to `revokeTimeoutMs`) for their running
 * handlers and for fetches in flight, commit their finished prefixes and
 * rewind the stream's read position of each to that prefix, so whoever reads
 * them next never starts past a record that was fetched but not finished.
 */
import type { Logger } from '../../core/logger.ts';
import { raceSignal } from '../../core/waiting.ts';
import type { CommitScheduler } from './commit-scheduler.ts';
import type { ConsumerClient, RecordStream, SubscriptionSettings } from './consumer-port.ts';
import type { PartitionLane } from './partition-lane.ts';

/** How long the revocation waits for a commit that is already running before sending its own. */
const RUNNING_COMMIT_GRACE_MS = 1_000;

export interface HandOverDeps {
  readonly settings: SubscriptionSettings;
  readonly logger: Logger;
  readonly commits: CommitScheduler;
  consumer(): ConsumerClient | undefined;
  stream(): RecordStream | undefined;
  /** Resolves when the partitions have nothing in flight, or when `signal` aborts. */
  waitSettled(owned: readonly PartitionLane[], signal: AbortSignal): Promise<void>;
}

export async function handOverPartitions(d: HandOverDeps, revoking: readonly PartitionLane[]): Promise<void> {
  const { topic, group } = d.settings;
  const started = Date.now();
  const deadline = AbortSignal.timeout(d.settings.revokeTimeoutMs);
  await d.waitSettled(revoking, deadline);
  await d.consumer()?.fetchesSettled(deadline);
  const running = d.commits.running;
  if (running !== undefined) {
    await raceSignal(
      running,
      AbortSignal.any([deadline, AbortSignal.timeout(RUNNING_COMMIT_GRACE_MS)]),
    ).catch(() => {});
  }
  await d.commits.commitNow(revoking, deadline).catch((error: unknown) => {
    d.logger.warn(
      { err: error, topic },
      'Kafka: committing before the rebalance failed; uncommitted messages will be delivered again',
    );
  });
  // Whoever reads these partitions next starts at the finished prefix, never past a record
  // that was fetched but not finished (the client would keep its read position otherwise).
  for (const o of revoking) d.stream()?.rewind(topic, o.partition, o.rewindPoint()?.offset);
  let abandoned = 0;
  for (const o of revoking) abandoned += o.tracker.inFlight;
  if (abandoned > 0) {
    d.logger.warn(
      { topic, group, abandoned },
      'Kafka: rebalance drain deadline reached; unfinished messages stay uncommitted and go to the next owner',
    );
  }
  d.logger.debug(
    { topic, partitions: revoking.map((o) => o.partition), ms: Date.now() - started },
    'Kafka: partitions revoked',
  );
}
