/**
 * The conformance suite on NATS at the full Watermill sizes (100,000
 * messages behind a blocked handler, 10,000 through a publisher close, ...):
 * a load run, so in the fault tier (`npm run test:faults`); the fast tier runs
 * the same scenarios at a fifth of the sizes (conformance.test.ts).
 */
import { natsConformance } from './conformance-kit.ts';

natsConformance(1);
