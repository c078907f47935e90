/**
 * A consumer that shuts down the way Kubernetes expects.
 *
 * When a pod is deleted (rolling update, scale-in, node drain), Kubernetes
 * marks it not ready, sends SIGTERM, waits `terminationGracePeriodSeconds`
 * (default 30 s) and then sends SIGKILL. On SIGTERM this service:
 *   1. answers 503 on /readyz, so no new traffic is routed to it;
 *   2. `bus.close({ timeoutMs })`: stops taking messages, lets the handlers
 *      that are running finish (they may still publish), gives the broker back
 *      what was not started (redelivered to the group's other members or to
 *      the next instance), waits for publish acks, disconnects;
 *   3. exits 0 before the grace period ends.
 * An event is acknowledged only after its handler returned, so whatever the
 * broker counts as done was done, and nothing else is lost.
 *
 * Run (after `npm run build`):
 *   NATS_URL=nats://127.0.0.1:4222 PORT=8080 node examples/graceful-shutdown.ts
 * It consumes `shipments` until SIGTERM (or Ctrl-C), logging one line per event.
 *
 * In the pod spec, keep the drain deadline below the grace period:
 *   terminationGracePeriodSeconds: 30
 *   readinessProbe: { httpGet: { path: /readyz, port: 8080 } }
 *   livenessProbe:  { httpGet: { path: /healthz, port: 8080 } }
 */
import { createServer } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import { createEventBus } from 'jxt-eventbus';

const natsUrl = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const port = Number(process.env.PORT ?? 8080);
/** How long handlers get to finish: below terminationGracePeriodSeconds, with room to disconnect. */
const drainDeadlineMs = Number(process.env.DRAIN_DEADLINE_MS ?? 20_000);

const bus = await createEventBus({ transport: 'nats', clientId: 'shipping', nats: { servers: natsUrl } });
let shuttingDown = false;

const probes = createServer((req, res) => {
  if (req.url === '/healthz')
    res.writeHead(200).end('ok'); // liveness: the process is alive
  else if (req.url === '/readyz') {
    const ready = !shuttingDown && bus.health().status === 'ok';
    res.writeHead(ready ? 200 : 503).end(ready ? 'ready' : 'not ready');
  } else res.writeHead(404).end();
});
await new Promise<void>((resolve) => probes.listen(port, resolve)); // all interfaces: the kubelet probes the pod IP

await bus.subscribeEnvelope<{ carrier: string }>(
  'shipments',
  async (event, ctx) => {
    // The log shows that a handler running at SIGTERM still finishes: each 'handling' gets its 'handled'.
    console.log(`handling ${event.eventId}`);
    // Real work (a database write, an API call) takes a while; ctx.signal aborts it past the deadline.
    await delay(5, undefined, { signal: ctx.signal });
    console.log(`handled ${event.eventId} ${event.aggregateId} ${event.eventVersion}`);
  },
  { group: 'shipping' },
);
const address = probes.address();
console.log(
  `graceful-shutdown: consuming 'shipments', probes on :${typeof address === 'object' ? address?.port : port}`,
);

async function shutdown(signal: string): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  console.log(`graceful-shutdown: ${signal}, draining (deadline ${drainDeadlineMs} ms)`);
  await bus.close({ timeoutMs: drainDeadlineMs });
  await new Promise<void>((resolve) => {
    probes.close(() => resolve());
    probes.closeAllConnections(); // keep-alive probe connections would hold close() open
  });
  console.log('graceful-shutdown: drained and disconnected');
  // Nothing is left on the event loop: the process exits by itself, with code 0.
}
const onSignal = (signal: string): void => {
  shutdown(signal).catch((error: unknown) => {
    console.error('graceful-shutdown: shutdown failed', error);
    process.exitCode = 1;
  });
};
process.once('SIGTERM', onSignal);
process.once('SIGINT', onSignal);
