/**
 * Schema validation at the edges (bus option `topics`): every registered
 * (topic, event type) has a Standard Schema; a payload is checked before it is
 * published (invalid: SchemaValidationError, nothing sent) and before the
 * handler sees it (invalid: the same error, non-retryable, so the event is
 * dead-lettered with the schema's message and the aggregate's later events
 * keep flowing). Topics without schemas are not checked at all.
 *
 * Validators may be synchronous or return a Promise (the spec allows both):
 * a synchronous one costs no extra await on the publish path.
 */
import type { Envelope } from '../core/envelope.ts';
import { withPayload } from '../core/envelope-wire.ts';
import {
  describeThrown,
  InvalidArgumentError,
  type SchemaIssue,
  SchemaValidationError,
} from '../core/errors.ts';
import type { StandardSchemaV1, StandardSchemaV1Result } from '../core/standard-schema.ts';
import { parseLossless } from '../core/wire-json.ts';

/** Per topic, a schema per event type: `{ orders: { OrderPlaced: schema, OrderShipped: schema } }`. */
export type TopicSchemas = {
  readonly [topic: string]: { readonly [eventType: string]: StandardSchemaV1 };
};

/** Issues named in an error message; the rest are counted (all stay on `error.issues`). */
const MESSAGE_ISSUES = 5;

const decoder = new TextDecoder('utf-8', { fatal: true });

export class SchemaRegistry {
  readonly #topics: ReadonlyMap<string, ReadonlyMap<string, StandardSchemaV1>>;

  private constructor(topics: ReadonlyMap<string, ReadonlyMap<string, StandardSchemaV1>>) {
    this.#topics = topics;
  }

  /** Checks the `topics` option once (shape only: schemas are user code). Undefined without schemas. */
  static from(option: unknown): SchemaRegistry | undefined {
    if (option === undefined) return undefined;
    if (!isPlainObject(option)) fail('topics', 'an object of topic → { eventType: schema }', option);
    const topics = new Map<string, ReadonlyMap<string, StandardSchemaV1>>();
    for (const [topic, events] of Object.entries(option)) {
      if (!isPlainObject(events)) fail(`topics.${topic}`, 'an object of event type → schema', events);
      const schemas = new Map<string, StandardSchemaV1>();
      for (const [eventType, schema] of Object.entries(events)) {
        if (!isStandardSchema(schema)) {
          fail(
            `topics.${topic}.${eventType}`,
            "a Standard Schema (an object with '~standard': { version: 1, validate }, as zod, valibot and arktype make)",
            schema,
          );
        }
        schemas.set(eventType, schema);
      }
      topics.set(topic, schemas);
    }
    return topics.size === 0 ? undefined : new SchemaRegistry(topics);
  }

  covers(topic: string): boolean {
    return this.#topics.has(topic);
  }

  /**
   * Publish side: throws (or rejects with) SchemaValidationError when the
   * payload does not match; undefined when there is nothing to wait for.
   * The payload is sent as given, not as the schema transformed it: the
   * consumer's schema parses it again.
   */
  checkPublish(topic: string, envelope: Envelope): Promise<void> | undefined {
    const schemas = this.#topics.get(topic);
    if (schemas === undefined) return undefined;
    const outcome = validate(topic, envelope.eventType, schemas, publishedValue(topic, envelope));
    return outcome instanceof Promise ? outcome.then(ignore) : undefined;
  }

  /**
   * Consume side: the envelope with the schema's output as payload, or a
   * SchemaValidationError (thrown or as the rejection), which the actor pool
   * dead-letters without retrying.
   */
  parseConsumed(topic: string, envelope: Envelope): Envelope | Promise<Envelope> {
    const schemas = this.#topics.get(topic);
    if (schemas === undefined) return envelope;
    const outcome = validate(topic, envelope.eventType, schemas, envelope.payload);
    if (outcome instanceof Promise) return outcome.then((settled) => parsed(envelope, settled.value));
    return parsed(envelope, outcome.value);
  }
}

function parsed(envelope: Envelope, value: unknown): Envelope {
  return value === envelope.payload ? envelope : withPayload(envelope, value);
}

function ignore(): void {}

/** The payload as a consumer will see it: bytes holding JSON text are validated as that JSON. */
function publishedValue(topic: string, envelope: Envelope): unknown {
  const { payload } = envelope;
  if (!(payload instanceof Uint8Array)) return payload;
  try {
    return parseLossless(decoder.decode(payload));
  } catch (cause) {
    throw invalid(topic, envelope.eventType, 'unknown', [
      { message: `payload bytes are not UTF-8 JSON: ${describeThrown(cause)}` },
    ]);
  }
}

/** The schema's output, boxed (an output may itself be a Promise). */
interface Parsed {
  readonly value: unknown;
}

/** The schema's output, synchronously when the schema is synchronous. */
function validate(
  topic: string,
  eventType: string,
  schemas: ReadonlyMap<string, StandardSchemaV1>,
  value: unknown,
): Parsed | Promise<Parsed> {
  const schema = schemas.get(eventType);
  if (schema === undefined) {
    throw invalid(topic, eventType, 'none', [
      { message: `no schema for event type "${eventType}" (known: ${[...schemas.keys()].join(', ')})` },
    ]);
  }
  const props = schema['~standard'];
  let result: StandardSchemaV1Result<unknown> | Promise<StandardSchemaV1Result<unknown>>;
  try {
    result = props.validate(value);
  } catch (cause) {
    throw schemaThrew(topic, eventType, props.vendor, cause);
  }
  if (result instanceof Promise) {
    return result.then(
      (settled) => outcomeOf(topic, eventType, props.vendor, settled),
      (cause: unknown) => {
        throw schemaThrew(topic, eventType, props.vendor, cause);
      },
    );
  }
  return outcomeOf(topic, eventType, props.vendor, result);
}

function outcomeOf(
  topic: string,
  eventType: string,
  vendor: string,
  result: StandardSchemaV1Result<unknown>,
): Parsed {
  if (typeof result !== 'object' || result === null) {
    throw invalid(topic, eventType, vendor, [
      { message: `the schema returned ${describeThrown(result)} instead of { value } or { issues }` },
    ]);
  }
  if (result.issues !== undefined) {
    const issues = Array.isArray(result.issues) ? result.issues : [];
    return failWith(topic, eventType, vendor, issues);
  }
  return { value: result.value };
}

function failWith(topic: string, eventType: string, vendor: string, issues: readonly SchemaIssue[]): never {
  throw invalid(
    topic,
    eventType,
    vendor,
    issues.length > 0 ? issues : [{ message: 'invalid (no issue given)' }],
  );
}

function schemaThrew(
  topic: string,
  eventType: string,
  vendor: string,
  cause: unknown,
): SchemaValidationError {
  return invalid(
    topic,
    eventType,
    vendor,
    [{ message: `the schema threw: ${describeThrown(cause)}` }],
    cause,
  );
}

function invalid(
  topic: string,
  eventType: string,
  vendor: string,
  issues: readonly SchemaIssue[],
  cause?: unknown,
): SchemaValidationError {
  const shown = issues.slice(0, MESSAGE_ISSUES).map(formatIssue);
  if (issues.length > MESSAGE_ISSUES) shown.push(`and ${issues.length - MESSAGE_ISSUES} more`);
  return new SchemaValidationError(
    topic,
    eventType,
    `Expected the payload of ${eventType} on ${topic} to match its schema (${vendor}): ${shown.join('; ')}`,
    issues,
    cause === undefined ? {} : { cause },
  );
}

/** `items.0.price: Expected number` (issue objects come from user code: read defensively). */
function formatIssue(issue: SchemaIssue): string {
  const message = typeof issue?.message === 'string' ? issue.message : describeThrown(issue?.message);
  const path = Array.isArray(issue?.path) ? issue.path : [];
  if (path.length === 0) return message;
  const keys = path.map((segment) =>
    typeof segment === 'object' && segment !== null ? String(segment.key) : String(segment),
  );
  return `${keys.join('.')}: ${message}`;
}

function isStandardSchema(value: unknown): value is StandardSchemaV1 {
  if ((typeof value !== 'object' && typeof value !== 'function') || value === null) return false;
  const props = (value as Partial<StandardSchemaV1>)['~standard'];
  return (
    typeof props === 'object' && props !== null && props.version === 1 && typeof props.validate === 'function'
  );
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function fail(name: string, expected: string, value: unknown): never {
  const got = value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
  throw new InvalidArgumentError(`Expected \`${name}\` to be ${expected}, got ${got}`);
}
