/**
 * The shared conformance suite on Kafka: against KAFKA_BROKERS (a real
 * cluster) when set, else against the kfake test broker (KFAKE_BIN, set by
 * scripts/test.sh), started once for this file. Without either it skips with
 * one line.
 */
import { createEventBus } from '../../../src/index.ts';
import { runConformanceSuite } from '../../../src/testing/index.ts';
import { announceKafkaSkip, kafkaSkipReason, useKafkaForTests } from '../../harness/kafka-broker.ts';

announceKafkaSkip('the Kafka conformance suite');

if (kafkaSkipReason === undefined) {
  const cluster = useKafkaForTests();
  runConformanceSuite({
    name: 'kafka',
    createBus: (overrides) =>
      createEventBus({
        ...overrides,
        transport: 'kafka',
        // Members learn of a rebalance on their next heartbeat: at the default 3 s
        // each subscribe that joins a group took ~3 s (as in fault-kit.ts, broker-kit.ts).
        kafka: { brokers: cluster.brokers(), heartbeatIntervalMs: 500 },
        metrics: { enabled: false },
      }),
    // 50,000 messages through the blocked pool alone took ~20 s; 20,000 is still
    // far above the pool's capacity (256) and the producer's window.
    scale: 0.2,
    timeoutMs: 300_000,
  });
}
