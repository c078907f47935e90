/** Shared helpers for the operator command tests (real nats-server via the harness). */
import { randomUUID } from 'node:crypto';
import type { Writer } from '../../src/cli/output.ts';
import { createEventBus } from '../../src/index.ts';
import { until } from '../../src/testing/waiters.ts';
import type { ResolvedNatsOptions } from '../../src/transports/nats/options.ts';
import { resolveNatsOptions } from '../../src/transports/nats/options.ts';

export interface CapturedWriter extends Writer {
  readonly lines: string[];
  readonly errors: string[];
  /** Resolves once a line (stdout or stderr) matches `pattern`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
}

export function captureWriter(): CapturedWriter {
  const lines: string[] = [];
  const errors: string[] = [];
  const signals = new Set<{ check(): void }>();
  const notify = (): void => {
    for (const s of signals) s.check();
  };
  return {
    lines,
    errors,
    out(line) {
      lines.push(line);
      notify();
    },
    err(line) {
      errors.push(line);
      notify();
    },
    async waitFor(pattern, timeoutMs = 15_000) {
      const signal = until(
        () => [...lines, ...errors].some((l) => pattern.test(l)),
        () =>
          `a line matching ${pattern}; stdout: ${JSON.stringify(lines)} stderr: ${JSON.stringify(errors)}`,
      );
      signals.add(signal);
      try {
        await signal.wait(timeoutMs);
      } finally {
        signals.delete(signal);
      }
    },
  };
}

export function uniqueTopic(name: string): string {
  return `cli-${name}-${randomUUID().slice(0, 8)}`;
}

export function natsOptions(url: string, streamPrefix?: string): ResolvedNatsOptions {
  return resolveNatsOptions({ servers: url, ...(streamPrefix === undefined ? {} : { streamPrefix }) });
}

export function natsBus(url: string, clientId: string, streamPrefix?: string) {
  return createEventBus({
    transport: 'nats',
    clientId,
    nats: { servers: url, ...(streamPrefix === undefined ? {} : { streamPrefix }) },
    metrics: { enabled: false },
  });
}
