/** Topic → subject/stream/durable names, and the checks that go with them. */
import { InvalidArgumentError } from '../../core/errors.ts';
import { fnv1a32 } from '../../core/hash.ts';

const MAX_NAME = 200;

/** A topic is published as-is as a NATS subject: dot-separated, no wildcards, no whitespace. */
export function validateTopic(topic: unknown): asserts topic is string {
  if (typeof topic !== 'string' || topic.length === 0) {
    throw new InvalidArgumentError(`Expected \`topic\` to be a non-empty string, got ${String(topic)}`);
  }
  if (/\s/.test(topic) || topic.split('.').some((t) => t === '' || t === '*' || t === '>')) {
    throw new InvalidArgumentError(
      `Expected \`topic\` to be a NATS subject without wildcards, whitespace or empty tokens, got "${topic}"`,
    );
  }
}

/** Stream/durable names may not contain . * > whitespace or path separators. */
function sanitize(value: string): string {
  const clean = value.replace(/[^A-Za-z0-9_-]/g, '_');
  if (clean.length <= MAX_NAME) return clean;
  return `${clean.slice(0, MAX_NAME - 9)}_${fnv1a32(value).toString(16).padStart(8, '0')}`;
}

/** `<prefix>_<topic sanitized>`: one stream per topic. */
export function streamNameFor(prefix: string, topic: string): string {
  return `${prefix}_${sanitize(topic)}`;
}

/** Durable consumer name for a consumer group. */
export function durableNameFor(group: string): string {
  if (typeof group !== 'string' || group.length === 0) {
    throw new InvalidArgumentError(`Expected \`group\` to be a non-empty string, got ${String(group)}`);
  }
  return sanitize(group);
}
