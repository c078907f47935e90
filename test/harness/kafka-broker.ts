/**
 * Spawns the Kafka-protocol test broker (`kfake-server`, franz-go's kfake;
 * see ../shared/tools/kafka/README.md) for integration tests, the way
 * nats-server.ts spawns nats-server.
 *
 * - The binary comes from KFAKE_BIN (scripts/test.sh and .ci/run set it to
 *   ../shared/tools/kafka/kfake-server); it is never part of this repository.
 * - It listens on 127.0.0.1 only, on free ports picked here (so a restart
 *   comes back on the same addresses).
 * - "Ready" means OUR child printed its broker addresses on stdout: a port
 *   probe could reach some other process's broker.
 * - `dataDir` keeps topics, records and committed offsets across restart().
 * - Only processes spawned here are signalled, always by PID; children still
 *   alive when the test process exits are SIGKILLed.
 *
 * KAFKA_BROKERS (host:port,…) points the tests at a real cluster instead:
 * see {@link kafkaForTests}.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { after, before } from 'node:test';
import { getFreePorts } from './ports.ts';

export interface KafkaBrokerOptions {
  /** Number of brokers in the cluster (default 1). */
  readonly brokers?: number;
  /**
   * Keep state in a directory so restart() keeps topics, records and offsets.
   * `true`: a temp directory removed by stop(); a string: that directory (kept).
   */
  readonly dataDir?: boolean | string;
  /** Extra flags, e.g. `['-c', 'message.max.bytes=1024']`. */
  readonly args?: readonly string[];
  /** How long to wait for the address line (default 20 s). */
  readonly readyTimeoutMs?: number;
}

export interface KafkaBrokerHandle extends AsyncDisposable {
  /** `127.0.0.1:<port>` of every broker. */
  readonly brokers: readonly string[];
  readonly dataDir: string | undefined;
  /** PID of the current child (undefined while not running). */
  readonly pid: number | undefined;
  readonly running: boolean;
  /** Stops the broker if running (SIGTERM), then starts it again on the same ports and data dir. */
  restart(): Promise<void>;
  /** Sends `signal` (default SIGKILL) to our child by PID and waits for it to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again after kill() (same ports, same data dir). */
  start(): Promise<void>;
  /** Graceful stop (SIGTERM, SIGKILL after 10 s), removes a temp data dir. Idempotent. */
  stop(): Promise<void>;
  /** stdout + stderr of the current (or last) child, for diagnostics. */
  logs(): string;
}

const MAX_LOG_CHARS = 256 * 1024;
const ADDRESS_LINE = /^127\.0\.0\.1:\d+(,127\.0\.0\.1:\d+)*$/;

/** The kfake-server binary from KFAKE_BIN (relative paths are resolved from the working directory). */
export function kfakeBinary(): string | undefined {
  const fromEnv = process.env.KFAKE_BIN;
  if (!fromEnv) return undefined;
  const path = isAbsolute(fromEnv) ? fromEnv : resolve(process.cwd(), fromEnv);
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new Error(`KFAKE_BIN=${fromEnv} is not an executable file (resolved to ${path})`);
  }
  return path;
}

const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of liveChildren) {
      try {
        if (c.pid !== undefined) process.kill(c.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

class KfakeProcess implements KafkaBrokerHandle {
  readonly brokers: readonly string[];
  readonly dataDir: string | undefined;
  readonly #binary: string;
  readonly #ports: readonly number[];
  readonly #args: readonly string[];
  readonly #readyTimeoutMs: number;
  readonly #tempDir: string | undefined;
  #child: ChildProcess | undefined;
  #log = '';
  #stopping: Promise<void> | undefined;

  constructor(
    binary: string,
    ports: readonly number[],
    dataDir: string | undefined,
    tempDir: string | undefined,
    options: KafkaBrokerOptions,
  ) {
    this.#binary = binary;
    this.#ports = ports;
    this.brokers = ports.map((port) => `127.0.0.1:${port}`);
    this.dataDir = dataDir;
    this.#tempDir = tempDir;
    this.#args = options.args ?? [];
    this.#readyTimeoutMs = options.readyTimeoutMs ?? 20_000;
  }

  get pid(): number | undefined {
    return this.running ? this.#child?.pid : undefined;
  }

  get running(): boolean {
    const child = this.#child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  logs(): string {
    return this.#log;
  }

  async start(): Promise<void> {
    if (this.#stopping !== undefined) throw new Error('kfake-server was stopped; start a new one');
    if (this.running) throw new Error('kfake-server is already running');
    this.#log = '';
    const args = ['-ports', this.#ports.join(','), ...this.#args];
    if (this.dataDir !== undefined) args.push('-data-dir', this.dataDir);
    const child = spawn(this.#binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    track(child);
    const append = (chunk: string): void => {
      this.#log += chunk;
      if (this.#log.length > MAX_LOG_CHARS) this.#log = this.#log.slice(-MAX_LOG_CHARS / 2);
    };
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', append);
    child.stdout?.setEncoding('utf8');
    let timer: NodeJS.Timeout | undefined;
    const ready = new Promise<void>((resolve, reject) => {
      let partial = '';
      child.stdout?.on('data', (chunk: string) => {
        append(chunk);
        const lines = (partial + chunk).split('\n');
        partial = lines.pop() ?? '';
        if (lines.some((line) => ADDRESS_LINE.test(line.trim()))) resolve();
      });
      child.once('error', (error) => reject(new Error(`Failed to spawn ${this.#binary}: ${error.message}`)));
      void exited(child).then(() =>
        reject(
          new Error(
            `kfake-server exited (code ${child.exitCode}, signal ${child.signalCode}) before printing its addresses:\n${this.#log}`,
          ),
        ),
      );
      timer = setTimeout(
        () =>
          reject(
            new Error(`kfake-server printed no addresses within ${this.#readyTimeoutMs} ms:\n${this.#log}`),
          ),
        this.#readyTimeoutMs,
      );
    });
    try {
      await ready;
    } catch (error) {
      if (this.running) {
        child.kill('SIGKILL');
        await exited(child);
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.#child;
    if (child?.pid === undefined || !this.running) return;
    process.kill(child.pid, signal);
    await exited(child);
  }

  async #terminate(): Promise<void> {
    const child = this.#child;
    if (child?.pid === undefined || !this.running) return;
    process.kill(child.pid, 'SIGTERM');
    const forced = setTimeout(() => {
      if (this.running && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    }, 10_000);
    await exited(child);
    clearTimeout(forced);
  }

  async restart(): Promise<void> {
    await this.#terminate();
    await this.start();
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      await this.#terminate();
      if (this.#tempDir !== undefined) await rm(this.#tempDir, { recursive: true, force: true });
    })();
    return this.#stopping;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/** Starts kfake-server (KFAKE_BIN) on free 127.0.0.1 ports. Throws when KFAKE_BIN is unset. */
export async function startKafkaBroker(options: KafkaBrokerOptions = {}): Promise<KafkaBrokerHandle> {
  const binary = kfakeBinary();
  if (binary === undefined) throw new Error('KFAKE_BIN is not set: cannot start the Kafka test broker');
  let tempDir: string | undefined;
  let dataDir: string | undefined;
  if (options.dataDir === true) {
    tempDir = await mkdtemp(join(tmpdir(), 'eventbus-kfake-'));
    dataDir = join(tempDir, 'data');
  } else if (typeof options.dataDir === 'string') {
    dataDir = options.dataDir;
  }
  let lastError: unknown;
  // A free port can be taken between probing and binding: retry with new ones.
  for (let attempt = 0; attempt < 3; attempt++) {
    const ports = await getFreePorts(options.brokers ?? 1);
    const broker = new KfakeProcess(binary, ports, dataDir, tempDir, options);
    try {
      await broker.start(); // kills its child itself when it fails
      return broker;
    } catch (error) {
      lastError = error;
      if (!/address already in use/i.test(String(error))) break;
    }
  }
  if (tempDir !== undefined) await rm(tempDir, { recursive: true, force: true });
  throw lastError;
}

/** The brokers a Kafka test file runs against, and how to let go of them. */
export interface KafkaTestCluster {
  readonly brokers: readonly string[];
  /** 'external': KAFKA_BROKERS (a real cluster); 'harness': a kfake-server we spawned. */
  readonly source: 'external' | 'harness';
  /** The spawned broker (harness only), for restart and kill tests. */
  readonly broker: KafkaBrokerHandle | undefined;
  stop(): Promise<void>;
}

/**
 * Why Kafka broker tests skip here, or undefined when they can run:
 * KAFKA_BROKERS (a real cluster) or KFAKE_BIN (the test broker) must be set.
 */
export const kafkaSkipReason: string | undefined =
  process.env.KAFKA_BROKERS || process.env.KFAKE_BIN
    ? undefined
    : 'neither KAFKA_BROKERS (a Kafka cluster) nor KFAKE_BIN (the kfake test broker) is set';

/** Prints the one "skipping" line a Kafka broker test file gives when it cannot run. */
export function announceKafkaSkip(what: string): void {
  if (kafkaSkipReason !== undefined) console.log(`# skipping ${what}: ${kafkaSkipReason}`);
}

/** KAFKA_BROKERS when set, else a fresh kfake-server (KFAKE_BIN). */
export async function kafkaForTests(options: KafkaBrokerOptions = {}): Promise<KafkaTestCluster> {
  const external = process.env.KAFKA_BROKERS;
  if (external) {
    const brokers = external
      .split(',')
      .map((b) => b.trim())
      .filter((b) => b !== '');
    return { brokers, source: 'external', broker: undefined, stop: () => Promise.resolve() };
  }
  const broker = await startKafkaBroker(options);
  return { brokers: broker.brokers, source: 'harness', broker, stop: () => broker.stop() };
}

/**
 * Call at a test file's top level or inside describe(): KAFKA_BROKERS, or a
 * fresh kfake-server started before the block's tests and stopped after them.
 * `brokers()` is for the tests themselves (empty before the block starts).
 */
export function useKafkaForTests(options: KafkaBrokerOptions = {}): { brokers(): string[] } {
  let cluster: KafkaTestCluster | undefined;
  before(async () => {
    cluster = await kafkaForTests(options);
  });
  after(async () => {
    await cluster?.stop();
  });
  return { brokers: () => [...(cluster?.brokers ?? [])] };
}
