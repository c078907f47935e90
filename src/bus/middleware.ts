/**
 * Middleware around envelope handlers (Watermill style), composed once per
 * subscription. Per attempt the actor pool runs:
 *
 *   bus middleware[0] → … → subscription middleware[0] → … → schema check → handler
 *
 * and the built-in policy stays around the whole chain, in the pool: the
 * handler timeout aborts `ctx.signal`, a rejection anywhere in the chain is a
 * failed attempt (retried in place with backoff, holding the aggregate's later
 * events), and after `maxAttempts`, or at once for a non-retryable
 * EventBusError such as SchemaValidationError, the event is dead-lettered.
 * The policy is not a middleware itself because it owns the actor's state
 * (the held message, its broker acks, the aggregate's queue), which a
 * function around the handler cannot hold.
 */
import type { Envelope } from '../core/envelope.ts';
import { InvalidArgumentError } from '../core/errors.ts';
import type { EnvelopeHandler, Middleware, NextHandler } from '../core/types.ts';
import type { SchemaRegistry } from './schema.ts';
import { settle } from './tasks.ts';

/** Checks a `middleware` option: an array of functions (or absent). */
export function resolveMiddleware(name: string, value: unknown): readonly Middleware[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    throw new InvalidArgumentError(
      `Expected \`${name}\` to be an array of middleware functions, got ${typeof value}`,
    );
  }
  value.forEach((item, index) => {
    if (typeof item !== 'function') {
      throw new InvalidArgumentError(
        `Expected \`${name}[${index}]\` to be a middleware function ((next) => handler), got ${item === null ? 'null' : typeof item}`,
      );
    }
  });
  return [...(value as Middleware[])];
}

export interface HandlerChainParts {
  readonly topic: string;
  readonly handler: EnvelopeHandler<unknown>;
  /** Bus middleware then the subscription's, outermost first. */
  readonly middleware: readonly Middleware[];
  readonly schemas: SchemaRegistry | undefined;
}

/**
 * The handler the pool runs. Without middleware or schemas it is the user's
 * handler itself (nothing added on the hot path). Every layer's result is
 * settled, so `next` always returns a Promise and a synchronous throw in any
 * layer is an ordinary failure.
 */
export function composeEnvelopeHandler(parts: HandlerChainParts): EnvelopeHandler<unknown> {
  const { topic, handler, middleware, schemas } = parts;
  const validating = schemas?.covers(topic) === true ? schemas : undefined;
  if (middleware.length === 0 && validating === undefined) return handler;
  let chain: NextHandler =
    validating === undefined
      ? (envelope, ctx) => settle(() => handler(envelope, ctx))
      : (envelope, ctx) =>
          settle(() => {
            const checked = validating.parseConsumed(topic, envelope);
            return checked instanceof Promise
              ? checked.then((parsed: Envelope) => handler(parsed, ctx))
              : handler(checked, ctx);
          });
  for (let index = middleware.length - 1; index >= 0; index--) {
    const layer = build(middleware[index] as Middleware, chain, index);
    chain = (envelope, ctx) => settle(() => layer(envelope, ctx));
  }
  return chain;
}

function build(middleware: Middleware, next: NextHandler, index: number): EnvelopeHandler<unknown> {
  let layer: unknown;
  try {
    layer = middleware(next);
  } catch (cause) {
    throw new InvalidArgumentError(`Expected middleware[${index}] to return a handler, it threw`, { cause });
  }
  if (typeof layer !== 'function') {
    throw new InvalidArgumentError(
      `Expected middleware[${index}] to return a handler function ((envelope, ctx) => …), got ${layer === null ? 'null' : typeof layer}`,
    );
  }
  return layer as EnvelopeHandler<unknown>;
}
