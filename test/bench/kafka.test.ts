/**
 * The pure parts of the bench's Kafka rows (no broker needed): which systems
 * run and the one skip line, `--systems`, the raw producer's pipelining, the
 * raw records (same bytes as the NATS raw side), ratios and the reports.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseBenchArgs } from '../../bench/cli.ts';
import { KAFKA_SYSTEMS, SYSTEMS } from '../../bench/config.ts';
import { KAFKA_BROKERS_VAR, kafkaPlan, kafkaRecord, skipLine } from '../../bench/kafka.ts';
import { pipelined } from '../../bench/measure.ts';
import { analyse, formatReport, ratios } from '../../bench/report.ts';
import { createWorkload, rawMessage } from '../../bench/workload.ts';
import { report, row } from './fixtures.ts';

describe('bench Kafka systems: plan and skip line', () => {
  const all = [...SYSTEMS];

  it('--systems accepts ours-kafka and raw-kafka; the default requests all six', () => {
    const picked = parseBenchArgs(['--systems', 'ours-kafka,raw-kafka']);
    assert.notEqual(picked, 'help');
    if (picked === 'help') return;
    assert.deepEqual(picked.systems, ['ours-kafka', 'raw-kafka']);
    const defaults = parseBenchArgs([]);
    if (defaults === 'help') return assert.fail('Expected a config');
    assert.deepEqual(defaults.systems, [
      'ours-nats',
      'raw-nats',
      'go-nats',
      'ours-memory',
      'ours-kafka',
      'raw-kafka',
    ]);
    assert.throws(
      () => parseBenchArgs(['--systems', 'kafka']),
      /Expected --systems from .*ours-kafka, raw-kafka/,
    );
  });

  it('without KAFKA_BROKERS skips the requested Kafka systems and says so in one line', () => {
    for (const env of [{}, { [KAFKA_BROKERS_VAR]: '' }, { [KAFKA_BROKERS_VAR]: '  ' }]) {
      const plan = kafkaPlan(all, env);
      assert.equal(plan.brokers, undefined);
      assert.deepEqual(plan.systems, ['ours-nats', 'raw-nats', 'go-nats', 'ours-memory']);
      assert.deepEqual(plan.skipped, ['ours-kafka', 'raw-kafka']);
      assert.equal(plan.reason, 'KAFKA_BROKERS is not set');
      const line = skipLine(plan);
      assert.equal(
        line,
        'bench: KAFKA_BROKERS is not set: skipping ours-kafka, raw-kafka (set KAFKA_BROKERS=host:9092 to run them)',
      );
      assert.doesNotMatch(line ?? '', /\n/);
    }
    const onlyRaw = kafkaPlan(['raw-nats', 'raw-kafka'], {});
    assert.deepEqual(onlyRaw.systems, ['raw-nats']);
    assert.deepEqual(onlyRaw.skipped, ['raw-kafka']);
    assert.match(skipLine(onlyRaw) ?? '', /skipping raw-kafka \(/);
  });

  it('no skip line when no Kafka system was requested (and KAFKA_BROKERS is then not even parsed)', () => {
    const plan = kafkaPlan(['ours-nats', 'ours-memory'], { [KAFKA_BROKERS_VAR]: 'not a broker' });
    assert.deepEqual(plan.systems, ['ours-nats', 'ours-memory']);
    assert.deepEqual(plan.skipped, []);
    assert.equal(skipLine(plan), undefined);
  });

  it('with KAFKA_BROKERS runs everything requested, with the brokers parsed', () => {
    const plan = kafkaPlan(all, { [KAFKA_BROKERS_VAR]: ' kafka-1:9092, 10.0.0.2:19092 ' });
    assert.deepEqual(plan.brokers, ['kafka-1:9092', '10.0.0.2:19092']);
    assert.deepEqual(plan.systems, all);
    assert.deepEqual(plan.skipped, []);
    assert.equal(skipLine(plan), undefined);
  });

  it('a malformed KAFKA_BROKERS is an error naming the variable', () => {
    assert.throws(
      () => kafkaPlan(all, { [KAFKA_BROKERS_VAR]: 'localhost' }),
      /Expected KAFKA_BROKERS to list/,
    );
    assert.throws(() => kafkaPlan(all, { [KAFKA_BROKERS_VAR]: 'a:99999' }), /KAFKA_BROKERS/);
  });
});

describe('bench raw Kafka producer: pipelined batches', () => {
  /** Runs pipelined with sends that settle on a later turn, in the given completion order. */
  async function trace(n: number, batch: number, maxInFlight: number, reverse = false) {
    const calls: [number, number][] = [];
    let active = 0;
    let maxActive = 0;
    const pending: (() => void)[] = [];
    const flush = (): void => {
      const next = reverse ? pending.pop() : pending.shift();
      next?.();
    };
    await pipelined(n, batch, maxInFlight, (from, to) => {
      calls.push([from, to]);
      active++;
      maxActive = Math.max(maxActive, active);
      return new Promise<void>((resolve) => {
        pending.push(() => {
          active--;
          resolve();
        });
        setImmediate(flush);
      });
    });
    return { calls, maxActive, active };
  }

  it('covers [0, n) once, in order, in ranges of the batch size with a short last one', async () => {
    const { calls, active } = await trace(2_500, 1_000, 4);
    assert.deepEqual(calls, [
      [0, 1_000],
      [1_000, 2_000],
      [2_000, 2_500],
    ]);
    assert.equal(active, 0, 'every send settled before pipelined resolved');
  });

  it('keeps at most maxInFlight sends outstanding, and uses all of them', async () => {
    for (const reverse of [false, true]) {
      const { calls, maxActive } = await trace(10_000, 100, 4, reverse);
      assert.equal(calls.length, 100);
      assert.equal(maxActive, 4);
      for (let i = 0; i < calls.length; i++) assert.deepEqual(calls[i], [i * 100, (i + 1) * 100]);
    }
    const single = await trace(1_000, 100, 1);
    assert.equal(single.maxActive, 1);
  });

  it('sends nothing for n = 0 and rejects a zero batch or window', async () => {
    const { calls } = await trace(0, 1_000, 4);
    assert.deepEqual(calls, []);
    await assert.rejects(
      pipelined(10, 0, 1, async () => {}),
      /positive batch/,
    );
    await assert.rejects(
      pipelined(10, 1, 0, async () => {}),
      /positive batch/,
    );
  });
});

describe('bench raw Kafka records', () => {
  it('carry the bytes of the NATS raw side: same envelope JSON, same X-* headers, key = aggregate id', () => {
    const w = createWorkload({ name: 'kr', topics: 4, aggregates: 10, payloadBytes: 256 });
    for (const i of [0, 7, 13, 999]) {
      const record = kafkaRecord(w, i);
      const nats = rawMessage(w, i);
      assert.equal(record.topic, nats.subject);
      assert.equal(record.key?.toString('utf8'), w.aggregateOf(i));
      const body = JSON.parse(record.value?.toString('utf8') ?? '') as Record<string, unknown>;
      const natsBody = JSON.parse(new TextDecoder().decode(nats.data)) as Record<string, unknown>;
      assert.deepEqual(Object.keys(body), Object.keys(natsBody));
      assert.deepEqual({ ...body, timestamp: 't' }, { ...natsBody, timestamp: 't' });
      const headers = new Map(
        [...(record.headers as Map<Buffer, Buffer>)].map(([k, v]) => [
          k.toString('utf8'),
          v.toString('utf8'),
        ]),
      );
      assert.equal(headers.get('X-Timestamp'), body.timestamp);
      for (const name of ['X-Event-ID', 'X-Aggregate-ID', 'X-Event-Type', 'X-Event-Version']) {
        assert.equal(headers.get(name), nats.headers.get(name), name);
      }
      assert.deepEqual([...headers.keys()].sort(), [
        'X-Aggregate-ID',
        'X-Event-ID',
        'X-Event-Type',
        'X-Event-Version',
        'X-Timestamp',
      ]);
    }
  });
});

describe('bench Kafka ratios and reports', () => {
  const nats = [row('publish', 'ours-nats', 30_000), row('publish', 'raw-nats', 10_000)];
  const kafka = [row('publish', 'ours-kafka', 40_000), row('publish', 'raw-kafka', 32_000)];

  it('adds ours-kafka ÷ raw-kafka next to the NATS ratio, and nothing when Kafka did not run', () => {
    const [withKafka] = ratios([...nats, ...kafka]);
    assert.equal(withKafka?.ratio, 3);
    assert.equal(withKafka?.oursKafkaMsgPerSec, 40_000);
    assert.equal(withKafka?.rawKafkaMsgPerSec, 32_000);
    assert.equal(withKafka?.kafkaRatio, 1.25);
    const [natsOnly] = ratios(nats);
    assert.equal(natsOnly?.ratio, 3);
    assert.equal('kafkaRatio' in (natsOnly ?? {}), false, 'NATS-only JSON stays as it was');
    const [oursOnly] = ratios([row('publish', 'ours-kafka', 40_000)]);
    assert.equal(oursOnly?.kafkaRatio, undefined);
  });

  it('counts ours-kafka, not raw-kafka, as runs of our bus for the handles target', () => {
    const leakyRaw = [
      row('publish', 'ours-nats', 30_000),
      row('publish', 'raw-kafka', 1_000, { handleDelta: 3 }),
    ];
    const handles = analyse(leakyRaw, []).targets.find((t) => t.id === 'handles');
    assert.equal(handles?.holds, true);
    assert.match(handles?.measured ?? '', /all 1 runs/);
    const leakyOurs = [
      row('publish', 'ours-nats', 30_000),
      row('publish', 'ours-kafka', 1_000, { handleDelta: 3 }),
    ];
    assert.equal(analyse(leakyOurs, []).targets.find((t) => t.id === 'handles')?.holds, false);
  });

  const meta = { brokers: ['k:9092'], cluster: 'abc (1 broker)', partitions: 6, systems: [...KAFKA_SYSTEMS] };

  it('the terminal report shows a Kafka table with the ratio only when Kafka rows exist', () => {
    const text = formatReport(report([...nats, ...kafka], meta));
    assert.match(text, /Kafka \(msg\/s, cluster abc \(1 broker\)\)/);
    const line = text.split('\n').find((l) => l.startsWith('publish') && l.includes('40,000'));
    assert.ok(line, text);
    assert.match(line, /32,000\s+1\.25×/);
    const natsOnly = formatReport(
      report(nats, { skipped: [...KAFKA_SYSTEMS], reason: 'KAFKA_BROKERS is not set' }),
    );
    assert.doesNotMatch(natsOnly, /Kafka \(msg\/s/);
    assert.match(natsOnly, /stalls ours \/ raw/);
  });
});
