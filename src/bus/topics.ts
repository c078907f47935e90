/**
 * Topic names and their preparation: the one name rule of the bus, and each
 * topic prepared with the transport (stream or topic created) once per bus.
 */
import { InvalidArgumentError } from '../core/errors.ts';
import type { MessageKind, Transport } from '../core/transport.ts';

const TOPIC_PATTERN = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

export function assertTopic(topic: unknown): asserts topic is string {
  if (typeof topic !== 'string' || topic.length > 200 || !TOPIC_PATTERN.test(topic)) {
    throw new InvalidArgumentError(
      `Expected a topic of dot-separated tokens of [A-Za-z0-9_-] (at most 200 characters), got ${JSON.stringify(topic)}`,
    );
  }
}

/**
 * Callers preparing the same topic at once share one call to the transport;
 * a failed preparation is forgotten, so the next caller tries again.
 */
export class TopicPreparation {
  readonly #transport: Transport;
  readonly #topics = new Map<string, Promise<void> | true>();

  constructor(transport: Transport) {
    this.#transport = transport;
  }

  /** Undefined when the topic is known to be ready (no await on the hot path). */
  ensure(topic: string, kind: MessageKind): Promise<void> | undefined {
    const known = this.#topics.get(topic);
    if (known === true) return undefined;
    if (known) return known;
    const pending = this.#transport.ensureTopic(topic, kind).then(
      () => {
        this.#topics.set(topic, true);
      },
      (error: unknown) => {
        this.#topics.delete(topic);
        throw error;
      },
    );
    this.#topics.set(topic, pending);
    return pending;
  }
}
