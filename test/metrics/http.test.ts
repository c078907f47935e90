/**
 * The operator endpoints: /metrics, /health/live and /health/ready (from
 * bus.health()), on 127.0.0.1 unless another host is given, options checked
 * by the shared kit, closed like every resource (deadline, `closed`,
 * `await using`); and a closed bus's metrics leaving the registry.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Gauge, Registry } from 'prom-client';
import {
  createEventBus,
  type HealthReport,
  InvalidArgumentError,
  startMetricsServer,
  UnknownOptionError,
} from '../../src/index.ts';

async function get(url: string): Promise<{ status: number; type: string | null; body: string }> {
  const res = await fetch(url);
  return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
}

/** A health source whose report the test sets. */
function fakeSource(status: HealthReport['status']): { health(): HealthReport } {
  return {
    health: () => ({
      status,
      transport: 'memory',
      connected: status !== 'closed',
      pendingPublishes: 0,
      retryingPublishes: 0,
      oldestRetryingPublishMs: 0,
      unreadPublishResults: 0,
      subscriptions: [],
    }),
  };
}

describe('metrics server', () => {
  it('serves /metrics, liveness and readiness from a real bus; 503 once the bus is closed', async () => {
    const registry = new Registry();
    const bus = await createEventBus({ transport: 'memory', clientId: 'probe', metrics: { registry } });
    const server = await startMetricsServer({ registry, health: bus });
    try {
      assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/, 'local only by default');
      const metrics = await get(server.url);
      assert.equal(metrics.status, 200);
      assert.match(metrics.body, /memory_eventbus_probe_publish_pending/);

      const live = await get(`${server.baseUrl}/health/live`);
      assert.equal(live.status, 200);
      assert.deepEqual(JSON.parse(live.body), { status: 'ok' });

      const ready = await get(`${server.baseUrl}/health/ready`);
      assert.equal(ready.status, 200);
      assert.match(ready.type ?? '', /application\/json/);
      const body = JSON.parse(ready.body);
      assert.equal(body.status, 'ok');
      assert.equal(body.reports[0].transport, 'memory');

      assert.equal((await get(`${server.baseUrl}/readyz`)).status, 200);
      assert.equal((await get(`${server.baseUrl}/livez`)).status, 200);
      assert.equal((await get(`${server.baseUrl}/nope`)).status, 404);

      await bus.close();
      const closed = await get(`${server.baseUrl}/health/ready`);
      assert.equal(closed.status, 503);
      assert.equal(JSON.parse(closed.body).status, 'closed');
      assert.equal((await get(`${server.baseUrl}/health/live`)).status, 200, 'alive even when not ready');
    } finally {
      await bus.close();
      await server.close();
    }
  });

  it('is not ready while any of several buses is degraded', async () => {
    const server = await startMetricsServer({ health: [fakeSource('ok'), fakeSource('degraded')] });
    try {
      const ready = await get(`${server.baseUrl}/health/ready`);
      assert.equal(ready.status, 503);
      const body = JSON.parse(ready.body);
      assert.equal(body.status, 'degraded');
      assert.deepEqual(
        body.reports.map((r: HealthReport) => r.status),
        ['ok', 'degraded'],
      );
    } finally {
      await server.close();
    }
  });

  it('listens on the host it is given', async () => {
    const server = await startMetricsServer({ host: '0.0.0.0' });
    try {
      assert.match(server.url, /^http:\/\/0\.0\.0\.0:\d+\/metrics$/);
      const port = new URL(server.url).port;
      // Reachable through the loopback interface too: it listens on every interface.
      assert.equal((await get(`http://127.0.0.1:${port}/health/live`)).status, 200);
    } finally {
      await server.close();
    }
  });

  it('rejects unknown and invalid options, and a port in use, without leaving a socket', async () => {
    await assert.rejects(
      startMetricsServer({ hots: '0.0.0.0' } as never),
      (e: unknown) =>
        e instanceof UnknownOptionError && e.option === 'hots' && e.validOptions.includes('host'),
    );
    await assert.rejects(startMetricsServer({ port: 70_000 }), InvalidArgumentError);
    await assert.rejects(startMetricsServer({ host: '' }), InvalidArgumentError);
    await assert.rejects(startMetricsServer({ health: {} as never }), InvalidArgumentError);
    const first = await startMetricsServer();
    try {
      const port = Number(new URL(first.url).port);
      await assert.rejects(startMetricsServer({ port }), /EADDRINUSE/);
    } finally {
      await first.close();
    }
  });
});

/** A registry whose scrape waits in a gauge's collect() until `unblock()`; `collecting` says it started. */
function slowRegistry(): { registry: Registry; collecting: Promise<void>; unblock(): void } {
  const registry = new Registry();
  const { promise: release, resolve: unblock } = Promise.withResolvers<void>();
  const { promise: collecting, resolve: collectStarted } = Promise.withResolvers<void>();
  new Gauge({
    name: 'slow_gauge',
    help: 'a collect that waits for the test',
    registers: [registry],
    async collect() {
      collectStarted();
      await release;
      this.set(1);
    },
  });
  return { registry, collecting, unblock };
}

describe('metrics server lifecycle', () => {
  it('closes with `await using`, and `closed` resolves', async () => {
    let url: string;
    let closed: Promise<void>;
    {
      await using server = await startMetricsServer();
      url = server.url;
      closed = server.closed;
      assert.equal((await get(url)).status, 200);
    }
    await closed;
    await assert.rejects(fetch(url), 'nothing listens any more');
  });

  it('cuts a request still in progress when the close deadline ends; one close; bad close options rejected', async () => {
    const { registry, collecting, unblock } = slowRegistry();
    const server = await startMetricsServer({ registry });
    try {
      await assert.rejects(server.close({ timeoutMs: -1 }), InvalidArgumentError);
      const scrape = fetch(server.url).then((r) => r.text());
      await collecting;
      const stop = new AbortController();
      const closing = server.close({ signal: stop.signal, timeoutMs: 600_000 });
      assert.equal(server.close(), closing, 'one close');
      stop.abort();
      await closing;
      await server.closed;
      await assert.rejects(scrape, 'the scrape in progress was cut');
    } finally {
      unblock();
    }
  });

  it('cuts a request in progress at once when the close signal is already aborted', async () => {
    const { registry, collecting, unblock } = slowRegistry();
    const server = await startMetricsServer({ registry });
    try {
      const scrape = fetch(server.url).then((r) => r.text());
      await collecting;
      await server.close({ signal: AbortSignal.abort(), timeoutMs: 600_000 });
      await assert.rejects(scrape, 'the scrape in progress was cut');
    } finally {
      unblock();
    }
  });
});

describe('metrics of a closed bus', () => {
  it('leave the registry; a new bus with the same clientId registers them again', async () => {
    const registry = new Registry();
    const names = async () => (await registry.getMetricsAsJSON()).map((m) => m.name);
    const first = await createEventBus({ transport: 'memory', clientId: 'again', metrics: { registry } });
    await first.publishEnvelope('t', { aggregateId: 'a', eventType: 'T', eventVersion: 1, payload: {} });
    await first.flush();
    assert.ok((await names()).includes('memory_eventbus_again_publish_messages_total'));
    await first.close();
    assert.deepEqual(await names(), [], 'nothing of the closed bus is left');

    const second = await createEventBus({ transport: 'memory', clientId: 'again', metrics: { registry } });
    try {
      await second.publishEnvelope('t', { aggregateId: 'a', eventType: 'T', eventVersion: 1, payload: {} });
      await second.flush();
      const published = registry.getSingleMetric('memory_eventbus_again_publish_messages_total');
      assert.ok(published);
      const { values } = await published.get();
      assert.deepEqual(
        values.map((v) => v.value),
        [1],
        'counts start again with the new bus',
      );
    } finally {
      await second.close();
    }
  });

  it('stay while another live bus shares them (same clientId), with the closed bus counts kept', async () => {
    const registry = new Registry();
    const a = await createEventBus({ transport: 'memory', clientId: 'shared', metrics: { registry } });
    const b = await createEventBus({ transport: 'memory', clientId: 'shared', metrics: { registry } });
    try {
      await a.publishEnvelope('t', { aggregateId: 'a', eventType: 'T', eventVersion: 1, payload: {} });
      await a.flush();
      await a.close();
      const published = registry.getSingleMetric('memory_eventbus_shared_publish_messages_total');
      assert.ok(published, 'b still uses it');
      assert.deepEqual(
        (await published.get()).values.map((v) => v.value),
        [1],
      );
    } finally {
      await a.close();
      await b.close();
    }
    assert.deepEqual(await registry.getMetricsAsJSON(), []);
  });
});
