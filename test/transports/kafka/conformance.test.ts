/**
 * The shared conformance suite against a real Kafka broker. Runs only when
 * KAFKA_BROKERS is set (broker.test.ts prints the one "skipping" line):
 *   KAFKA_BROKERS=localhost:9092 ./node_modules/.bin/node --test --test-concurrency=1 'test/transports/kafka/*.test.ts'
 */
import { it } from 'node:test';
import { createEventBus } from '../../../src/index.ts';
import { runConformanceSuite } from '../../../src/testing/index.ts';

const brokers = process.env.KAFKA_BROKERS;

if (brokers) {
  runConformanceSuite({
    name: 'kafka',
    features: {
      persistent: true,
      consumerGroups: true,
      newSubscriberReceivesOldMessages: true,
      brokerDeduplication: false,
    },
    createBus: (overrides) =>
      createEventBus({
        ...overrides,
        transport: 'kafka',
        kafka: { brokers: brokers.split(',') },
        metrics: { enabled: false },
      }),
    scale: 0.5,
    timeoutMs: 300_000,
  });
} else {
  it('kafka conformance suite', { skip: 'KAFKA_BROKERS is not set' }, () => {});
}
