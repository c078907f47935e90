/** `eventbus dlq list | requeue`: argument parsing and dispatch. */
import { parseArgs } from 'node:util';
import { InvalidArgumentError } from '../core/errors.ts';
import { positiveInteger, requireTopic } from './args.ts';
import { type DlqListOptions, runDlqList } from './dlq-list.ts';
import { type DlqRequeueOptions, runDlqRequeue } from './dlq-requeue.ts';
import { adminOptions, connectionArgs } from './nats-admin.ts';
import type { Writer } from './output.ts';

export function parseDlqListArgs(argv: readonly string[]): DlqListOptions {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      ...connectionArgs,
      parked: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  return {
    nats: adminOptions(values),
    topic: requireTopic(positionals, 'dlq list'),
    parked: values.parked,
    json: values.json,
  };
}

export function parseDlqRequeueArgs(argv: readonly string[]): DlqRequeueOptions {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      ...connectionArgs,
      seq: { type: 'string', multiple: true },
      all: { type: 'boolean', default: false },
      'dry-run': { type: 'boolean', default: false },
      parked: { type: 'boolean', default: false },
    },
  });
  const topic = requireTopic(positionals, 'dlq requeue');
  if (values.parked) {
    throw new InvalidArgumentError(
      `Requeue from ${topic}.PARKED is not supported: events requeued from here would only be parked ` +
        "again, or run after the aggregate's newer events. Resume the aggregate in the consuming process with " +
        '`subscription.resume(aggregateId)`: it replays the parked events in order, ahead of newer ones, and ' +
        'unparks; `dlq list --parked` shows what is parked.',
    );
  }
  const sequences = (values.seq ?? []).flatMap((s) => s.split(',')).map((s) => positiveInteger(s, '--seq'));
  if (values.all === sequences.length > 0) {
    throw new InvalidArgumentError('Expected either --seq N (repeatable, or N,M,...) or --all');
  }
  return {
    nats: adminOptions(values),
    topic,
    sequences: values.all ? 'all' : sequences,
    dryRun: values['dry-run'],
  };
}

export function dlqCommand(argv: readonly string[], writer: Writer): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'list') return runDlqList(parseDlqListArgs(rest), writer);
  if (sub === 'requeue') return runDlqRequeue(parseDlqRequeueArgs(rest), writer);
  return Promise.reject(
    new InvalidArgumentError(
      `Expected \`eventbus dlq list <topic>\` or \`eventbus dlq requeue <topic>\`, got ${sub ?? 'nothing'}`,
    ),
  );
}
