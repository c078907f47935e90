/** Wire mapping (no broker): headers, record key, partition hash, error mapping, compression probe. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { murmur2 as clientMurmur2, compatibilityPartitioner } from '@platformatic/kafka';
import { envelopeHeaders, extractAggregateId, Headers } from '../../../src/core/envelope.ts';
import { silentLogger } from '../../../src/core/logger.ts';
import { resolveCompression } from '../../../src/transports/kafka/compression.ts';
import { toPublishError } from '../../../src/transports/kafka/errors.ts';
import {
  fromRecordHeaders,
  fromRecordKey,
  fromRecordValue,
  keyHash,
  murmur2,
  recordSize,
  toRecordHeaders,
  toRecordKey,
  toRecordValue,
} from '../../../src/transports/kafka/records.ts';

describe('record headers', () => {
  const envelope = {
    eventId: '0190a6f4-7c2e-7b1a-9f00-000000000001',
    aggregateId: 'order-42',
    eventType: 'OrderPlaced',
    eventVersion: 3,
    timestamp: '2025-01-01T00:00:00.000Z',
    traceId: 'trace-1',
    correlationId: 'corr-1',
    payload: {},
  };

  it('carries the wire-format headers (README.md) as UTF-8 record headers and round-trips them', () => {
    const headers = { ...envelopeHeaders(envelope), 'x-custom': 'Zürich ✓' };
    const record = toRecordHeaders(headers);
    for (const [name, value] of record) {
      assert.ok(Buffer.isBuffer(name) && Buffer.isBuffer(value));
    }
    assert.deepEqual(fromRecordHeaders(record), headers);
    const back = fromRecordHeaders(record);
    assert.equal(back[Headers.eventId], envelope.eventId);
    assert.equal(back[Headers.aggregateId], 'order-42');
    assert.equal(back[Headers.eventVersion], '3');
    assert.equal(back[Headers.traceId], 'trace-1');
    assert.equal(back[Headers.correlationId], 'corr-1');
  });

  it("adds nothing transport-specific and knows no other transport's header names", () => {
    const record = toRecordHeaders({ [Headers.eventId]: 'e1', 'Nats-Msg-Id': 'user-set' });
    const names = [...record.keys()].map((k) => k.toString());
    assert.deepEqual(names, [Headers.eventId, 'Nats-Msg-Id']);
  });

  it('reads the client entry list (repeated names: last wins, null value → "")', () => {
    const entries: Array<[Buffer | null, Buffer | null]> = [
      [Buffer.from('a'), Buffer.from('1')],
      [Buffer.from('a'), Buffer.from('2')],
      [Buffer.from('b'), null],
      [null, Buffer.from('ignored')],
    ];
    assert.deepEqual(fromRecordHeaders(entries), { a: '2', b: '' });
    assert.deepEqual(fromRecordHeaders(undefined), {});
  });
});

describe('record key and value', () => {
  it('key = aggregate id as UTF-8; absent or empty → no key', () => {
    assert.deepEqual(toRecordKey('order-42'), Buffer.from('order-42'));
    assert.equal(toRecordKey(undefined), undefined);
    assert.equal(toRecordKey(''), undefined);
    assert.equal(fromRecordKey(Buffer.from('agg-ü')), 'agg-ü');
    assert.equal(fromRecordKey(null), undefined);
    assert.equal(fromRecordKey(Buffer.alloc(0)), undefined);
  });

  it('the record key is the last aggregate-id fallback (envelope → header → key)', () => {
    const key = fromRecordKey(toRecordKey('agg-from-key'));
    assert.equal(extractAggregateId(undefined, {}, key), 'agg-from-key');
    assert.equal(extractAggregateId(undefined, { [Headers.aggregateId]: 'h' }, key), 'h');
  });

  it('values are zero-copy views; null values become empty bodies', () => {
    const backing = new Uint8Array([0, 1, 2, 3, 4, 5]);
    const view = backing.subarray(2, 5);
    const value = toRecordValue(view);
    assert.deepEqual([...value], [2, 3, 4]);
    backing[3] = 9;
    assert.equal(value[1], 9, 'same memory');
    assert.equal(fromRecordValue(null).byteLength, 0);
  });

  it('recordSize counts body, key and headers', () => {
    const size = recordSize(Buffer.alloc(100), Buffer.from('k1'), toRecordHeaders({ ab: 'cd' }));
    assert.equal(size, 100 + 2 + 2 + 2 + 4);
  });
});

describe('partition hash', () => {
  it('murmur2 equals the client (Java) murmur2 for random keys', () => {
    for (let i = 0; i < 5_000; i++) {
      const key = randomBytes(i % 64);
      assert.equal(murmur2(key), clientMurmur2(key) | 0);
    }
  });

  it('keyHash matches the Java-compatible partitioner (toPositive(murmur2))', () => {
    for (let i = 0; i < 1_000; i++) {
      const key = Buffer.from(`aggregate-${i}`);
      assert.equal(keyHash(key), compatibilityPartitioner({ topic: 't' }, key));
      assert.ok(keyHash(key) >= 0);
    }
  });
});

describe('publish error mapping', () => {
  const broker = (apiId: string): Error =>
    Object.assign(
      new AggregateError([Object.assign(new Error(apiId), { apiId, code: 'PLT_KFK_PROTOCOL' })], 'x'),
      {
        code: 'PLT_KFK_MULTIPLE',
      },
    );

  it('refusals are PublishRejectedError (not retryable)', () => {
    for (const id of ['MESSAGE_TOO_LARGE', 'TOPIC_AUTHORIZATION_FAILED', 'INVALID_RECORD']) {
      const e = toPublishError(broker(id), 'orders');
      assert.equal(e.code, 'EVENTBUS_PUBLISH_REJECTED', id);
      assert.equal(e.retryable, false);
      assert.match(e.message, new RegExp(`topic "orders".*${id}`));
    }
  });

  it('timeouts and lost connections are TimeoutError (unknown outcome, retryable)', () => {
    const timedOut = toPublishError(broker('REQUEST_TIMED_OUT'), 't');
    assert.equal(timedOut.code, 'EVENTBUS_TIMEOUT');
    assert.equal(timedOut.retryable, true);
    const network = toPublishError(
      Object.assign(new Error('Connection closed'), { code: 'PLT_KFK_NETWORK' }),
      't',
    );
    assert.equal(network.code, 'EVENTBUS_TIMEOUT');
  });

  it('other broker errors are TransportError (retryable)', () => {
    const e = toPublishError(broker('NOT_LEADER_OR_FOLLOWER'), 't');
    assert.equal(e.code, 'EVENTBUS_TRANSPORT');
    assert.equal(e.retryable, true);
    assert.ok(e.cause !== undefined);
  });
});

describe('compression probe', () => {
  it('LZ4 works in this installation (WebAssembly codec, no native addon)', () => {
    assert.equal(resolveCompression('lz4', silentLogger), 'lz4');
  });

  it('falls back to none, with a warning, when the codec is unavailable or broken', () => {
    const warnings: string[] = [];
    const logger = {
      ...silentLogger,
      warn: (_: object | string, msg?: string) => void warnings.push(msg ?? ''),
    };
    const broken = {
      lz4: {
        compressSync: () => {
          throw new Error('wasm failed to load');
        },
        decompressSync: (b: Buffer) => b,
      },
    };
    assert.equal(resolveCompression('lz4', logger, broken), 'none');
    assert.equal(resolveCompression('zstd', logger, { zstd: { ...broken.lz4, available: false } }), 'none');
    assert.equal(warnings.length, 2);
    assert.match(
      warnings[0] ?? '',
      /lz4 compression is unavailable \(wasm failed to load\); publishing uncompressed/,
    );
  });
});
