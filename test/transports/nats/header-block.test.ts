/**
 * Our pre-encoded NATS header block writes the bytes nats.js's own headers()
 * would write for the same headers (so the broker, de-duplication and every
 * reader see no difference), and refuses what nats.js refuses.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { encodeHeaderBlock } from '../../../src/transports/nats/header-block.ts';

const MSG_ID = 'Nats-Msg-Id';

function clientBytes(headers: Record<string, string>, msgId: string): Uint8Array {
  const h = natsHeaders();
  for (const name in headers) h.set(name, headers[name] as string);
  if (msgId) h.set(MSG_ID, msgId);
  return (h as unknown as { encode(): Uint8Array }).encode();
}

describe('nats header block', () => {
  const cases: Array<[string, Record<string, string>, string]> = [
    [
      'envelope headers and a message id',
      {
        'X-Event-ID': 'e-1',
        'X-Aggregate-ID': 'order-7',
        'X-Event-Type': 'OrderPlaced',
        'X-Event-Version': '3',
        'X-Timestamp': '2026-01-02T03:04:05.123456789Z',
      },
      'e-1',
    ],
    ['values trimmed as the client trims them', { 'X-Note': '  padded\t ' }, ' id-with-space '],
    [
      'a caller header named like the message id is replaced by it',
      { [MSG_ID]: 'theirs', 'X-A': 'a' },
      'ours',
    ],
    ['no message id', { 'X-A': 'a', 'x-lower': 'b' }, ''],
    ['non-ASCII values', { 'X-Name': 'Zoë ✓' }, 'ü'],
    ['nothing at all', {}, ''],
  ];
  for (const [name, headers, msgId] of cases) {
    it(`writes what nats.js writes: ${name}`, () => {
      assert.deepEqual(encodeHeaderBlock(headers, MSG_ID, msgId).encode(), clientBytes(headers, msgId));
    });
  }

  it('refuses a header name nats.js refuses', () => {
    for (const bad of ['X:Colon', 'X Space', 'X-ü']) {
      assert.throws(() => clientBytes({ [bad]: 'v' }, ''));
      assert.throws(() => encodeHeaderBlock({ [bad]: 'v' }, MSG_ID, ''), /not a valid character/);
    }
  });

  it('refuses values with CR or LF, as nats.js does', () => {
    for (const bad of ['a\rb', 'a\nb']) {
      assert.throws(() => clientBytes({ 'X-A': bad }, ''));
      assert.throws(() => encodeHeaderBlock({ 'X-A': bad }, MSG_ID, ''), /cannot contain/);
      assert.throws(() => encodeHeaderBlock({}, MSG_ID, bad), /cannot contain/);
    }
  });
});
