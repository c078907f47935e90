/**
 * The transport contract suite on Kafka: KAFKA_BROKERS when set, else the
 * kfake test broker (KFAKE_BIN). Without either it skips with one line.
 */
import { runTransportContract } from '../../../src/testing/index.ts';
import { kafka } from '../../../src/transports/kafka/index.ts';
import { announceKafkaSkip, kafkaSkipReason, useKafkaForTests } from '../../harness/kafka-broker.ts';

announceKafkaSkip('the Kafka transport contract');

if (kafkaSkipReason === undefined) {
  const cluster = useKafkaForTests();
  runTransportContract(
    {
      kind: 'kafka',
      create: (ctx) => kafka({ brokers: cluster.brokers(), heartbeatIntervalMs: 500 }).create(ctx),
    },
    { name: 'kafka', timeoutMs: 180_000 },
  );
}
