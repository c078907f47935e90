import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  createEnvelope,
  decodeEnvelope,
  type Envelope,
  encodeEnvelope,
  rawPayload,
} from '../../src/core/envelope.ts';
import { DecodeError, ValidationError } from '../../src/core/errors.ts';

const text = (bytes: Uint8Array) => Buffer.from(bytes).toString('utf8');
const isDecodeError = (pattern: RegExp) => (e: unknown) =>
  e instanceof DecodeError && pattern.test(e.message);

/** A body as Go's encoding/json writes the Go SDK's Envelope (RFC3339Nano, a zone offset, newer jxt-core's tenant_id). */
const GO_BODY =
  '{"event_id":"0190c0de-0000-7000-8000-000000000001","aggregate_id":"order:42/line-7","event_type":"OrderPlaced",' +
  '"event_version":3,"timestamp":"2026-12-01T12:48:57.123456789+08:00","correlation_id":"corr-1",' +
  '"tenant_id":"t1","payload":{"total":12.5,"items":[{"sku":"a-1","qty":2}],"note":"ünï \\"}{"}}';

describe('wire format: the Go SDK envelope', () => {
  it('encodes snake_case keys in the Go struct order, omitting unset optional fields, payload inline', () => {
    const base = {
      eventId: 'e-1',
      aggregateId: 'a-1',
      eventType: 'T',
      eventVersion: 7,
      timestamp: '2026-01-02T03:04:05.000000001Z',
      payload: { b: [1, true, null], a: 'x' },
    };
    assert.equal(
      text(encodeEnvelope(createEnvelope(base))),
      '{"event_id":"e-1","aggregate_id":"a-1","event_type":"T","event_version":7,' +
        '"timestamp":"2026-01-02T03:04:05.000000001Z","payload":{"b":[1,true,null],"a":"x"}}',
    );
    assert.equal(
      text(encodeEnvelope(createEnvelope({ ...base, traceId: 'tr', correlationId: 'co', payload: null }))),
      '{"event_id":"e-1","aggregate_id":"a-1","event_type":"T","event_version":7,' +
        '"timestamp":"2026-01-02T03:04:05.000000001Z","trace_id":"tr","correlation_id":"co","payload":null}',
    );
    // Bytes holding JSON are spliced in as written, after the other members.
    assert.equal(
      text(encodeEnvelope(createEnvelope({ ...base, traceId: 'tr', payload: Buffer.from(' [1, 2] ') }))),
      '{"event_id":"e-1","aggregate_id":"a-1","event_type":"T","event_version":7,' +
        '"timestamp":"2026-01-02T03:04:05.000000001Z","trace_id":"tr","payload": [1, 2] }',
    );
  });

  it('decodes a Go-written body into the camelCase Envelope, keeping the timestamp string as written', () => {
    const e = decodeEnvelope(Buffer.from(GO_BODY));
    assert.deepEqual(e, {
      eventId: '0190c0de-0000-7000-8000-000000000001',
      aggregateId: 'order:42/line-7',
      eventType: 'OrderPlaced',
      eventVersion: 3,
      timestamp: '2026-12-01T12:48:57.123456789+08:00',
      correlationId: 'corr-1',
      payload: { total: 12.5, items: [{ sku: 'a-1', qty: 2 }], note: 'ünï "}{' },
    });
    // Forwarding it re-encodes the same nanoseconds and offset.
    const again = decodeEnvelope(encodeEnvelope(createEnvelope(e)));
    assert.equal(again.timestamp, '2026-12-01T12:48:57.123456789+08:00');
  });

  it('treats empty optional strings as unset, as Go does (omitempty)', () => {
    const body = GO_BODY.replace('"correlation_id":"corr-1"', '"correlation_id":"","trace_id":null');
    const e = decodeEnvelope(Buffer.from(body));
    assert.equal('correlationId' in e, false);
    assert.equal('traceId' in e, false);
  });

  it('still decodes the camelCase body earlier versions wrote (inline payload and payloadBase64)', () => {
    const legacy = {
      eventId: 'e-old',
      aggregateId: 'a',
      eventType: 'T',
      eventVersion: 0,
      timestamp: '2025-05-06T07:08:09.010Z',
      traceId: 't',
      payload: { x: 1 },
    };
    assert.deepEqual(decodeEnvelope(Buffer.from(JSON.stringify(legacy))), legacy);
    const { payload: _, ...rest } = legacy;
    const bytes = decodeEnvelope(Buffer.from(JSON.stringify({ ...rest, payloadBase64: 'AP8H' })));
    assert.deepEqual(bytes.payload, new Uint8Array([0, 255, 7]));
    assert.deepEqual(rawPayload(bytes), new Uint8Array([0, 255, 7]));
    // Old producers forwarded any Date.parse-able string; their decoder wanted date + hh:mm, and so do we for old bodies.
    const zoneless = decodeEnvelope(
      Buffer.from(JSON.stringify({ ...legacy, timestamp: '2025-05-06T07:08' })),
    );
    assert.equal(zoneless.timestamp, '2025-05-06T07:08');
    assert.throws(
      () => decodeEnvelope(Buffer.from(JSON.stringify({ ...legacy, timestamp: '2025-05-06' }))),
      isDecodeError(/timestamp/),
    );
  });
});

describe('timestamps: RFC 3339 as Go parses it, the same rule at create and decode', () => {
  const accepted = [
    '2026-01-02T03:04:05Z',
    '2026-01-02T03:04:05.1Z',
    '2026-01-02T03:04:05.123456789Z',
    '2026-01-02T03:04:05.5-00:00',
    '2024-02-29T23:59:59+23:59',
    '0001-01-01T00:00:00Z',
    '9999-12-31T23:59:59.999999999-12:30',
  ];
  const rejected = [
    '2026-01-02',
    '2026-01-02T03:04:05',
    '2026-01-02T03:04Z',
    '2026-01-02 03:04:05Z',
    '2026-01-02t03:04:05z',
    '2026-01-02T03:04:05.1234567891Z',
    '2026-01-02T03:04:05.Z',
    '2026-01-02T03:04:05,5Z',
    '2026-01-02T03:04:05+0100',
    '2026-01-02T03:04:05+24:00',
    '2026-01-02T03:04:05+01:60',
    '2026-01-02T24:00:00Z',
    '2026-01-02T03:60:00Z',
    '2016-12-31T23:59:60Z',
    '2026-02-29T00:00:00Z',
    '1900-02-29T00:00:00Z',
    '2026-13-01T00:00:00Z',
    '2026-00-10T00:00:00Z',
    '2026-04-31T00:00:00Z',
    '+02026-01-02T03:04:05Z',
    'Tue, 01 Dec 2026 04:48:57 GMT',
    ' 2026-01-02T03:04:05Z',
  ];
  const input = (timestamp: string | Date) => ({
    aggregateId: 'a',
    eventType: 'T',
    eventVersion: 1,
    payload: 1,
    timestamp,
  });

  it('create accepts RFC 3339 with offset and up to nanoseconds, and decode returns it unchanged', () => {
    for (const timestamp of accepted) {
      const e = createEnvelope(input(timestamp));
      assert.equal(e.timestamp, timestamp);
      assert.equal(decodeEnvelope(encodeEnvelope(e)).timestamp, timestamp, timestamp);
    }
  });

  it('create rejects anything else with a ValidationError on timestamp, and so does decode', () => {
    for (const timestamp of rejected) {
      assert.throws(
        () => createEnvelope(input(timestamp)),
        (e: unknown) => e instanceof ValidationError && e.field === 'timestamp',
        timestamp,
      );
      const body = `{"event_id":"e","aggregate_id":"a","event_type":"T","event_version":1,"timestamp":${JSON.stringify(timestamp)},"payload":1}`;
      assert.throws(() => decodeEnvelope(Buffer.from(body)), isDecodeError(/timestamp/), timestamp);
    }
  });

  it('never decodes less than create accepts: mutated timestamps either fail create or round-trip', () => {
    let seed = 42;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const alphabet = '0123456789TZ:+-. tz';
    let acceptedCount = 0;
    for (let i = 0; i < 20_000; i++) {
      const chars = [...(accepted[i % accepted.length] as string)];
      const at = Math.floor(random() * chars.length);
      chars[at] = alphabet[Math.floor(random() * alphabet.length)] as string;
      const timestamp = chars.join('');
      let created: Envelope | undefined;
      try {
        created = createEnvelope(input(timestamp));
      } catch (error) {
        assert.ok(error instanceof ValidationError && error.field === 'timestamp', timestamp);
      }
      if (created === undefined) continue;
      acceptedCount++;
      assert.equal(decodeEnvelope(encodeEnvelope(created)).timestamp, timestamp, timestamp);
    }
    assert.ok(acceptedCount > 1000, `the mutations must exercise the accepting side too (${acceptedCount})`);
  });

  it('writes a Date as RFC 3339 UTC with milliseconds, and refuses dates RFC 3339 cannot express', () => {
    assert.equal(
      createEnvelope(input(new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 6)))).timestamp,
      '2026-01-02T03:04:05.006Z',
    );
    for (const date of [
      new Date(Number.NaN),
      new Date(Date.UTC(10_000, 0, 1)),
      new Date(Date.UTC(-1, 0, 1)),
    ]) {
      assert.throws(
        () => createEnvelope(input(date)),
        (e: unknown) => e instanceof ValidationError && e.field === 'timestamp',
      );
    }
  });
});

describe('integers beyond 2^53: never silently rounded', () => {
  const body = (version: string, payload: string) =>
    Buffer.from(
      `{"event_id":"e","aggregate_id":"a","event_type":"T","event_version":${version},"timestamp":"2026-01-02T03:04:05Z","payload":${payload}}`,
    );

  it('an event_version a JS number cannot carry is a DecodeError naming event_version', () => {
    for (const version of ['9007199254740992', '9007199254740993', '9223372036854775807']) {
      assert.throws(() => decodeEnvelope(body(version, '1')), isDecodeError(/event_version.*2\^53/));
    }
    assert.equal(decodeEnvelope(body('9007199254740991', '1')).eventVersion, 2 ** 53 - 1);
    const legacy =
      '{"eventId":"e","aggregateId":"a","eventType":"T","eventVersion":18446744073709551615,"timestamp":"2026-01-02T03:04:05Z","payload":1}';
    assert.throws(() => decodeEnvelope(Buffer.from(legacy)), isDecodeError(/eventVersion/));
  });

  it('payload integers beyond ±(2^53 - 1) decode as exact bigints; floats stay numbers; forwarding keeps every digit', () => {
    const payload =
      '{"id":9223372036854775807,"neg":-9007199254740993,"safe":9007199254740991,"float":12345678901234567.5,"list":[18446744073709551615],"s":"12345678901234567890"}';
    const e = decodeEnvelope(body('1', payload));
    assert.deepEqual(e.payload, {
      id: 9223372036854775807n,
      neg: -9007199254740993n,
      safe: 9007199254740991,
      float: Number('12345678901234567.5'), // a float: the nearest double, as any JSON reader gives
      list: [18446744073709551615n],
      s: '12345678901234567890',
    });
    assert.equal(text(rawPayload(e)), payload);
    const forwarded = text(encodeEnvelope(createEnvelope(e)));
    assert.ok(forwarded.includes('"id":9223372036854775807,"neg":-9007199254740993'), forwarded);
    assert.ok(forwarded.includes('"list":[18446744073709551615]'), forwarded);
  });

  it('rawPayload returns the exact wire bytes, whatever the spacing, escapes or number precision', () => {
    const payload =
      '{ "price" : 0.1000000000000000055511151231257827, "k\\"}" : [ "]", {"}":1} ] , "é":"\\u00e9" }';
    const e = decodeEnvelope(body('1', payload));
    assert.equal(text(rawPayload(e)), payload);
    // The last `payload` member wins, as in JSON.parse; a nested "payload" key is not the top-level one.
    const tricky = Buffer.from(
      '\ufeff {"payload":{"payload":1},"event_id":"e","aggregate_id":"a","event_type":"T","event_version":1,' +
        '"timestamp":"2026-01-02T03:04:05Z","pay\\u006coad": [ 2 ] }',
    );
    const t = decodeEnvelope(tricky);
    assert.deepEqual(t.payload, [2]);
    assert.equal(text(rawPayload(t)), '[ 2 ]');
    // An envelope built in-process: its JSON encoding.
    const local = createEnvelope({
      aggregateId: 'a',
      eventType: 'T',
      eventVersion: 1,
      payload: { n: 2n ** 70n },
    });
    assert.equal(text(rawPayload(local)), '{"n":1180591620717411303424}');
  });
});
