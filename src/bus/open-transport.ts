/**
 * Starting a bus: the transport the options name (transport-registry.ts)
 * created and connected, and the bus's metrics, which the transport's group
 * metrics are read from.
 */
import type { Transport } from '../core/transport.ts';
import { type BusMetrics, createBusMetrics, noopMetrics } from '../metrics/metrics.ts';
import type { EventBusOptions, ResolvedBusOptions } from './options.ts';
import { transportFactoryFor } from './transport-registry.ts';

export async function openTransport<B>(
  options: EventBusOptions,
  resolved: ResolvedBusOptions,
  build: (transport: Transport, metrics: BusMetrics) => B,
): Promise<B> {
  // Group metrics are asked for at subscribe time, once the bus's metrics exist.
  let busMetrics: BusMetrics = noopMetrics;
  const factory = await transportFactoryFor(options);
  const transport = await factory.create({
    clientId: resolved.clientId,
    logger: resolved.logger,
    interop: resolved.interop,
    groupMetrics: (topic, group) => busMetrics.forGroup(topic, group),
  });
  try {
    const metrics =
      resolved.metrics.enabled === false
        ? noopMetrics
        : createBusMetrics(transport.kind, resolved.clientId, resolved.metrics.registry);
    busMetrics = metrics;
    return build(transport, metrics);
  } catch (error) {
    // Nothing the failed start opened may keep the process alive.
    busMetrics.unregister();
    await transport.close(AbortSignal.timeout(resolved.closeTimeoutMs)).catch(() => {});
    throw error;
  }
}
