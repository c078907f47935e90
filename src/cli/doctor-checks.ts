/**
 * What `eventbus doctor` compares: a topic's stream and its durable consumers
 * against what the NATS transport creates (src/transports/nats/streams.ts and
 * consumer.ts), with the numbers taken from the transport's resolved options.
 * Pure functions: info in, findings out.
 */

import {
  AckPolicy,
  type ConsumerInfo,
  DeliverPolicy,
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  type StreamInfo,
} from '@nats-io/jetstream';
import { poolDefaults } from '../dispatch/options.ts';
import { ackWaitFor } from '../transports/nats/consumer.ts';
import type { ResolvedNatsOptions } from '../transports/nats/options.ts';
import { topicOfSubject } from '../transports/nats/partitions.ts';

/** ok / info: fine; warn: differs from the transport, guarantees hold; fail: a guarantee is broken. */
export type Level = 'ok' | 'info' | 'warn' | 'fail';

export interface Finding {
  readonly level: Level;
  readonly message: string;
}

/** Envelope topics need file storage; raw ones use memory; unknown: the stream gave no hint. */
export type TopicKind = 'envelope' | 'raw' | 'unknown';

export interface Expectations {
  readonly duplicateWindowMs: number;
  readonly maxBytes: number;
  readonly maxMsgs: number;
  readonly ackPolicy: 'all' | 'explicit';
  readonly maxAckPending: number;
  readonly maxWaiting: number;
  /** The AckWait a subscription with the default handler timeout ensures. */
  readonly ackWaitMs: number;
}

export function expectationsFrom(options: ResolvedNatsOptions): Expectations {
  return {
    duplicateWindowMs: options.duplicateWindowMs,
    maxBytes: options.stream.maxBytes,
    maxMsgs: options.stream.maxMsgs,
    ackPolicy: options.consumer.ackPolicy,
    maxAckPending: options.consumer.maxAckPending,
    maxWaiting: options.consumer.maxWaiting,
    ackWaitMs: ackWaitFor(options.consumer.ackWaitMs, poolDefaults.handlerTimeoutMs),
  };
}

const NANOS_PER_MS = 1_000_000;
const FULL = 0.9;

const ok = (message: string): Finding => ({ level: 'ok', message });
const info = (message: string): Finding => ({ level: 'info', message });
const warn = (message: string): Finding => ({ level: 'warn', message });
const fail = (message: string): Finding => ({ level: 'fail', message });

function limit(value: number, unit = ''): string {
  return value < 0 ? 'unlimited' : `${value}${unit}`;
}

export function checkStream(stream: StreamInfo, topic: string, kind: TopicKind, e: Expectations): Finding[] {
  const c = stream.config;
  const findings: Finding[] = [];
  if (c.subjects?.includes(topic)) findings.push(ok(`captures ${topic}`));
  else {
    findings.push(
      fail(
        `does not capture ${topic} (subjects: ${c.subjects?.join(', ') || 'none'}); the transport refuses it`,
      ),
    );
  }
  findings.push(storage(c.storage, kind));
  if (c.retention === RetentionPolicy.Limits) findings.push(ok('limits retention'));
  else {
    findings.push(
      fail(
        `${c.retention} retention: messages are removed once consumers acked them, so a consumer group that ` +
          'subscribes later never sees them (the transport creates limits streams)',
      ),
    );
  }
  if (c.discard === DiscardPolicy.Old) findings.push(ok('discard old'));
  else
    findings.push(
      warn(`discard ${c.discard}: publishes are rejected when the stream is full (transport: old)`),
    );
  const windowMs = Math.round((c.duplicate_window ?? 0) / NANOS_PER_MS);
  if (windowMs >= e.duplicateWindowMs) findings.push(ok(`duplicate window ${windowMs} ms`));
  else {
    findings.push(
      warn(
        `duplicate window ${windowMs} ms < ${e.duplicateWindowMs} ms (transport default): a publish retried ` +
          '(same eventId) or relayed by the outbox after that long is stored twice',
      ),
    );
  }
  for (const [name, actual, expected, used] of [
    ['max_msgs', c.max_msgs, e.maxMsgs, stream.state.messages],
    ['max_bytes', c.max_bytes, e.maxBytes, stream.state.bytes],
  ] as const) {
    if (actual === expected) findings.push(ok(`${name} ${limit(actual)}`));
    else findings.push(warn(`${name} ${limit(actual)} (transport default ${limit(expected)})`));
    if (actual > 0 && used >= actual * FULL) {
      findings.push(
        warn(
          `${name}: ${used} of ${actual} used — discard old drops the oldest events, also ones a consumer group has not processed yet`,
        ),
      );
    }
  }
  findings.push(
    info(
      `${stream.state.messages} messages (seq ${stream.state.first_seq}..${stream.state.last_seq}), replicas ${c.num_replicas}`,
    ),
  );
  return findings;
}

function storage(actual: StorageType, kind: TopicKind): Finding {
  if (kind === 'envelope') {
    return actual === StorageType.File
      ? ok('file storage (envelope topic)')
      : fail(
          `${actual} storage on an envelope topic: acknowledged events are lost when the server restarts (the transport creates file streams for envelopes)`,
        );
  }
  if (kind === 'raw') {
    return actual === StorageType.Memory
      ? ok('memory storage (raw topic)')
      : warn(`${actual} storage on a raw topic (the transport uses memory; slower, nothing is lost)`);
  }
  return actual === StorageType.File
    ? ok('file storage')
    : warn(
        `${actual} storage, and no message tells whether this is an envelope topic: envelope topics need file storage (pass --raw <topic> for a raw one)`,
      );
}

export function checkConsumer(consumer: ConsumerInfo, topic: string, e: Expectations): Finding[] {
  const c = consumer.config;
  const findings: Finding[] = [];
  if (c.deliver_subject) {
    findings.push(
      fail(`push consumer (deliver_subject ${c.deliver_subject}); the transport needs a pull consumer`),
    );
  }
  findings.push(ackPolicy(c.ack_policy, e.ackPolicy));
  findings.push(
    c.max_ack_pending === e.maxAckPending
      ? ok(`MaxAckPending ${c.max_ack_pending}`)
      : warn(`MaxAckPending ${limit(c.max_ack_pending ?? -1)} (transport default ${e.maxAckPending})`),
  );
  findings.push(
    c.max_waiting === e.maxWaiting
      ? ok(`MaxWaiting ${c.max_waiting}`)
      : warn(`MaxWaiting ${c.max_waiting ?? 'unset'} (transport default ${e.maxWaiting})`),
  );
  const ackWaitMs = Math.round((c.ack_wait ?? 0) / NANOS_PER_MS);
  findings.push(
    ackWaitMs >= e.ackWaitMs
      ? ok(`AckWait ${ackWaitMs} ms`)
      : warn(
          `AckWait ${ackWaitMs} ms < ${e.ackWaitMs} ms: slow handlers get redelivered while running (the transport raises it when a member subscribes)`,
        ),
  );
  const deliver = c.deliver_policy;
  findings.push(
    deliver === DeliverPolicy.All || deliver === DeliverPolicy.StartSequence
      ? ok(`deliver ${deliver}`)
      : warn(
          `deliver policy ${deliver}: the group skipped events stored before it was created (transport: all)`,
        ),
  );
  const filters = [...(c.filter_subject ? [c.filter_subject] : []), ...(c.filter_subjects ?? [])];
  // A partition's consumer filters on its partition subject (or the plain topic): by design.
  const partition = (f: string): boolean => topicOfSubject(f) === topic && f !== topic;
  if (filters.length === 0 || filters.every((f) => f === topic || f === '>')) {
    findings.push(ok(filters.length === 0 ? 'no filter' : `filter ${filters.join(', ')}`));
  } else if (filters.length === 1 && partition(filters[0] as string)) {
    findings.push(ok(`partition ${filters[0]}`));
  } else {
    findings.push(fail(`filter ${filters.join(', ')}: events on ${topic} do not all reach this group`));
  }
  if (c.max_deliver !== undefined && c.max_deliver > 0) {
    findings.push(
      fail(
        `MaxDeliver ${c.max_deliver}: after that many deliveries the server gives up on a message (e.g. one whose consumer crashed each time) and nothing processes it again (the transport sets -1)`,
      ),
    );
  }
  findings.push(
    info(
      `pending ${consumer.num_pending}, ack pending ${consumer.num_ack_pending}, redelivered ${consumer.num_redelivered}, waiting pulls ${consumer.num_waiting}`,
    ),
  );
  return findings;
}

function ackPolicy(actual: AckPolicy, expected: 'all' | 'explicit'): Finding {
  if (actual === AckPolicy.None) {
    return fail(
      'ack policy none: a message counts as processed once sent; a crash or a failed handler loses it',
    );
  }
  if (actual === AckPolicy.All) {
    const note = expected === 'all' ? '' : ' (opt-in; the transport follows an existing durable)';
    return ok(`AckAll${note} — only one member per group`);
  }
  if (actual === AckPolicy.Explicit) return ok('explicit acks');
  return warn(`ack policy ${actual} (transport: ${expected})`);
}
