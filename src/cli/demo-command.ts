/**
 * `eventbus demo` (`npm start`): parses the flags, picks the display (a live
 * line on a terminal, plain lines when piped), and turns Ctrl-C into a clean
 * stop: the first SIGINT stops the run and prints the summary so far (exit
 * 130, the shell's code for "ended by SIGINT"); a second one exits at once.
 * The cursor is restored either way.
 */
import { parseArgs } from 'node:util';
import { positiveInteger } from './args.ts';
import { createDemoDisplay } from './demo-display.ts';

export const demoUsage = `demo [--orders N] [--batch N] [--failure-rate R] [--no-progress]
      Order service (PGlite + transactional outbox) → relay → in-memory transport → projection
      (partitioned consumer group), judged by the order checker. Ctrl-C stops it with a summary.`;

const INTERRUPTED_EXIT_CODE = 130;

export async function demoCommand(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      orders: { type: 'string', default: '2000' },
      batch: { type: 'string', default: '50' },
      'failure-rate': { type: 'string', default: '0.05' },
      'no-progress': { type: 'boolean', default: false },
    },
  });
  const orders = positiveInteger(values.orders, '--orders');
  const batch = positiveInteger(values.batch, '--batch');
  const failureRate = Number(values['failure-rate']);
  if (!(failureRate >= 0 && failureRate < 1)) {
    throw new Error(`Expected --failure-rate in [0, 1), got ${values['failure-rate']}`);
  }
  const display = createDemoDisplay(process.stdout, {
    mode: process.stdout.isTTY === true ? 'live' : 'plain',
    progress: !values['no-progress'],
  });
  const controller = new AbortController();
  const onSigint = (): void => {
    if (!controller.signal.aborted) {
      display.line('Ctrl-C: stopping, the summary follows (Ctrl-C again to quit at once)');
      controller.abort();
      return;
    }
    display.close();
    process.exit(INTERRUPTED_EXIT_CODE);
  };
  process.on('SIGINT', onSigint);
  try {
    // Loaded on demand: the demo needs PGlite, an optional peer dependency.
    const { formatSummary, runDemo } = await import('./demo.ts');
    const summary = await runDemo({ orders, batch, failureRate, display, signal: controller.signal });
    display.close();
    process.stdout.write(`${formatSummary(summary)}\n`);
    if (summary.interrupted) {
      // PGlite's WebAssembly start-up cannot be cancelled and may still be running: exit now
      // instead of waiting for it (stdout is synchronous for pipes, files and terminals on Linux).
      process.exit(INTERRUPTED_EXIT_CODE);
    }
    return summary.lost === 0 && summary.outOfOrder === 0 ? 0 : 1;
  } finally {
    display.close();
    process.off('SIGINT', onSigint);
  }
}
