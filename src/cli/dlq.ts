/** `eventbus dlq list | requeue`: argument parsing and dispatch. */
import { parseArgs } from 'node:util';
import { InvalidArgumentError } from '../core/errors.ts';
import { positiveInteger, requireTopic } from './args.ts';
import { type DlqListOptions, runDlqList } from './dlq-list.ts';
import { type DlqRequeueOptions, runDlqRequeue } from './dlq-requeue.ts';
import { type DlqResumeOptions, defaultResumeWaitMs, runDlqResume } from './dlq-resume.ts';
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

export function parseDlqRequeueArgs(
  argv: readonly string[],
): ({ readonly parked: false } & DlqRequeueOptions) | ({ readonly parked: true } & DlqResumeOptions) {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      ...connectionArgs,
      seq: { type: 'string', multiple: true },
      all: { type: 'boolean', default: false },
      'dry-run': { type: 'boolean', default: false },
      parked: { type: 'boolean', default: false },
      aggregate: { type: 'string', multiple: true },
      group: { type: 'string' },
      'timeout-ms': { type: 'string' },
    },
  });
  const topic = requireTopic(positionals, 'dlq requeue');
  if (values.parked) {
    if (values.seq !== undefined) {
      throw new InvalidArgumentError(
        'Expected --aggregate ID (repeatable) or --all with --parked, got --seq: parked events are resumed per aggregate, in order',
      );
    }
    const aggregates = values.aggregate ?? [];
    if (values.all === aggregates.length > 0) {
      throw new InvalidArgumentError('Expected either --aggregate ID (repeatable) or --all with --parked');
    }
    if (aggregates.some((a) => a === ''))
      throw new InvalidArgumentError('Expected --aggregate to be non-empty');
    if (values.group === '') throw new InvalidArgumentError('Expected --group to be non-empty');
    return {
      parked: true,
      nats: adminOptions(values),
      topic,
      aggregates: values.all ? 'all' : aggregates,
      group: values.group,
      timeoutMs:
        values['timeout-ms'] === undefined
          ? defaultResumeWaitMs
          : positiveInteger(values['timeout-ms'], '--timeout-ms'),
      dryRun: values['dry-run'],
    };
  }
  for (const flag of ['aggregate', 'group', 'timeout-ms'] as const) {
    if (values[flag] !== undefined) throw new InvalidArgumentError(`Expected --${flag} only with --parked`);
  }
  const sequences = (values.seq ?? []).flatMap((s) => s.split(',')).map((s) => positiveInteger(s, '--seq'));
  if (values.all === sequences.length > 0) {
    throw new InvalidArgumentError('Expected either --seq N (repeatable, or N,M,...) or --all');
  }
  return {
    parked: false,
    nats: adminOptions(values),
    topic,
    sequences: values.all ? 'all' : sequences,
    dryRun: values['dry-run'],
  };
}

export function dlqCommand(argv: readonly string[], writer: Writer): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'list') return runDlqList(parseDlqListArgs(rest), writer);
  if (sub === 'requeue') {
    const options = parseDlqRequeueArgs(rest);
    return options.parked ? runDlqResume(options, writer) : runDlqRequeue(options, writer);
  }
  return Promise.reject(
    new InvalidArgumentError(
      `Expected \`eventbus dlq list <topic>\` or \`eventbus dlq requeue <topic>\`, got ${sub ?? 'nothing'}`,
    ),
  );
}
