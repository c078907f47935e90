/**
 * SubscribeOptions.startFrom on Kafka (see test/bus/start-from-kit.ts):
 * against KAFKA_BROKERS when set, else the kfake test broker (KFAKE_BIN).
 */
import { createEventBus } from '../../../src/index.ts';
import { runStartFromSuite } from '../../bus/start-from-kit.ts';
import { announceKafkaSkip, kafkaSkipReason, useKafkaForTests } from '../../harness/kafka-broker.ts';

announceKafkaSkip('the Kafka startFrom tests');

if (kafkaSkipReason === undefined) {
  const cluster = useKafkaForTests();
  runStartFromSuite({
    name: 'kafka',
    createBus: (clientId) =>
      createEventBus({
        transport: 'kafka',
        clientId,
        kafka: { brokers: cluster.brokers(), partitions: 4, heartbeatIntervalMs: 500 },
        metrics: { enabled: false },
      }),
    timeoutMs: 120_000,
  });
}
