/** The transport contract suite on NATS JetStream (a real, spawned nats-server). */
import { after, before } from 'node:test';
import { runTransportContract } from '../../../src/testing/index.ts';
import { nats } from '../../../src/transports/nats/index.ts';
import { type NatsServerHandle, startNatsServer } from '../../harness/nats-server.ts';

let server: NatsServerHandle | undefined;
before(async () => {
  server = await startNatsServer({ jetstream: true });
});
after(async () => {
  await server?.stop();
});

// The factory is called per transport, after before() started the server.
runTransportContract(
  {
    kind: 'nats',
    create: (ctx) => nats({ servers: server?.url ?? 'unstarted' }).create(ctx),
  },
  { name: 'nats' },
);
