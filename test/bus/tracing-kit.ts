/**
 * A tiny OpenTelemetry SDK for tests, built on the API's interfaces only (the
 * project depends on @opentelemetry/api alone): an AsyncLocalStorage context
 * manager, a W3C traceparent propagator and a tracer provider that records
 * every span it starts.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import {
  type Attributes,
  type AttributeValue,
  type Context,
  type ContextManager,
  context,
  type Exception,
  type Link,
  propagation,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  type SpanOptions,
  type SpanStatus,
  SpanStatusCode,
  type TextMapGetter,
  type TextMapPropagator,
  type TextMapSetter,
  TraceFlags,
  type Tracer,
  type TracerProvider,
  trace,
} from '@opentelemetry/api';

class AlsContextManager implements ContextManager {
  readonly #storage = new AsyncLocalStorage<Context>();
  active(): Context {
    return this.#storage.getStore() ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    ctx: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    return this.#storage.run(ctx, () => fn.apply(thisArg, args));
  }
  bind<T>(ctx: Context, target: T): T {
    if (typeof target !== 'function') return target;
    const fn = target as unknown as (...a: unknown[]) => unknown;
    return ((...args: unknown[]) => this.with(ctx, () => fn(...args))) as T;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    this.#storage.disable();
    return this;
  }
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

class TraceparentPropagator implements TextMapPropagator {
  inject(ctx: Context, carrier: unknown, setter: TextMapSetter): void {
    const span = trace.getSpanContext(ctx);
    if (span === undefined) return;
    setter.set(carrier, 'traceparent', `00-${span.traceId}-${span.spanId}-0${span.traceFlags}`);
  }
  extract(ctx: Context, carrier: unknown, getter: TextMapGetter): Context {
    const raw = getter.get(carrier, 'traceparent');
    const match = TRACEPARENT.exec(Array.isArray(raw) ? (raw[0] ?? '') : (raw ?? ''));
    if (match === null) return ctx;
    return trace.setSpanContext(ctx, {
      traceId: match[1] as string,
      spanId: match[2] as string,
      traceFlags: Number.parseInt(match[3] as string, 16),
      isRemote: true,
    });
  }
  fields(): string[] {
    return ['traceparent'];
  }
}

export interface RecordedSpan {
  readonly name: string;
  readonly kind: SpanKind;
  readonly spanContext: SpanContext;
  readonly parent: SpanContext | undefined;
  readonly attributes: Attributes;
  readonly links: readonly Link[];
  status: SpanStatus;
  ended: boolean;
  readonly exceptions: Exception[];
}

class TestSpan implements Span {
  readonly record: RecordedSpan;
  constructor(record: RecordedSpan) {
    this.record = record;
  }
  spanContext(): SpanContext {
    return this.record.spanContext;
  }
  setAttribute(key: string, value: AttributeValue): this {
    (this.record.attributes as Record<string, AttributeValue>)[key] = value;
    return this;
  }
  setAttributes(attributes: Attributes): this {
    Object.assign(this.record.attributes, attributes);
    return this;
  }
  addEvent(): this {
    return this;
  }
  addLink(link: Link): this {
    (this.record.links as Link[]).push(link);
    return this;
  }
  addLinks(links: Link[]): this {
    (this.record.links as Link[]).push(...links);
    return this;
  }
  setStatus(status: SpanStatus): this {
    this.record.status = status;
    return this;
  }
  updateName(): this {
    return this;
  }
  end(): void {
    this.record.ended = true;
  }
  isRecording(): boolean {
    return !this.record.ended;
  }
  recordException(exception: Exception): void {
    this.record.exceptions.push(exception);
  }
}

class RecordingTracer implements Tracer {
  readonly #spans: RecordedSpan[];
  constructor(spans: RecordedSpan[]) {
    this.#spans = spans;
  }
  startSpan(name: string, options: SpanOptions = {}, ctx: Context = context.active()): Span {
    const parent = options.root ? undefined : trace.getSpanContext(ctx);
    const record: RecordedSpan = {
      name,
      kind: options.kind ?? SpanKind.INTERNAL,
      spanContext: {
        traceId: parent?.traceId ?? randomBytes(16).toString('hex'),
        spanId: randomBytes(8).toString('hex'),
        traceFlags: TraceFlags.SAMPLED,
      },
      parent,
      attributes: { ...options.attributes },
      links: [...(options.links ?? [])],
      status: { code: SpanStatusCode.UNSET },
      ended: false,
      exceptions: [],
    };
    this.#spans.push(record);
    return new TestSpan(record);
  }
  startActiveSpan<F extends (span: Span) => unknown>(name: string, ...rest: unknown[]): ReturnType<F> {
    const fn = rest.at(-1) as F;
    const options = (rest.length > 1 ? rest[0] : {}) as SpanOptions;
    const span = this.startSpan(name, options);
    return context.with(trace.setSpan(context.active(), span), () => fn(span)) as ReturnType<F>;
  }
}

/** Registers the test SDK globally; `spans` fills as spans start. `uninstall()` restores the no-op API. */
export function installTestTracing(): { spans: RecordedSpan[]; uninstall(): void } {
  const spans: RecordedSpan[] = [];
  const provider: TracerProvider = { getTracer: () => new RecordingTracer(spans) };
  const manager = new AlsContextManager();
  context.setGlobalContextManager(manager);
  propagation.setGlobalPropagator(new TraceparentPropagator());
  trace.setGlobalTracerProvider(provider);
  return {
    spans,
    uninstall() {
      trace.disable();
      propagation.disable();
      context.disable();
    },
  };
}
