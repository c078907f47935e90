/**
 * OpenTelemetry spans following the messaging semantic conventions
 * (https://opentelemetry.io/docs/specs/semconv/messaging/messaging-spans/):
 * a PRODUCER `send <topic>` span per publish, ended when the broker
 * acknowledged (or the publish failed), whose context travels in the message
 * headers (`traceparent`, `tracestate` through the registered propagator);
 * and a CONSUMER `process <topic>` span per handler attempt, a child of the
 * context extracted from the headers (and linked to it, as the conventions
 * recommend), with the status ERROR when the handler fails.
 *
 * Only `@opentelemetry/api` is used: without an SDK registered by the
 * application every span is a non-recording no-op and nothing is injected.
 */
import {
  type Attributes,
  type Context,
  context,
  propagation,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  trace,
} from '@opentelemetry/api';
import { Headers } from '../core/envelope.ts';
import type { EnvelopeHandler, MessageContext, PublishResult, RawHandler } from '../core/types.ts';

/** The instrumentation scope spans are recorded under. */
export const TRACER_NAME = 'jxt-eventbus';

const getter: TextMapGetter<Readonly<Record<string, string>>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => {
    // Headers keep their writer's case; propagators ask in lower case.
    const exact = carrier[key];
    if (exact !== undefined) return exact;
    const lower = key.toLowerCase();
    for (const [k, v] of Object.entries(carrier)) if (k.toLowerCase() === lower) return v;
    return undefined;
  },
};

function tracer() {
  return trace.getTracer(TRACER_NAME);
}

function rethrow(error: unknown): never {
  throw error;
}

/** Ends a span once with the publish's outcome. */
function endWithResult(span: Span, result: PublishResult): void {
  if (!result.success) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: result.error?.message ?? 'publish failed' });
    if (result.error !== undefined) {
      span.recordException(result.error);
      span.setAttribute('error.type', result.error.code);
    }
  }
  span.end();
}

/**
 * Starts the producer span of one publish and injects its context into
 * `headers`. Returns the callback to call with the publish's result (it ends
 * the span, then calls `next`), and `abandon` (rethrows) for a publish refused
 * before it was sent. Nothing is allocated per publish when tracing is off.
 */
export function startPublishSpan(
  system: string,
  topic: string,
  messageId: string,
  headers: Record<string, string>,
  next: ((result: PublishResult) => void) | undefined,
): { onResult: ((result: PublishResult) => void) | undefined; abandon(error: unknown): never } {
  const active = context.active();
  const span = tracer().startSpan(
    `send ${topic}`,
    {
      kind: SpanKind.PRODUCER,
      attributes: {
        'messaging.system': system,
        'messaging.operation.type': 'send',
        'messaging.operation.name': 'send',
        'messaging.destination.name': topic,
        'messaging.message.id': messageId,
      },
    },
    active,
  );
  if (!span.isRecording()) {
    // No SDK: keep propagating a context the application may have (another library's span).
    if (trace.getSpan(active) !== undefined) propagation.inject(active, headers);
    span.end();
    return { onResult: next, abandon: rethrow };
  }
  propagation.inject(trace.setSpan(active, span), headers);
  return {
    onResult: (result) => {
      endWithResult(span, result);
      next?.(result);
    },
    abandon: (error) => {
      span.setStatus({ code: SpanStatusCode.ERROR, message: String((error as Error)?.message ?? error) });
      span.end();
      throw error;
    },
  };
}

/** Headers, or none when they cannot be parsed (the handler fails on them itself). */
function readableHeaders(ctx: MessageContext): Readonly<Record<string, string>> {
  try {
    return ctx.headers;
  } catch {
    return {};
  }
}

/** The attributes of a consumer span for one handler attempt. */
function processAttributes(system: string, ctx: MessageContext, messageId: string | undefined): Attributes {
  const attributes: Attributes = {
    'messaging.system': system,
    'messaging.operation.type': 'process',
    'messaging.operation.name': 'process',
    'messaging.destination.name': ctx.topic,
    'messaging.consumer.group.name': ctx.group,
    'messaging.message.delivery_count': ctx.deliveryCount,
  };
  if (messageId !== undefined) attributes['messaging.message.id'] = messageId;
  return attributes;
}

/**
 * Runs `run` inside a CONSUMER span parented by the context the producer put
 * in the headers. Without an SDK (non-recording span) it calls `run` directly
 * and returns what it returns: no promise is added per message.
 */
function inProcessSpan(
  system: string,
  ctx: MessageContext,
  messageId: () => string | undefined,
  run: () => unknown,
): unknown {
  const producer: Context =
    // No propagator registered: nothing to extract, and headers stay undecoded (they are lazy).
    propagation.fields().length === 0
      ? context.active()
      : propagation.extract(context.active(), readableHeaders(ctx), getter);
  const producerSpan = trace.getSpanContext(producer);
  const span = tracer().startSpan(
    `process ${ctx.topic}`,
    {
      kind: SpanKind.CONSUMER,
      attributes: processAttributes(system, ctx, messageId()),
      ...(producerSpan === undefined ? {} : { links: [{ context: producerSpan }] }),
    },
    producer,
  );
  if (!span.isRecording()) {
    span.end();
    // The handler still sees the producer's context (propagation without an SDK).
    return producerSpan === undefined ? run() : context.with(producer, run);
  }
  return runInSpan(span, producer, run);
}

async function runInSpan(span: Span, parent: Context, run: () => unknown): Promise<void> {
  try {
    await context.with(trace.setSpan(parent, span), run);
  } catch (error) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: String((error as Error)?.message ?? error) });
    if (error instanceof Error) {
      span.recordException(error);
      span.setAttribute('error.type', (error as { code?: string }).code ?? error.name);
    }
    throw error;
  } finally {
    span.end();
  }
}

/** An envelope handler whose every attempt runs in a consumer span. */
export function traceEnvelopeHandler<P>(system: string, handler: EnvelopeHandler<P>): EnvelopeHandler<P> {
  return (envelope, ctx) =>
    inProcessSpan(
      system,
      ctx,
      () => envelope.eventId,
      () => handler(envelope, ctx),
    ) as ReturnType<EnvelopeHandler<P>>;
}

/** A raw handler whose every attempt runs in a consumer span. */
export function traceRawHandler(system: string, handler: RawHandler): RawHandler {
  return (data, ctx) =>
    inProcessSpan(
      system,
      ctx,
      () => {
        const headers = readableHeaders(ctx);
        return headers[Headers.natsMsgId] ?? headers[Headers.eventId];
      },
      () => handler(data, ctx),
    ) as ReturnType<RawHandler>;
}
