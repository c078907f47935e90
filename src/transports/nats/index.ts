/**
 * NATS JetStream transport (src/transports/nats/README.md): one connection, a stream per topic,
 * pipelined confirmed publishing, one pull loop per subscription.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { TransportError } from '../../core/errors.ts';
import type { Transport, TransportContext, TransportFactory } from '../../core/transport.ts';
import { NatsConnectionManager } from './connection.ts';
import { type NatsTransportOptions, resolveNatsOptions } from './options.ts';
import { NatsTransport } from './transport.ts';

export type {
  NatsConsumerOptions,
  NatsGroupOptions,
  NatsStreamOptions,
  NatsTransportOptions,
} from './options.ts';
export { NATS_DEFAULTS } from './options.ts';

/** Validates options, connects, checks JetStream is available. */
export async function createNatsTransport(
  options: NatsTransportOptions | undefined,
  ctx: TransportContext,
): Promise<Transport> {
  const resolved = resolveNatsOptions(options);
  const conn = await NatsConnectionManager.open(resolved, ctx.clientId, ctx.logger);
  try {
    const jsm = await jetstreamManager(conn.nc, { timeout: resolved.apiTimeoutMs });
    return new NatsTransport(
      conn,
      jsm,
      resolved,
      ctx.logger,
      ctx.interop === 'jxt-go',
      ctx.groupMetrics,
      () => NatsConnectionManager.open(resolved, `${ctx.clientId}-leases`, ctx.logger),
    );
  } catch (cause) {
    await conn.nc.close().catch(() => {});
    throw new TransportError(
      `Connected to ${conn.server} but JetStream is not available: ${(cause as Error).message}`,
      { cause, retryable: false },
    );
  }
}

/**
 * `createEventBus({ transport: nats({ servers }) })`. The options are
 * validated and the connection made when the bus creates the transport.
 */
export function nats(options?: NatsTransportOptions): TransportFactory {
  return { kind: 'nats', create: (ctx) => createNatsTransport(options, ctx) };
}
