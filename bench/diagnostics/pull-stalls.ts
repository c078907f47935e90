/**
 * Diagnostic for the NATS transport's intake stalls (see bench/README.md):
 * our bus consumes one topic while a paced publisher offers `rate` msg/s; a
 * separate "spy" connection watches the pull requests on
 * `$JS.API.CONSUMER.MSG.NEXT.>` and everything the server sends to `_INBOX.>`
 * (deliveries, 408s). A pull that got neither a message nor a status before
 * the next pull went out is listed with the gap it caused and the consumer's
 * state while it was outstanding.
 *
 *   node bench/diagnostics/pull-stalls.ts [rate=1000] [seconds=5]
 *
 * Meant for low rates (up to a few thousand msg/s): at high rates the spy
 * falls behind and its view is incomplete (it says so); the handler gaps at
 * the end stay exact.
 */
import { connect } from '@nats-io/transport-node';
import { createEventBus } from '../../src/index.ts';
import { createStreams, STREAM_PREFIX, startNatsEnv, streamNameFor } from '../nats-env.ts';
import { createWorkload } from '../workload.ts';

const rate = Number(process.argv[2] ?? 1_000);
const seconds = Number(process.argv[3] ?? 5);
const env = await startNatsEnv();
const w = createWorkload({ name: 'stalls', topics: 1, aggregates: 1_000, payloadBytes: 256 });
await createStreams(env, w.topics);
const stream = streamNameFor(STREAM_PREFIX, w.topics[0] as string);
const t0 = performance.now();
const at = () => (performance.now() - t0).toFixed(1);

interface Pull {
  readonly reply: string;
  readonly sentAt: number;
  messages: number;
  status: string | undefined;
  state: string | undefined;
}
const pulls: Pull[] = [];
const byReply = new Map<string, Pull>();
const spy = await connect({ servers: env.url, name: 'spy' });
let spied = 0;
spy.subscribe('$JS.API.CONSUMER.MSG.NEXT.>', {
  callback: (_error, m) => {
    const pull: Pull = {
      reply: m.reply ?? '',
      sentAt: performance.now(),
      messages: 0,
      status: undefined,
      state: undefined,
    };
    pulls.push(pull);
    byReply.set(pull.reply, pull);
    // Consumer state 300 ms into the pull (it expires after 100 ms, so by now it must have been answered).
    setTimeout(() => {
      if (pull.messages === 0 && pull.status === undefined) {
        void env.jsm.consumers.info(stream, 'bench-sub').then((c) => {
          pull.state = `num_pending ${c.num_pending}, num_waiting ${c.num_waiting}, num_ack_pending ${c.num_ack_pending}`;
        });
      }
    }, 300);
  },
});
spy.subscribe('_INBOX.>', {
  callback: (_error, m) => {
    const pull = byReply.get(m.subject);
    if (pull === undefined) return;
    if (m.headers?.code) pull.status ??= `${m.headers.code} ${m.headers.description}`;
    else {
      pull.messages++;
      spied++;
    }
  },
});
await spy.flush();

const pub = await createEventBus({
  transport: 'nats',
  clientId: 'bench-pub',
  nats: { servers: [env.url] },
  metrics: { enabled: false },
});
const sub = await createEventBus({
  transport: 'nats',
  clientId: 'bench-sub',
  nats: { servers: [env.url] },
  metrics: { enabled: false },
});
const n = Math.round(rate * seconds);
let handled = 0;
let last = 0;
const gaps: string[] = [];
let done!: () => void;
const all = new Promise<void>((resolve) => {
  done = resolve;
});
await sub.subscribeEnvelope(w.topics[0] as string, () => {
  const now = performance.now();
  if (handled > 0 && now - last > 200)
    gaps.push(`${at()} ms: handler idle for ${(now - last).toFixed(0)} ms before #${handled}`);
  last = now;
  if (++handled === n) done();
});
const start = performance.now();
for (let i = 0; i < n; i++) {
  const due = start + (i * 1000) / rate;
  const wait = due - performance.now();
  if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
  await pub.publishEnvelope(w.topicOf(i), w.envelope(i));
}
await all;
await new Promise((resolve) => setTimeout(resolve, 400));
const silent = pulls.filter((p) => p.messages === 0 && p.status === undefined);
console.log(
  `${n} messages at ${rate}/s: ${pulls.length} pull requests, ${silent.length} never answered (no message, no 408)`,
);
if (spied < n) {
  console.log(
    `  the spy saw only ${spied}/${n} deliveries: its view is incomplete at this rate, trust the handler gaps`,
  );
}
for (const p of silent) {
  const next = pulls[pulls.indexOf(p) + 1];
  const gap = next ? `${(next.sentAt - p.sentAt).toFixed(0)} ms until the next pull` : 'last pull';
  console.log(
    `  pull at ${(p.sentAt - t0).toFixed(1)} ms (${p.reply}): ${gap}; ${p.state ?? 'state not sampled'}`,
  );
}
console.log(gaps.length > 0 ? `handler gaps > 200 ms:\n  ${gaps.join('\n  ')}` : 'no handler gaps > 200 ms');
await Promise.all([pub.close(), sub.close()]);
await spy.close();
await env.close();
