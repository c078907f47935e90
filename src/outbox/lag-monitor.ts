/**
 * Measures the outbox backlog (all relays) for stats and metrics, and warns
 * when the lag nears the stream's duplicate window: past it, a republished
 * row is no longer recognised by the broker's de-duplication and may be
 * stored twice (see src/outbox/README.md).
 */
import { toError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { OutboxMetrics } from '../metrics/metrics.ts';
import type { RelayStore } from './types.ts';

export interface LagMonitorSettings {
  readonly relayId: string;
  readonly store: RelayStore;
  readonly duplicateWindowMs: number;
  /** Without broker de-duplication there is no window to warn about (relay-features.ts). */
  readonly brokerDeduplication: boolean;
  readonly lagWarningRatio: number;
  readonly logger: Logger;
  readonly metrics: OutboxMetrics | undefined;
}

/** Repeat a standing lag warning at most this often. */
const LAG_WARNING_REPEAT_MS = 60_000;

export class LagMonitor {
  readonly #s: LagMonitorSettings;
  #measuring = false;
  pending: number | undefined;
  lagSeconds: number | undefined;
  failing: number | undefined;
  oldestFailingSeconds: number | undefined;
  /** Lag is above lagWarningRatio × duplicateWindowMs: de-duplication is at risk. */
  lagWarning = false;
  #lastLagWarnAt = 0;

  constructor(settings: LagMonitorSettings) {
    this.#s = settings;
  }

  /** One measurement; skipped while one runs. `running()` is asked again after the query. */
  async measure(running: () => boolean): Promise<void> {
    if (this.#measuring || !running()) return;
    this.#measuring = true;
    const { relayId, logger, metrics, duplicateWindowMs } = this.#s;
    try {
      const { pending, lagSeconds, failing, oldestFailingSeconds } = await this.#s.store.stats();
      if (!running()) return;
      this.pending = pending;
      this.lagSeconds = lagSeconds;
      this.failing = failing;
      this.oldestFailingSeconds = oldestFailingSeconds;
      metrics?.pending(pending);
      metrics?.lagSeconds(lagSeconds);
      metrics?.failing?.(failing, oldestFailingSeconds);
      const lagMs = lagSeconds * 1000;
      const threshold = duplicateWindowMs * this.#s.lagWarningRatio;
      if (this.#s.brokerDeduplication && lagMs > threshold) {
        const now = Date.now();
        if (!this.lagWarning || now - this.#lastLagWarnAt >= LAG_WARNING_REPEAT_MS) {
          this.#lastLagWarnAt = now;
          logger.warn(
            { relayId, pending, lagSeconds, duplicateWindowMs, ratio: lagMs / duplicateWindowMs },
            lagMs > duplicateWindowMs
              ? 'Outbox lag exceeds the stream duplicate window: a republished event may be stored twice'
              : 'Outbox lag approaches the stream duplicate window',
          );
        }
        this.lagWarning = true;
      } else if (this.lagWarning) {
        this.lagWarning = false;
        logger.info({ relayId, pending, lagSeconds }, 'Outbox lag back below the warning level');
      }
    } catch (error) {
      if (running()) {
        logger.warn({ relayId, err: toError(error) }, 'Outbox relay: measuring the backlog failed');
      }
    } finally {
      this.#measuring = false;
    }
  }
}
