/**
 * Counts a consumer's fetch requests in flight, through the client's
 * diagnostics channel (`consumerFetchesChannel`, a TracingChannel around
 * `Consumer#fetch`).
 *
 * Why: on a rebalance the consumer pauses its stream, but a fetch issued just
 * before may still answer later, after the group has moved on. Its records
 * would carry the new generation and rewind the stream's position. Waiting
 * for the fetches in flight before rejoining closes that window (see
 * subscription.ts, `#beforeJoin`).
 */
import type { TracingChannelSubscribers } from 'node:diagnostics_channel';
import { consumerFetchesChannel } from '@platformatic/kafka';
import { wakeOrAbort } from '../../core/waiting.ts';

interface FetchContext {
  readonly client?: unknown;
  error?: unknown;
}

const inflight = new Map<object, Set<FetchContext>>();
const waiters = new Map<object, Set<() => void>>();

const subscribers: TracingChannelSubscribers<FetchContext> = {
  start(ctx) {
    const set = typeof ctx.client === 'object' && ctx.client !== null ? inflight.get(ctx.client) : undefined;
    set?.add(ctx);
  },
  end(ctx) {
    // A synchronous throw ends the trace without asyncEnd.
    if (ctx.error !== undefined) done(ctx);
  },
  asyncStart() {},
  asyncEnd(ctx) {
    done(ctx);
  },
  error() {},
};

function done(ctx: FetchContext): void {
  const client = ctx.client;
  if (typeof client !== 'object' || client === null) return;
  const set = inflight.get(client);
  if (set === undefined || !set.delete(ctx) || set.size > 0) return;
  const list = waiters.get(client);
  if (list === undefined) return;
  waiters.delete(client);
  for (const w of list) w();
}

/** Starts counting the fetches of `client`; returns the function that stops it. */
export function trackFetches(client: object): () => void {
  if (inflight.size === 0) consumerFetchesChannel.subscribe(subscribers as TracingChannelSubscribers<object>);
  inflight.set(client, new Set());
  return () => {
    if (!inflight.delete(client)) return;
    const list = waiters.get(client);
    waiters.delete(client);
    for (const w of list ?? []) w();
    if (inflight.size === 0)
      consumerFetchesChannel.unsubscribe(subscribers as TracingChannelSubscribers<object>);
  };
}

/** Fetches of `client` in flight now. */
export function fetchesInFlight(client: object): number {
  return inflight.get(client)?.size ?? 0;
}

/** Resolves when `client` has no fetch in flight, or when `signal` aborts. */
export function fetchesSettled(client: object, signal: AbortSignal): Promise<void> {
  if (fetchesInFlight(client) === 0) return Promise.resolve();
  return wakeOrAbort(signal, (wake) => {
    let list = waiters.get(client);
    if (list === undefined) {
      list = new Set();
      waiters.set(client, list);
    }
    list.add(wake);
    return () => list.delete(wake);
  });
}
