#!/usr/bin/env node
/** The `eventbus` command line. */
import { assertSupportedRuntime } from '../core/runtime.ts';
import { demoCommand, demoUsage } from './demo-command.ts';
import { dlqCommand } from './dlq.ts';
import { doctorCommand } from './doctor.ts';
import { connectionUsage } from './nats-admin.ts';
import { processWriter } from './output.ts';
import { tailCommand } from './tail.ts';

const usage = `Usage: eventbus <command> [options]

Commands:
  tail <topic> [--from start|new|SEQ] [--limit N] [--until-end] [--json]
      Prints the topic's messages decoded as envelopes (ephemeral ordered consumer: no consumer
      group moves). --from defaults to new; --until-end stops at the end of what the stream held
      when the tail started; otherwise it runs until --limit or Ctrl-C.
  dlq list <topic> [--parked] [--json]
      Lists <topic>.DLQ (or <topic>.PARKED): sequence, eventId, aggregate, version, attempts,
      original sequence, reason.
  dlq requeue <topic> (--seq N ... | --all) [--dry-run]
      Republishes dead letters to <topic> in DLQ order, each deleted from the DLQ only after
      JetStream acked its republish (Nats-Msg-Id <eventId>.requeue-<DLQ seq>). Exit 1 when
      something was left behind.
  dlq requeue <topic> --parked (--aggregate ID ... | --all) [--group G] [--timeout-ms N] [--dry-run]
      Asks the consumer that owns each parked aggregate's partition to resume it: it replays the
      aggregate's events from <topic>.PARKED in order, ahead of its newer ones, then unparks (request
      through the <prefix>_PARKED KV bucket). Waits up to --timeout-ms (30000) per aggregate; exit 1
      when one was not picked up (no consumer of the group running), failed or was not parked.
  doctor [topic ...] [--raw TOPIC ...]
      Server version, JetStream status, and each topic's stream and durable consumers against what
      the transport creates (every <prefix>_* stream when no topic is given). ok/warn/FAIL lines;
      exit 1 on a FAIL (a broken guarantee, e.g. memory storage on an envelope topic, ack policy
      none). --raw declares topics used with raw publish/subscribe (memory storage expected).
  ${demoUsage}
  bench [--levels LIST] [--quick] [--1m] [--out DIR]   (bench --help for all options)
      Our bus vs the raw NATS client vs the in-memory transport, side by side (source checkout only).

NATS options of tail, dlq, doctor: ${connectionUsage}
`;

async function main(argv: string[]): Promise<number> {
  assertSupportedRuntime();
  const [command, ...rest] = argv;
  if (command !== 'bench' && (rest.includes('--help') || rest.includes('-h'))) {
    process.stdout.write(usage);
    return 0;
  }
  switch (command) {
    case 'demo':
      return demoCommand(rest);
    case 'bench': {
      // bench/ sits next to src/ in a source checkout; it is not part of the published package.
      const url = new URL('../../bench/cli.ts', import.meta.url);
      let bench: { benchMain(argv: readonly string[]): Promise<number> };
      try {
        bench = (await import(url.href)) as typeof bench;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw error;
        throw new Error(`eventbus bench needs a source checkout with bench/ (${(error as Error).message})`);
      }
      return bench.benchMain(rest);
    }
    case 'tail':
      return withInterrupt((signal) => tailCommand(rest, processWriter, signal));
    case 'dlq':
      return dlqCommand(rest, processWriter);
    case 'doctor':
      return doctorCommand(rest, processWriter);
    case undefined:
    case 'help':
    case '--help':
      process.stdout.write(usage);
      return command === undefined ? 1 : 0;
    default:
      process.stderr.write(`Unknown command ${command}\n${usage}`);
      return 1;
  }
}

/** Runs `run` with a signal that SIGINT/SIGTERM abort (a second one kills as usual). */
async function withInterrupt<T>(run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    return await run(controller.signal);
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
