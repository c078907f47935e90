/**
 * The bus's single graceful shutdown path, under one deadline (made once by
 * closeDeadline in close()): no stage gets time of its own beyond it.
 * Subscriptions drain first while the bus still takes their publishes
 * (follow-ups), then the publish window closes, accepted publishes get until
 * the deadline to be acknowledged, retries stop and the transport closes.
 */
import { settledOrAborted } from '../core/close-deadline.ts';
import { BusClosedError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { Transport } from '../core/transport.ts';
import type { BusMetrics } from '../metrics/metrics.ts';
import type { PublishPath } from './publish-path.ts';
import type { PublishResultHub } from './publish-results.ts';
import type { PublishWindow } from './publish-window.ts';
import type { BusSubscription } from './subscription.ts';

export interface ShutdownParts {
  readonly subscriptions: ReadonlySet<BusSubscription>;
  /** From here on the bus refuses publishes (handlers have drained). */
  readonly refusePublishes: () => void;
  readonly window: PublishWindow;
  readonly publishing: PublishPath;
  readonly transport: Transport;
  readonly results: PublishResultHub;
  readonly metrics: BusMetrics;
  readonly logger: Logger;
  /** Resolves the bus's `closed`. */
  readonly onClosed: () => void;
}

/** Never rejects: a failing stage is logged and the rest (results, metrics, `closed`) still ends. */
export async function shutdownBus(parts: ShutdownParts, deadline: AbortSignal): Promise<void> {
  try {
    // Handlers drain with the bus still taking their publishes (follow-ups).
    await Promise.all([...parts.subscriptions].map((s) => s.close({ signal: deadline })));
    parts.refusePublishes();
    parts.window.close(new BusClosedError());
    // Accepted publishes, retries included, get until the deadline to be acknowledged.
    await settledOrAborted(parts.window.whenEmpty(), deadline);
    // Then nothing more is attempted: publishes waiting to be retried fail now,
    // those on the wire get a TimeoutError result from the transport's close.
    parts.publishing.stopRetrying();
    await parts.transport.close(deadline);
  } catch (error) {
    parts.logger.error({ err: error }, 'error while closing the bus');
  } finally {
    parts.results.endAll();
    // A closed bus no longer shows in the registry; a new bus may take its names.
    parts.metrics.unregister();
    parts.onClosed();
  }
}
