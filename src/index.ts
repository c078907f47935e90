/**
 * jxt-eventbus: domain events over NATS JetStream, Kafka and in-memory, with
 * per-aggregate ordering, at-least-once envelopes and confirmed publishing.
 */
export { createEventBus } from './bus/create-event-bus.ts';
export type { EventBusOptions } from './bus/options.ts';
export type { TopicSchemas } from './bus/schema.ts';
export type {
  SchemaInputs,
  SchemaOutputs,
  TopicEnvelope,
  TopicEnvelopeInput,
  TopicHandler,
  TopicMap,
  TypedEventBus,
} from './bus/typed-topics.ts';
export type { Envelope, EnvelopeInput, EnvelopeRules, JsonValue } from './core/envelope.ts';
export {
  createEnvelope,
  decodeEnvelope,
  encodeEnvelope,
  envelopeHeaders,
  extractAggregateId,
  Headers,
  rawPayload,
  validateEnvelope,
} from './core/envelope.ts';
export type { ErrorCode, SchemaIssue } from './core/errors.ts';
export {
  BusClosedError,
  DecodeError,
  EventBusError,
  findErrorByCode,
  HandlerTimeoutError,
  InvalidArgumentError,
  isEventBusError,
  MissingDependencyError,
  PayloadTooLargeError,
  PublishHeldError,
  PublishRejectedError,
  SchemaValidationError,
  TimeoutError,
  TransportError,
  UnsupportedRuntimeError,
  ValidationError,
} from './core/errors.ts';
export type { Logger } from './core/logger.ts';
export { createConsoleLogger, silentLogger } from './core/logger.ts';
export { UnknownOptionError } from './core/option-keys.ts';
export type {
  InferSchemaInput,
  InferSchemaOutput,
  StandardSchemaV1,
  StandardSchemaV1Issue,
  StandardSchemaV1Result,
} from './core/standard-schema.ts';
export type {
  DeliveryLane,
  FlowControl,
  InboundMessage,
  MessageKind,
  OutboundMessage,
  ParkedEntry,
  ParkingLot,
  PublishCallback,
  PublishOutcome,
  Transport,
  TransportContext,
  TransportFactory,
  TransportFeatures,
  TransportHealth,
  TransportKind,
  TransportSubscribeOptions,
  TransportSubscription,
} from './core/transport.ts';
export type {
  BackoffOptions,
  CloseOptions,
  DeadLetterPolicy,
  EnvelopeHandler,
  EventBus,
  HealthReport,
  MessageContext,
  MetricsOptions,
  Middleware,
  NextHandler,
  PublishAccepted,
  PublishOptions,
  PublishResult,
  PublishResultStream,
  RawHandler,
  StartFrom,
  SubscribeOptions,
  Subscription,
} from './core/types.ts';
export {
  type HealthSource,
  type MetricsServer,
  type MetricsServerOptions,
  metricsHandler,
  type ReadinessBody,
  startMetricsServer,
} from './metrics/http.ts';
export type { GroupMetrics } from './metrics/metrics.ts';
export type {
  KafkaCompression,
  KafkaCredential,
  KafkaOffsetReset,
  KafkaSaslOptions,
  KafkaTransportOptions,
} from './transports/kafka/options.ts';
export type {
  MemoryBroker,
  MemoryChaosOptions,
  MemoryGroupOptions,
  MemoryPublishChaosOptions,
  MemoryPublishFault,
  MemoryTransportOptions,
} from './transports/memory/index.ts';
export { createMemoryBroker, memory } from './transports/memory/index.ts';
export type {
  NatsConsumerOptions,
  NatsGroupOptions,
  NatsStreamOptions,
  NatsTransportOptions,
} from './transports/nats/options.ts';
