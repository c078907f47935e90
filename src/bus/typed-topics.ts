/**
 * Typed topics: a map from topic to event type to payload, e.g.
 *
 *   type Topics = { orders: { OrderPlaced: { total: number }; OrderShipped: { carrier: string } } };
 *   const bus = await createEventBus<Topics>({ … });
 *
 * or inferred from the bus option `topics` (Standard Schemas per event type).
 * On such a bus `publishEnvelope` accepts only the map's topics, and for each
 * only its event types with their payloads; a `subscribeEnvelope` handler gets
 * the topic's events as a union discriminated by `eventType`. Types only: the
 * run-time checks are the schemas' (schema.ts).
 */
import type { Envelope, EnvelopeInput } from '../core/envelope.ts';
import type { InferSchemaInput, InferSchemaOutput, StandardSchemaV1 } from '../core/standard-schema.ts';
import type {
  EventBus,
  MessageContext,
  PublishAccepted,
  PublishOptions,
  PublishResult,
  SubscribeOptions,
  Subscription,
} from '../core/types.ts';
import type { TopicSchemas } from './schema.ts';

/** Topic → event type → payload. A type alias or an interface; `object` keeps both usable. */
export type TopicMap = object;

type Names<T> = keyof T & string;

/** An envelope of one of the topic's event types (`E` maps event type → payload), discriminated by eventType. */
export type TopicEnvelope<E> = {
  [N in Names<E>]: Envelope<E[N]> & { readonly eventType: N };
}[Names<E>];

/** What `publishEnvelope` accepts on a topic whose events are `E`. */
export type TopicEnvelopeInput<E> = {
  [N in Names<E>]: EnvelopeInput<E[N]> & { readonly eventType: N };
}[Names<E>];

/** A handler of a topic's events: narrow with `switch (event.eventType)`. */
export type TopicHandler<E> = (envelope: TopicEnvelope<E>, ctx: MessageContext) => Promise<void> | void;

/** The payload types a `topics` option's schemas accept (publish side). */
export type SchemaInputs<S extends TopicSchemas> = {
  [K in keyof S]: { [N in keyof S[K]]: S[K][N] extends StandardSchemaV1 ? InferSchemaInput<S[K][N]> : never };
};

/** The payload types a `topics` option's schemas produce (handler side). */
export type SchemaOutputs<S extends TopicSchemas> = {
  [K in keyof S]: {
    [N in keyof S[K]]: S[K][N] extends StandardSchemaV1 ? InferSchemaOutput<S[K][N]> : never;
  };
};

/**
 * An EventBus whose envelope calls are typed by topic. `In` types what is
 * published, `Out` what handlers receive (they differ when a schema
 * transforms, e.g. a string parsed into a Date). Raw `publish`/`subscribe`
 * are unchanged.
 */
export interface TypedEventBus<In extends TopicMap, Out extends TopicMap = In>
  extends Omit<EventBus, 'publishEnvelope' | 'publishEnvelopeAndWait' | 'subscribeEnvelope'> {
  publishEnvelope<K extends Names<In>>(
    topic: K,
    envelope: TopicEnvelopeInput<In[K]>,
    options?: PublishOptions,
  ): Promise<PublishAccepted>;
  publishEnvelopeAndWait<K extends Names<In>>(
    topic: K,
    envelope: TopicEnvelopeInput<In[K]>,
    options?: PublishOptions,
  ): Promise<PublishResult>;
  /**
   * The same bus without topic types: for topics outside the map (a
   * dead-letter topic, `<topic>.DLQ`) and for code that takes an EventBus
   * (the outbox relay, generic tooling).
   */
  readonly untyped: EventBus;
  subscribeEnvelope<K extends Names<Out>>(
    topic: K,
    handler: TopicHandler<Out[K]>,
    options?: SubscribeOptions,
  ): Promise<Subscription>;
}
