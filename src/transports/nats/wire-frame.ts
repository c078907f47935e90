/**
 * One publish as the bytes NATS puts on the wire, built once per message:
 *
 *   HPUB <subject> <reply> <header bytes> <total bytes>\r\n<header block><body>\r\n
 *
 * `nc.publish` builds the same frame in four pieces (the protocol line and the
 * header block each encoded separately, then copied together again before the
 * socket write) and checks subject, reply and headers again on every call. We
 * build it in one buffer and hand it to the client's protocol writer, the
 * code `nc.publish` ends in (`sendCommand`: same outbound buffer, same
 * flushing, same buffering while reconnecting). A resend writes the same frame
 * again. That writer is not public API: when this client version does not
 * have it, publishing goes through `nc.publish` with the same bytes
 * (`usesFrames` says which; a test pins it).
 */
import type { MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import { EncodedHeaders } from './header-block.ts';

/** The part of nats.js's protocol handler that `nc.publish` writes through. */
interface ProtocolWriter {
  sendCommand(cmd: Uint8Array): void;
  outBytes: number;
  outMsgs: number;
  noMorePublishing: boolean;
}

function writerOf(nc: NatsConnection): ProtocolWriter | undefined {
  const protocol = (nc as { protocol?: Partial<ProtocolWriter> }).protocol;
  if (
    protocol === undefined ||
    typeof protocol.sendCommand !== 'function' ||
    typeof protocol.outBytes !== 'number' ||
    typeof protocol.outMsgs !== 'number'
  ) {
    return undefined;
  }
  return protocol as ProtocolWriter;
}

/** True when publishes are written as whole frames (this client version has the writer). */
export function usesFrames(nc: NatsConnection): boolean {
  return writerOf(nc) !== undefined;
}

export interface WirePublish {
  readonly subject: string;
  readonly reply: string;
  /** Header block text (headerBlockText), '' for none. */
  readonly headerBlock: string;
  readonly data: Uint8Array;
  /** Built at the first write, written again by resends. */
  frame: Uint8Array | undefined;
}

/** Header + body bytes as the server counts them against max_payload. */
export function payloadSize(p: WirePublish): number {
  return Buffer.byteLength(p.headerBlock) + p.data.byteLength;
}

function buildFrame(p: WirePublish): Uint8Array {
  const hlen = Buffer.byteLength(p.headerBlock);
  const total = hlen + p.data.byteLength;
  const head =
    hlen === 0
      ? `PUB ${p.subject} ${p.reply} ${total}\r\n`
      : `HPUB ${p.subject} ${p.reply} ${hlen} ${total}\r\n${p.headerBlock}`;
  const headBytes = Buffer.byteLength(head);
  const frame = Buffer.allocUnsafe(headBytes + p.data.byteLength + 2);
  frame.write(head, 0);
  frame.set(p.data, headBytes);
  frame[frame.length - 2] = 13;
  frame[frame.length - 1] = 10;
  return frame;
}

/**
 * Writes one publish (throws as `nc.publish` would: closed or draining
 * connection, body + headers over max_payload).
 */
export function writePublish(nc: NatsConnection, p: WirePublish): void {
  const writer = writerOf(nc);
  if (writer === undefined) {
    nc.publish(p.subject, p.data, { reply: p.reply, headers: headersOf(p) });
    return;
  }
  if (nc.isClosed()) throw new Error('closed connection');
  if (writer.noMorePublishing) throw new Error('connection draining');
  const size = payloadSize(p);
  const max = nc.info?.max_payload;
  if (max !== undefined && size > max) throw new Error('max_payload size exceeded');
  p.frame ??= buildFrame(p);
  writer.outBytes += size;
  writer.outMsgs++;
  writer.sendCommand(p.frame);
}

function headersOf(p: WirePublish): MsgHdrs {
  return new EncodedHeaders(new TextEncoder().encode(p.headerBlock)).asMsgHdrs();
}
