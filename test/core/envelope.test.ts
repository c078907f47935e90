import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  createEnvelope,
  decodeEnvelope,
  encodeEnvelope,
  envelopeHeaders,
  extractAggregateId,
  Headers,
  rawPayload,
} from '../../src/core/envelope.ts';
import { DecodeError, isEventBusError, ValidationError } from '../../src/core/errors.ts';

describe('envelope', () => {
  it('fills eventId (UUIDv7) and timestamp when absent', () => {
    const e = createEnvelope({ aggregateId: 'a', eventType: 'T', eventVersion: 0, payload: { x: 1 } });
    assert.match(e.eventId, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.ok(!Number.isNaN(Date.parse(e.timestamp)));
    const later = createEnvelope({ aggregateId: 'a', eventType: 'T', eventVersion: 0, payload: 1 });
    assert.ok(later.eventId > e.eventId, 'UUIDv7 ids sort by creation time');
  });

  it('rejects invalid input with a ValidationError naming the field', () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ eventType: 'T', eventVersion: 0, payload: 1 }, 'aggregateId'],
      [{ aggregateId: '', eventType: 'T', eventVersion: 0, payload: 1 }, 'aggregateId'],
      [{ aggregateId: 'a', eventVersion: 0, payload: 1 }, 'eventType'],
      [{ aggregateId: 'a', eventType: 'T', eventVersion: -1, payload: 1 }, 'eventVersion'],
      [{ aggregateId: 'a', eventType: 'T', eventVersion: 1.5, payload: 1 }, 'eventVersion'],
      [{ aggregateId: 'a', eventType: 'T', eventVersion: 0 }, 'payload'],
      [
        { aggregateId: 'a', eventType: 'T', eventVersion: 0, payload: 1, timestamp: 'yesterday' },
        'timestamp',
      ],
      [{ aggregateId: 'a', eventType: 'T', eventVersion: 0, payload: 1, eventId: 42 }, 'eventId'],
    ];
    for (const [input, field] of cases) {
      assert.throws(
        () => createEnvelope(input as never),
        (e: unknown) => e instanceof ValidationError && e.field === field && e.code === 'EVENTBUS_VALIDATION',
        `expected ${field} to be rejected`,
      );
    }
  });

  it('round-trips JSON payloads through encode/decode; byte payloads travel as their JSON', () => {
    const json = createEnvelope({
      aggregateId: 'a',
      eventType: 'T',
      eventVersion: 3,
      payload: { nested: [1, 'two', null] },
      traceId: 't',
      correlationId: 'c',
    });
    assert.deepEqual(decodeEnvelope(encodeEnvelope(json)), json);
    const bytes = createEnvelope({
      aggregateId: 'a',
      eventType: 'T',
      eventVersion: 0,
      payload: Buffer.from('{"x": [1, 2]}'),
    });
    const decoded = decodeEnvelope(encodeEnvelope(bytes));
    assert.deepEqual(decoded.payload, { x: [1, 2] });
    assert.equal(Buffer.from(rawPayload(decoded)).toString(), '{"x": [1, 2]}', 'inlined verbatim');
  });

  it('refuses byte payloads that are not UTF-8 JSON with a ValidationError (never base64 in the body)', () => {
    for (const payload of [new Uint8Array([0, 255, 7]), Buffer.from('not json'), new Uint8Array()]) {
      const e = createEnvelope({ aggregateId: 'a', eventType: 'T', eventVersion: 1, payload });
      assert.throws(
        () => encodeEnvelope(e),
        (error: unknown) => error instanceof ValidationError && error.field === 'payload',
      );
    }
    const fn = createEnvelope({ aggregateId: 'a', eventType: 'T', eventVersion: 1, payload: () => 1 });
    assert.throws(
      () => encodeEnvelope(fn),
      (error: unknown) => error instanceof ValidationError && error.field === 'payload',
    );
  });

  it('decode rejects garbage with a DecodeError that says what was wrong', () => {
    const bad: Array<[Uint8Array, RegExp]> = [
      [new Uint8Array(), /empty body/],
      [Buffer.from('not json'), /do not parse/],
      [Buffer.from([0xff, 0xfe]), /not valid UTF-8 \(first bad byte at offset 0\)/],
      [Buffer.from(`{"a":${'['.repeat(600)}`), /nested at most 512 levels deep/],
      [Buffer.from('[]'), /envelope object/],
      [Buffer.from('{"aggregateId":"a"}'), /eventId/],
      [
        Buffer.from(
          '{"eventId":"e","aggregateId":"a","eventType":"T","eventVersion":"1","timestamp":"2026-01-01T00:00:00Z","payload":1}',
        ),
        /eventVersion/,
      ],
      [
        Buffer.from(
          '{"eventId":"e","aggregateId":"a","eventType":"T","eventVersion":1,"timestamp":"yesterday","payload":1}',
        ),
        /timestamp/,
      ],
      [
        Buffer.from(
          '{"eventId":"e","aggregateId":"a","eventType":"T","eventVersion":1,"timestamp":"2026-01-01T00:00:00Z"}',
        ),
        /payload/,
      ],
    ];
    const go = (fields: string) =>
      Buffer.from(`{"event_id":"e","aggregate_id":"a","event_type":"T",${fields}}`);
    bad.push(
      [Buffer.from('{"aggregate_id":"a"}'), /event_id/],
      [go('"event_version":"1","timestamp":"2026-01-01T00:00:00Z","payload":1'), /event_version/],
      [go('"event_version":-1,"timestamp":"2026-01-01T00:00:00Z","payload":1'), /event_version/],
      [go('"event_version":1,"timestamp":"2026-01-01","payload":1'), /timestamp/],
      [go('"event_version":1,"timestamp":"2026-01-01T00:00:00Z"'), /payload/],
      [go('"event_version":1,"timestamp":"2026-01-01T00:00:00Z","payload":1,"trace_id":7'), /trace_id/],
    );
    for (const [data, reason] of bad) {
      assert.throws(
        () => decodeEnvelope(data),
        (e: unknown) =>
          e instanceof DecodeError && isEventBusError(e) && !e.retryable && reason.test(e.message),
      );
    }
  });

  it('maps metadata to the wire-format headers (README.md) and extracts the aggregate id in order', () => {
    const e = createEnvelope({
      aggregateId: 'agg',
      eventType: 'T',
      eventVersion: 2,
      payload: 1,
      traceId: 'tr',
    });
    const h = envelopeHeaders(e);
    assert.equal(h[Headers.eventId], e.eventId);
    assert.equal(h['X-Aggregate-ID'], 'agg');
    assert.equal(h['X-Event-Type'], 'T');
    assert.equal(h['X-Event-Version'], '2');
    assert.equal(h['X-Timestamp'], e.timestamp);
    assert.equal(h['X-Trace-ID'], 'tr');
    assert.equal(h['X-Correlation-ID'], undefined);
    assert.equal(extractAggregateId(e, { 'X-Aggregate-ID': 'other' }, 'key'), 'agg');
    assert.equal(extractAggregateId(undefined, { 'X-Aggregate-ID': 'hdr' }, 'key'), 'hdr');
    assert.equal(extractAggregateId(undefined, {}, 'key'), 'key');
    assert.equal(extractAggregateId(undefined, {}, undefined), undefined);
  });
});
