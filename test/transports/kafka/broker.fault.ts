/**
 * Kafka fault tests around the broker itself: a broker restart (state kept in
 * -data-dir), a record larger than the broker accepts, a broker that is not
 * there at start. Each test starts its own kfake broker (KFAKE_BIN); they are
 * skipped against KAFKA_BROKERS (a shared cluster cannot be restarted or
 * reconfigured from here). Loss and order are judged by the checker.
 *
 *   KFAKE_BIN=../shared/tools/kafka/kfake-server ./node_modules/.bin/node --test test/transports/kafka/broker.fault.ts
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Envelope, EventBus } from '../../../src/index.ts';
import { createOrderChecker, formatReport } from '../../../src/testing/checker.ts';
import { type KafkaBrokerHandle, kfakeBinary, startKafkaBroker } from '../../harness/kafka-broker.ts';
import { getFreePort } from '../../harness/ports.ts';
import {
  allConsumed,
  assertNoLossNoReorder,
  type EventPayload,
  kafkaBus,
  publishBacklog,
  uniqueName,
  waitFor,
} from './fault-kit.ts';

const skip = process.env.KFAKE_BIN
  ? false
  : 'KFAKE_BIN is not set (these tests restart and reconfigure their own kfake broker)';
if (skip) console.log(`# skipping the Kafka broker fault tests: ${skip}`);

describe('Kafka faults: the broker', { skip, timeout: 300_000 }, () => {
  const brokers: KafkaBrokerHandle[] = [];
  const buses: EventBus[] = [];
  after(async () => {
    await Promise.all(buses.map((b) => b.close({ timeoutMs: 5_000 })));
    await Promise.all(brokers.map((b) => b.stop()));
  });

  it('broker restart with its state in -data-dir: 0 lost, 0 out of order', async () => {
    const broker = await startKafkaBroker({ dataDir: true });
    brokers.push(broker);
    const topic = uniqueName('restart');
    const group = uniqueName('g');
    const checker = createOrderChecker();
    const producer = await kafkaBus(broker.brokers, 'producer');
    const consumer = await kafkaBus(broker.brokers, 'consumer');
    buses.push(producer.bus, consumer.bus);
    let handled = 0;
    await publishBacklog(producer, checker, topic, 60, 30);
    await consumer.bus.subscribeEnvelope(
      topic,
      async (env: Envelope<EventPayload>) => {
        await sleep(2);
        checker.observe(env.eventId, env.aggregateId, env.payload.index);
        handled++;
      },
      { group },
    );
    await waitFor('part of the backlog', () => handled >= 600, 60_000);
    await broker.restart();
    const handledAtRestart = handled;
    // Published after the restart: the producer and the consumer both have to reconnect.
    await publishBacklog(producer, checker, topic, 60, 60, 30);
    await allConsumed(checker, 180_000);
    const report = checker.report();
    console.log(
      `# broker restart: ${handledAtRestart} handled before it, ${report.unknown} publishes with unknown outcome; ${formatReport(report)}`,
    );
    assertNoLossNoReorder(report, 'broker restart');
    assert.ok(handledAtRestart < 3_600, 'the restart happened mid-stream');
  });

  it('a record larger than the broker accepts: a typed error at send, later events flow', async () => {
    // The broker takes at most 4 KiB per batch; our own limit (maxPayloadBytes) is left at 1 MiB,
    // so the oversized record reaches the broker and is refused there.
    const broker = await startKafkaBroker({ args: ['-c', 'message.max.bytes=4096'] });
    brokers.push(broker);
    const topic = uniqueName('large');
    const group = uniqueName('g');
    const checker = createOrderChecker();
    const producer = await kafkaBus(broker.brokers, 'producer', { compression: 'none' });
    const consumer = await kafkaBus(broker.brokers, 'consumer');
    buses.push(producer.bus, consumer.bus);
    await consumer.bus.subscribeEnvelope(
      topic,
      (env: Envelope<EventPayload>) => {
        checker.observe(env.eventId, env.aggregateId, env.payload.index);
      },
      { group },
    );
    const big = await producer.bus.publishEnvelope(topic, {
      aggregateId: 'big',
      eventType: 'Tested',
      eventVersion: 1,
      payload: { index: 0, pad: 'x'.repeat(64 * 1024) },
    });
    await producer.bus.flush({ timeoutMs: 30_000 });
    const refused = producer.results.get(big.eventId);
    assert.equal(refused?.success, false, 'the oversized record is refused');
    assert.equal(refused?.error?.code, 'EVENTBUS_PUBLISH_REJECTED', String(refused?.error));
    assert.equal(refused?.error?.retryable, false);
    assert.match(refused?.error?.message ?? '', /too large|MESSAGE_TOO_LARGE|RECORD_LIST_TOO_LARGE/i);
    // Nothing stuck: small events of other aggregates are stored and handled.
    await publishBacklog(producer, checker, topic, 10, 10);
    await allConsumed(checker, 60_000);
    const report = checker.report();
    console.log(`# oversized record: refused with ${refused?.error?.code}; then ${formatReport(report)}`);
    assertNoLossNoReorder(report, 'after an oversized record');
    assert.equal(report.acknowledged, 100);
  });

  it('no broker at start: a clear error in bounded time, and the process exits by itself', async () => {
    assert.ok(kfakeBinary(), 'KFAKE_BIN resolves');
    const port = await getFreePort(); // nothing listens there
    const script = `
      import { createEventBus } from ${JSON.stringify(new URL('../../../src/index.ts', import.meta.url).href)};
      try {
        await createEventBus({ clientId: 'unreachable', transport: 'kafka', kafka: { brokers: ['127.0.0.1:${port}'] }, metrics: { enabled: false } });
        console.log('RESULT connected');
      } catch (error) {
        console.log('RESULT ' + JSON.stringify({ name: error.name, code: error.code, message: error.message }));
      }`;
    const started = performance.now();
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      out += c;
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      err += c;
    });
    // Bounded: a process that has not exited on its own within 60 s is a hang (killed, and the test fails).
    const hang = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
      child.once('exit', (c, s) => resolve([c, s])),
    );
    clearTimeout(hang);
    const seconds = (performance.now() - started) / 1000;
    assert.equal(signal, null, `the process exits by itself (it hung until killed); stderr:\n${err}`);
    assert.equal(code, 0, `stderr:\n${err}`);
    const line = out.split('\n').find((l) => l.startsWith('RESULT ')) ?? '';
    assert.notEqual(line, 'RESULT connected');
    const error = JSON.parse(line.slice('RESULT '.length) || '{}') as { code?: string; message?: string };
    assert.equal(error.code, 'EVENTBUS_TRANSPORT', line);
    assert.match(error.message ?? '', new RegExp(`127\\.0\\.0\\.1:${port}`), 'names the broker it tried');
    console.log(
      `# unreachable broker: ${error.code} after ${seconds.toFixed(1)} s, process exited: ${error.message}`,
    );
  });
});
