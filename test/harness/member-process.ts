/**
 * One consumer-group member as its own OS process, for multi-process fault
 * suites (spawned by members.ts; not a test file).
 *
 * argv[2] is a JSON MemberConfig. The member creates a bus, subscribes with
 * subscribeEnvelope and reports every handler execution's start and end to
 * the parent as JSON lines on stdout (see MemberLine), batched for
 * throughput. Times are `process.hrtime.bigint()` (CLOCK_MONOTONIC, one
 * clock for every process of the machine), sent as decimal strings.
 *
 * Each batch carries `now`: taken when the batch is written, so every later
 * report of this process has a greater time. The parent merges the members'
 * reports in time order up to the smallest such watermark.
 *
 * SIGTERM → close the bus gracefully (in-flight handlers finish and are
 * reported), write the last batch, exit 0. The end of stdin (the parent
 * died) → exit at once, so no member outlives its test.
 */

import { existsSync, writeSync } from 'node:fs';
import type { Envelope, EventBus, MessageContext } from '../../src/index.ts';
import { createConsoleLogger, createEventBus } from '../../src/index.ts';

/** How the handler behaves; every field optional. */
export interface HandlerBehaviour {
  /** Each execution waits a uniformly random time in [min, max] ms (setTimeout). Default [0, 3]. */
  readonly delayMs?: readonly [number, number];
  /**
   * At the start of this member's n-th execution (1-based), after reporting
   * that start, the process SIGKILLs itself: a crash with a handler in flight
   * at a known point.
   */
  readonly crashAtExecution?: number;
  /**
   * While this file exists, an event whose payload has `poison: true` fails
   * (throws before its execution is reported: a failure applies nothing).
   * Deleting the file is "deploying the fix" (park-and-resume suites).
   */
  readonly poisonWhileExists?: string;
}

export interface MemberConfig {
  /** Member name: the bus clientId, and the name in reports. */
  readonly name: string;
  readonly topic: string;
  /** createEventBus options (JSON) without clientId, e.g. `{ transport: 'nats', nats: { servers } }`. */
  readonly bus: Readonly<Record<string, unknown>>;
  /** subscribeEnvelope options (JSON): group, actors, handlerTimeoutMs, ... */
  readonly subscribe?: Readonly<Record<string, unknown>>;
  readonly handler?: HandlerBehaviour;
  /** Deadline for the graceful close on SIGTERM. Default 10 s. */
  readonly closeTimeoutMs?: number;
}

/** ['s', key, eventId, index, t] or ['e', key, eventId, index, t, applied 0|1]. */
export type ExecutionEvent =
  | readonly ['s', string, string, number, string]
  | readonly ['e', string, string, number, string, 0 | 1];

/** One line on stdout. */
export type MemberLine =
  | { readonly type: 'ready' }
  | { readonly type: 'batch'; readonly now: string; readonly events: readonly ExecutionEvent[] }
  | { readonly type: 'closed' }
  | { readonly type: 'error'; readonly message: string };

const FLUSH_EVERY_MS = 5;
const FLUSH_AT_EVENTS = 1_000;

/**
 * Writes with write(2) on fd 1 and returns only when the kernel holds every
 * byte, so a line written before a crash or exit reaches the parent.
 * `process.stdout` must never be touched in this process: a spawned child's
 * stdout is a socket, and through it Node queues writes in user space when
 * the parent reads slowly (a SIGKILL then lost reports of events whose acks
 * had already gone out, and the checker counted applied events as lost).
 * Untouched, the descriptor stays blocking (libuv makes a child's stdio
 * blocking), so this waits for the parent instead of queueing.
 */
function send(line: MemberLine): void {
  const bytes = Buffer.from(`${JSON.stringify(line)}\n`);
  let written = 0;
  while (written < bytes.length) {
    try {
      written += writeSync(1, bytes, written, bytes.length - written);
    } catch (error) {
      // Only if something made the descriptor non-blocking after all: try again.
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
    }
  }
}

let pending: ExecutionEvent[] = [];
function flush(): void {
  const events = pending;
  pending = [];
  // `now` is read after every event in `events` was stamped (same thread).
  send({ type: 'batch', now: String(process.hrtime.bigint()), events });
}

function record(event: ExecutionEvent): void {
  pending.push(event);
  if (pending.length >= FLUSH_AT_EVENTS) flush();
}

function indexOf(envelope: Envelope): number {
  const payload = envelope.payload as { index?: unknown } | null;
  const index = payload?.index;
  return typeof index === 'number' && Number.isSafeInteger(index) ? index : -1;
}

/** The lead's fencing check: `ctx.stillOwner()` where the transport offers it, else true. */
function stillOwner(ctx: MessageContext): boolean {
  const check = (ctx as MessageContext & { stillOwner?: unknown }).stillOwner;
  return typeof check === 'function' ? Boolean(check.call(ctx)) : true;
}

function delay(range: readonly [number, number]): Promise<void> {
  const [min, max] = range;
  const ms = min + Math.random() * (max - min);
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '') as MemberConfig;
  const range = config.handler?.delayMs ?? [0, 3];
  const crashAt = config.handler?.crashAtExecution;
  let executions = 0;

  // The parent is gone (or closed our stdin): leave at once, whatever state we are in.
  process.stdin.on('end', () => process.exit(70));
  process.stdin.resume();
  // Batches go out even when empty: their `now` lets the parent release other
  // members' reports while this one is idle.
  setInterval(flush, FLUSH_EVERY_MS);

  const bus: EventBus = await createEventBus({
    ...config.bus,
    clientId: config.name,
    metrics: { enabled: false },
    // Diagnostics: with MEMBER_LOG_DIR set the bus logs (debug and up) to stderr, which
    // the parent copies to a file per incarnation (members.ts).
    ...(process.env.MEMBER_LOG_DIR ? { logger: createConsoleLogger('debug') } : {}),
  } as never);

  let closing = false;
  process.on('SIGTERM', () => {
    if (closing) return;
    closing = true;
    void bus.close({ timeoutMs: config.closeTimeoutMs ?? 10_000 }).then(
      () => {
        flush();
        send({ type: 'closed' });
        process.exit(0);
      },
      (error: unknown) => {
        flush();
        send({ type: 'error', message: `close failed: ${String(error)}` });
        process.exit(1);
      },
    );
  });

  await bus.subscribeEnvelope(
    config.topic,
    async (envelope, ctx) => {
      const key = envelope.aggregateId;
      const id = envelope.eventId;
      const index = indexOf(envelope);
      const poisonFile = config.handler?.poisonWhileExists;
      if (poisonFile !== undefined && (envelope.payload as { poison?: unknown } | null)?.poison === true) {
        if (existsSync(poisonFile)) throw new Error(`poison (while ${poisonFile} exists)`);
      }
      record(['s', key, id, index, String(process.hrtime.bigint())]);
      executions++;
      if (crashAt !== undefined && executions === crashAt) {
        flush();
        process.kill(process.pid, 'SIGKILL');
      }
      await delay(range);
      // Ownership is checked at the commit point, and the end is stamped after
      // the check, so the reported interval covers the moment of the effect.
      const applied = stillOwner(ctx);
      record(['e', key, id, index, String(process.hrtime.bigint()), applied ? 1 : 0]);
      // The report is this handler's effect: handed to the kernel (send())
      // before the handler returns and the bus acks. Batched, a SIGKILL in the
      // batching window lost reports of events whose acks had already gone out,
      // and the checker counted handled events as lost (seen once in CI).
      flush();
    },
    config.subscribe as never,
  );

  send({ type: 'ready' });
}

main().catch((error: unknown) => {
  send({ type: 'error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
  process.exit(1);
});
