/**
 * Shared plumbing of the NATS operator commands (tail, dlq, doctor): the
 * `--servers` / `--stream-prefix` options and an admin connection with the
 * official clients. Admin work never goes through the bus.
 */
import {
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  type StreamInfo,
} from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { InvalidArgumentError, TransportError } from '../core/errors.ts';
import { ApiCodes, apiErrorCode, wrapApiError } from '../transports/nats/errors.ts';
import { streamNameFor, validateTopic } from '../transports/nats/names.ts';
import { type ResolvedNatsOptions, resolveNatsOptions } from '../transports/nats/options.ts';

/** parseArgs options every NATS operator command accepts. */
export const connectionArgs = {
  servers: { type: 'string' },
  'stream-prefix': { type: 'string' },
} as const;

export const connectionUsage =
  '--servers URL[,URL...] (default $NATS_URL or nats://127.0.0.1:4222), --stream-prefix P (default EVENTBUS)';

/**
 * The transport's resolved options for the given flags: servers from
 * `--servers`, else `$NATS_URL`, else the transport default; the stream prefix
 * from `--stream-prefix`, else the transport default. Everything else (limits
 * that `doctor` compares against) are the transport's defaults.
 */
export function adminOptions(
  values: { readonly servers?: string | undefined; readonly 'stream-prefix'?: string | undefined },
  env: NodeJS.ProcessEnv = process.env,
): ResolvedNatsOptions {
  const list = (values.servers ?? env.NATS_URL)
    ?.split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  try {
    return resolveNatsOptions({
      ...(list === undefined || list.length === 0 ? {} : { servers: list }),
      ...(values['stream-prefix'] === undefined ? {} : { streamPrefix: values['stream-prefix'] }),
    });
  } catch (error) {
    if (!(error instanceof InvalidArgumentError)) throw error;
    // Name the flag, not the transport option behind it.
    const message = error.message
      .replace('`nats.servers`', '--servers')
      .replace('`nats.streamPrefix`', '--stream-prefix');
    throw new InvalidArgumentError(message, { cause: error });
  }
}

export async function connectNats(options: ResolvedNatsOptions): Promise<NatsConnection> {
  try {
    return await connect({
      ...options.connectOptions,
      servers: [...options.servers],
      name: 'eventbus-cli',
      timeout: options.apiTimeoutMs,
    });
  } catch (cause) {
    throw new TransportError(
      `Could not connect to NATS at ${options.servers.join(', ')}: ${(cause as Error).message}`,
      { cause },
    );
  }
}

export interface Admin {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly options: ResolvedNatsOptions;
  /** The stream the transport uses for `topic` (`<prefix>_<topic sanitized>`); validates the topic. */
  streamName(topic: string): string;
  /**
   * The topic's stream, or undefined when it does not exist; throws when the
   * stream of that name captures other subjects (two topics sanitize alike).
   */
  topicStream(topic: string): Promise<StreamInfo | undefined>;
  close(): Promise<void>;
}

export async function jetStreamManagerFor(
  nc: NatsConnection,
  options: ResolvedNatsOptions,
): Promise<JetStreamManager> {
  try {
    return await jetstreamManager(nc, { timeout: options.apiTimeoutMs });
  } catch (cause) {
    throw new TransportError(
      `JetStream is not available at ${options.servers.join(', ')}: ${(cause as Error).message}`,
      { cause, retryable: false },
    );
  }
}

/** Fresh stream info, or undefined when the stream does not exist. */
export async function streamInfoOf(jsm: JetStreamManager, name: string): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(name);
  } catch (error) {
    if (apiErrorCode(error) === ApiCodes.streamNotFound) return undefined;
    throw wrapApiError(`Failed to read stream ${name}`, error);
  }
}

/** Connects and checks that JetStream answers; the caller closes the result. */
export async function openAdmin(options: ResolvedNatsOptions): Promise<Admin> {
  const nc = await connectNats(options);
  let jsm: JetStreamManager;
  try {
    jsm = await jetStreamManagerFor(nc, options);
  } catch (error) {
    await nc.close();
    throw error;
  }
  return {
    nc,
    js: jetstream(nc, { timeout: options.apiTimeoutMs }),
    jsm,
    options,
    streamName(topic) {
      validateTopic(topic);
      return streamNameFor(options.streamPrefix, topic);
    },
    async topicStream(topic) {
      validateTopic(topic);
      const name = streamNameFor(options.streamPrefix, topic);
      const info = await streamInfoOf(jsm, name);
      if (info !== undefined && !info.config.subjects?.includes(topic)) {
        throw new TransportError(
          `Stream ${name} does not capture ${topic} (its subjects: ${info.config.subjects?.join(', ') || 'none'})`,
          { retryable: false },
        );
      }
      return info;
    },
    close: () => nc.close(),
  };
}
