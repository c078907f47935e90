/**
 * The one place a bus gets its transport from: a factory the application
 * passed (`transport: nats({...})`, or a transport written outside this
 * package), or a built-in named by its kind (`transport: 'nats'` with
 * `nats: {...}`), which is the same factory looked up here.
 *
 * Built-ins are imported on demand, so the core never loads a broker client
 * the application does not use; Kafka's optional client is imported only when
 * its transport is created, with a MissingDependencyError naming the package
 * when it is not installed (core/optional-dependency.ts). The imports are
 * literal, so the type checker sees every factory.
 */
import type { TransportFactory, TransportKind } from '../core/transport.ts';
import type { KafkaTransportOptions } from '../transports/kafka/options.ts';
import type { EventBusOptions } from './options.ts';

/** The built-in transports by kind, loaded on first use. */
const builtins = {
  memory: async (options: EventBusOptions) =>
    (await import('../transports/memory/index.ts')).memory(options.memory),
  nats: async (options: EventBusOptions) => (await import('../transports/nats/index.ts')).nats(options.nats),
  // Missing `kafka` options are rejected when the transport is created (brokers are required).
  kafka: async (options: EventBusOptions) =>
    (await import('../transports/kafka/index.ts')).kafka(options.kafka as KafkaTransportOptions),
} satisfies Record<TransportKind, (options: EventBusOptions) => Promise<TransportFactory>>;

export const builtinTransportKinds = Object.keys(builtins) as readonly TransportKind[];

export function isBuiltinKind(value: unknown): value is TransportKind {
  return typeof value === 'string' && Object.hasOwn(builtins, value);
}

/** The factory `options.transport` names (already validated by resolveBusOptions). */
export function transportFactoryFor(options: EventBusOptions): Promise<TransportFactory> {
  const { transport } = options;
  return typeof transport === 'string' ? builtins[transport](options) : Promise.resolve(transport);
}
