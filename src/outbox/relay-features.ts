/**
 * What the relay assumes of the transport behind its bus, read from the
 * transport's declared `features` (src/core/transport.ts) instead of taken
 * for granted:
 *
 * - `brokerDeduplication`: a row is re-sent with the same eventId
 *   (= `msgId`) after a crash, a lost lease, a close deadline or a publish
 *   whose outcome was unknown. With de-duplication the broker stores it once
 *   (within its window); without it (Kafka) the re-send is a second copy in
 *   the stream that the consumers' inbox (`processOnce`) must absorb. The
 *   relay says so once at start, refuses to run when
 *   `requireBrokerDeduplication` is set, and drops the duplicate-window lag
 *   warning, which has no window to warn about.
 * - `duplicateWindowMs`: the default of the relay's own `duplicateWindowMs`;
 *   a configured window longer than the transport's warns too late.
 * - `persistent`: "published" means stored for every group, also those that
 *   subscribe later. On a transport that does not keep messages, an event the
 *   relay marks published reaches only the subscribers connected then.
 *
 * A bus passed without `features` (a wrapper with the two methods only) is
 * taken to de-duplicate, as the relay always assumed.
 */
import { InvalidArgumentError } from '../core/errors.ts';
import { positiveInteger } from '../core/option-checks.ts';
import type { TransportFeatures } from '../core/transport.ts';

/** The JetStream default, used when neither the relay options nor the transport say. */
const DEFAULT_DUPLICATE_WINDOW_MS = 120_000;

export interface RelayFeatureOptions {
  readonly features: TransportFeatures | undefined;
  readonly duplicateWindowMs: number | undefined;
  readonly requireBrokerDeduplication: boolean | undefined;
}

export interface RelayFeatures {
  /** A re-sent row is stored once (within the window). */
  readonly brokerDeduplication: boolean;
  /** The window the lag warning is measured against (meaningless without de-duplication). */
  readonly duplicateWindowMs: number;
  /** Logged once when the relay starts: what the transport does not give. */
  readonly warnings: readonly string[];
}

export function resolveRelayFeatures(o: RelayFeatureOptions): RelayFeatures {
  if (o.requireBrokerDeduplication !== undefined && typeof o.requireBrokerDeduplication !== 'boolean') {
    throw new InvalidArgumentError(
      `Expected \`requireBrokerDeduplication\` to be a boolean, got ${String(o.requireBrokerDeduplication)}`,
    );
  }
  const features = o.features;
  const dedup = features?.brokerDeduplication ?? true;
  const transportWindow = features?.duplicateWindowMs;
  const duplicateWindowMs = positiveInteger(
    'duplicateWindowMs',
    o.duplicateWindowMs,
    transportWindow ?? DEFAULT_DUPLICATE_WINDOW_MS,
  );
  const warnings: string[] = [];
  if (!dedup) {
    if (o.requireBrokerDeduplication) {
      throw new InvalidArgumentError(
        'Expected a bus whose transport de-duplicates re-sent events (features.brokerDeduplication), as requireBrokerDeduplication asks; this one does not (e.g. Kafka): run the relay on a transport that does, or drop the option and make every consumer idempotent (processOnce)',
      );
    }
    warnings.push(
      'the transport has no broker de-duplication (features.brokerDeduplication = false): a row re-sent after a crash, a lost lease, the close deadline or a publish with an unknown outcome is stored a second time; every consumer must absorb it (processOnce)' +
        (o.duplicateWindowMs === undefined ? '' : '; duplicateWindowMs is ignored'),
    );
  } else if (transportWindow !== undefined && duplicateWindowMs > transportWindow) {
    warnings.push(
      `duplicateWindowMs (${duplicateWindowMs} ms) is longer than the transport's de-duplication window (${transportWindow} ms): the lag warning would come after re-sends can already be stored twice`,
    );
  }
  if (features !== undefined && !features.persistent) {
    warnings.push(
      'the transport does not keep messages (features.persistent = false): a row marked published reaches only the subscribers connected at that moment',
    );
  }
  return { brokerDeduplication: dedup, duplicateWindowMs, warnings };
}
