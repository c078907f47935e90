#!/usr/bin/env node
/**
 * Runs the bench with its Kafka rows against the kfake test broker
 * (KFAKE_BIN, started by test/harness/kafka-broker.ts on free loopback ports,
 * stopped afterwards): `KFAKE_BIN=../shared/tools/kafka/kfake-server node
 * bench/with-kfake.ts [bench options]`. kfake is an in-memory fake: its rows
 * are only meaningful as ours ÷ raw ratios from the same run.
 */
import { startKafkaBroker } from '../test/harness/kafka-broker.ts';
import { benchScript } from './cli.ts';
import { KAFKA_BROKERS_VAR } from './kafka.ts';

const broker = await startKafkaBroker({ brokers: 3 });
process.env[KAFKA_BROKERS_VAR] = broker.brokers.join(',');
process.stderr.write(`bench: kfake-server (pid ${broker.pid}) at ${broker.brokers.join(',')}\n`);
try {
  await benchScript(process.argv.slice(2));
} finally {
  await broker.stop();
}
