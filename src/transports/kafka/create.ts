/**
 * Builds the Kafka transport. Imports @platformatic/kafka (an optional peer
 * dependency), so only index.ts loads it, after checking it is installed.
 */
import { TransportError } from '../../core/errors.ts';
import type { Transport, TransportContext } from '../../core/transport.ts';
import { createAdmin, createConsumer, createProducer } from './client.ts';
import { resolveCompression } from './compression.ts';
import { describeKafkaError } from './errors.ts';
import { type KafkaTransportOptions, resolveKafkaOptions } from './options.ts';
import { KafkaTransport } from './transport.ts';

/**
 * Validates the options, connects (an idempotent producer id is obtained at
 * once, so unreachable brokers or a missing IDEMPOTENT_WRITE permission fail
 * here with a TransportError) and returns the transport.
 */
export async function createKafkaTransport(
  options: KafkaTransportOptions | undefined,
  ctx: TransportContext,
): Promise<Transport> {
  const o = resolveKafkaOptions(options, ctx.clientId);
  const compression = resolveCompression(o.compression, ctx.logger);
  const producer = createProducer(o, compression);
  const admin = createAdmin(o);
  try {
    await producer.init();
  } catch (error) {
    await Promise.allSettled([producer.close(), admin.close()]);
    throw new TransportError(
      `Expected to reach Kafka at ${o.brokers.join(',')} and obtain an idempotent producer id, got ${describeKafkaError(error)}`,
      { cause: error },
    );
  }
  return new KafkaTransport(
    o,
    ctx,
    {
      producer,
      admin,
      consumer: (topic, group, hooks, startFrom) => createConsumer(o, topic, group, hooks, startFrom),
    },
    compression,
  );
}
