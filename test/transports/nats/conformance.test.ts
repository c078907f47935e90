/**
 * The conformance suite on NATS at a fifth of its sizes (fast tier): every
 * scenario still runs, the backpressure one with 20,000 messages against a
 * pool of 256. The full sizes run in conformance-full.fault.ts.
 */
import { natsConformance } from './conformance-kit.ts';

natsConformance(0.2);
