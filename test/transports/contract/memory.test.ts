/** The transport contract suite on the in-memory transport. */
import { createMemoryBroker, memory } from '../../../src/index.ts';
import { runTransportContract } from '../../../src/testing/index.ts';

runTransportContract(memory({ broker: createMemoryBroker() }));
