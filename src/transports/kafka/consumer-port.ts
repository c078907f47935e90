/**
 * What a Kafka subscription needs from the client, as interfaces: the record
 * stream, the consumer group member and the hooks the consumer adapter
 * (client.ts) wires to it. Tests drive subscription.ts through these with a
 * scripted consumer; client.ts adapts @platformatic/kafka to them.
 */
import type { MessageKind } from '../../core/transport.ts';
import type { PartitionCommit } from './commit-tracker.ts';

/** A record as the client's stream emits it (structurally the client's `Message`). */
export interface StreamRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
  readonly leaderEpoch: number;
  readonly key?: Buffer | null;
  readonly value?: Buffer | null;
  readonly headerEntries: ReadonlyArray<readonly [Buffer | null, Buffer | null]>;
  readonly metadata?: Readonly<Record<string, unknown>>;
}

export interface RecordStream {
  onRecord(listener: (record: StreamRecord) => void): void;
  onError(listener: (error: Error) => void): void;
  onClose(listener: () => void): void;
  pause(): void;
  resume(): void;
  /**
   * Sets where the stream reads `partition` from after the next join when the
   * group has no committed offset for it (a committed offset still wins);
   * undefined: from the reset policy.
   */
  rewind(topic: string, partition: number, offset: bigint | undefined): void;
  close(): Promise<void>;
}

export interface TopicAssignment {
  readonly topic: string;
  readonly partitions: readonly number[];
}

/** What the subscription needs from a consumer group member (client.ts adapts the real one). */
export interface ConsumerClient {
  readonly generationId: number;
  readonly assignments: readonly TopicAssignment[] | null;
  /** Joins the group (running `beforeJoin`) and starts a stream reading from the committed offsets. */
  consume(): Promise<RecordStream>;
  commit(commits: readonly PartitionCommit[]): Promise<void>;
  /** Resolves when no fetch request is in flight, or when `signal` aborts. */
  fetchesSettled(signal: AbortSignal): Promise<void>;
  /** Joins again after a failed rejoin left the member without a group. */
  rejoin(): Promise<void>;
  isActive(): boolean;
  isConnected(): boolean;
  /** Leaves the group and disconnects. */
  close(): Promise<void>;
}

/** The callbacks the consumer adapter wires to the client. */
export interface ConsumerHooks {
  /** Before every JoinGroup; the join waits for it. Never rejects. */
  beforeJoin(): Promise<void>;
  /** After every completed join. */
  onJoin(generationId: number, assignments: readonly TopicAssignment[]): void;
  /** A group error the client reports asynchronously (e.g. a failed rejoin). */
  onError(error: unknown): void;
}

export type ConsumerFactory = (hooks: ConsumerHooks) => ConsumerClient;

export interface SubscriptionSettings {
  readonly topic: string;
  readonly group: string;
  readonly kind: MessageKind;
  readonly commitIntervalMs: number;
  readonly revokeTimeoutMs: number;
  readonly closeTimeoutMs: number;
}
