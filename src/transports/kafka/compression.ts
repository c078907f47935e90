/**
 * Record batch compression. Kafka compresses whole record batches and flags
 * the codec in the batch attributes, so every consumer (any language)
 * decompresses transparently: unlike the NATS transport no header is needed.
 *
 * @platformatic/kafka implements LZ4 and Snappy in WebAssembly
 * (@platformatic/wasm-utils), gzip/zstd with node:zlib, so no native addon is
 * involved. Still, the codec is probed once at startup; if it does not work
 * (a broken install, a runtime without zstd) the transport logs a warning
 * and publishes uncompressed instead of failing every publish.
 */
import { compressionsAlgorithms } from '@platformatic/kafka';
import type { Logger } from '../../core/logger.ts';
import type { KafkaCompression } from './options.ts';

interface Codec {
  readonly available?: boolean;
  compressSync(data: Buffer): Buffer | { buffer: Buffer };
  decompressSync(data: Buffer): Buffer | { buffer: Buffer };
}

const PROBE = Buffer.from('jxt-eventbus compression probe jxt-eventbus compression probe', 'utf8');

/** The codec to use: `wanted` when it round-trips a sample, else 'none' (logged). */
export function resolveCompression(
  wanted: KafkaCompression,
  logger: Logger,
  codecs: Readonly<Record<string, Codec | undefined>> = compressionsAlgorithms as unknown as Record<
    string,
    Codec
  >,
): KafkaCompression {
  if (wanted === 'none') return 'none';
  const codec = codecs[wanted];
  try {
    if (codec === undefined || codec.available === false) throw new Error('not provided by the Kafka client');
    const packed = codec.compressSync(PROBE);
    const unpacked = codec.decompressSync(Buffer.isBuffer(packed) ? packed : packed.buffer);
    const bytes = Buffer.isBuffer(unpacked) ? unpacked : unpacked.buffer;
    if (!bytes.equals(PROBE)) throw new Error('round trip returned different bytes');
    return wanted;
  } catch (error) {
    logger.warn(
      { compression: wanted, err: error },
      `Kafka ${wanted} compression is unavailable (${(error as Error).message}); publishing uncompressed`,
    );
    return 'none';
  }
}
