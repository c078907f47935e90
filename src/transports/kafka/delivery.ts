/** A delivered Kafka record, settled once through its subscription. */
import { type Settlement, SettleOnce } from '../../core/settle-once.ts';
import type { InboundMessage } from '../../core/transport.ts';
import type { Settlement as PartitionSettlement } from './commit-tracker.ts';
import type { StreamRecord } from './consumer-port.ts';
import type { PartitionLane } from './partition-lane.ts';
import { fromRecordHeaders, fromRecordKey, fromRecordValue } from './records.ts';

/** Takes a delivery's first settlement (the subscription). */
export interface DeliverySettler {
  settle(owner: PartitionLane, offset: bigint, how: PartitionSettlement): void;
}

/**
 * A delivered record. Headers and key are decoded on first use: the bus reads
 * an envelope's aggregate and metadata from its body, and decoding every
 * header to strings was a tenth of the consume path's CPU.
 */
export class KafkaDelivery extends SettleOnce implements InboundMessage {
  readonly topic: string;
  readonly lane: PartitionLane;
  readonly data: Uint8Array;
  readonly deliveryCount: number;
  /** The offset as a number: exact below 2^53 (Kafka offsets never get near it in practice). */
  readonly sequence: number;
  readonly #offset: bigint;
  readonly #settler: DeliverySettler;
  #record: StreamRecord | undefined;
  #headers: Readonly<Record<string, string>> | undefined;
  #key: string | undefined;

  constructor(record: StreamRecord, deliveryCount: number, lane: PartitionLane, settler: DeliverySettler) {
    super();
    this.topic = record.topic;
    this.data = fromRecordValue(record.value);
    this.#record = record;
    this.deliveryCount = deliveryCount;
    this.sequence = Number(record.offset);
    this.lane = lane;
    this.#offset = record.offset;
    this.#settler = settler;
  }

  get headers(): Readonly<Record<string, string>> {
    this.#decode();
    return this.#headers as Readonly<Record<string, string>>;
  }

  get key(): string | undefined {
    this.#decode();
    return this.#key;
  }

  #decode(): void {
    const record = this.#record;
    if (record === undefined) return;
    this.#record = undefined; // decoded once; the record's buffers can go
    this.#headers = fromRecordHeaders(record.headerEntries);
    this.#key = fromRecordKey(record.key);
  }

  /**
   * nak ignores its delay: a Kafka partition is read in order, so a nak-ed
   * record holds its partition's commit point instead (subscription.ts).
   * Kafka has no per-message ack deadline (the group session is kept alive
   * by heartbeats), so `working()` has nothing to extend.
   */
  protected onSettle(settlement: Settlement): void {
    this.#settler.settle(this.lane, this.#offset, settlement.how);
  }
}
