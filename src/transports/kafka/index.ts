/**
 * `jxt-eventbus/kafka`: the Kafka transport (client: @platformatic/kafka, an
 * optional peer dependency loaded on first use).
 * See README.md in this folder for the delivery, commit and rebalance rules.
 */
import { importOptional } from '../../core/optional-dependency.ts';
import type { Transport, TransportContext, TransportFactory } from '../../core/transport.ts';
import type { KafkaTransportOptions } from './options.ts';

export type {
  KafkaCompression,
  KafkaCredential,
  KafkaOffsetReset,
  KafkaSaslOptions,
  KafkaTransportOptions,
} from './options.ts';
export { kafkaDefaults } from './options.ts';

/**
 * Validates the options, connects (an idempotent producer id is obtained at
 * once, so unreachable brokers or a missing IDEMPOTENT_WRITE permission fail
 * here with a TransportError) and returns the transport. Without
 * @platformatic/kafka installed: a MissingDependencyError naming it.
 */
export async function createKafkaTransport(
  options: KafkaTransportOptions | undefined,
  ctx: TransportContext,
): Promise<Transport> {
  await importOptional('@platformatic/kafka', 'the Kafka transport');
  const { createKafkaTransport: create } = await import('./create.ts');
  return create(options, ctx);
}

/**
 * `createEventBus({ transport: kafka({ brokers }) })`. @platformatic/kafka is
 * imported, the options validated and the producer connected when the bus
 * creates the transport.
 */
export function kafka(options: KafkaTransportOptions): TransportFactory {
  return { kind: 'kafka', create: (ctx) => createKafkaTransport(options, ctx) };
}
