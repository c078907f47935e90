/**
 * Spawns real `nats-server` processes for integration tests.
 *
 * - Each server gets its own temp directory holding the config file we write
 *   and (unless `storeDir` is given) its JetStream store.
 * - It listens on 127.0.0.1 only, on a free port.
 * - "Ready" means OUR child logged "Server is ready" on stderr: a port probe
 *   could reach some other process's server.
 * - Only processes spawned here are ever signalled, always by PID; children
 *   still alive when the test process exits are SIGKILLed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { getFreePort, getFreePorts } from './ports.ts';

export interface NatsServerOptions {
  /** Enable JetStream (default true). */
  readonly jetstream?: boolean;
  /** JetStream store directory; default: `<temp dir>/store` (removed by stop()). */
  readonly storeDir?: string;
  /** Client port; default: a free one. */
  readonly port?: number;
  /** Extra config text appended to the generated file (e.g. `max_payload: 65536`). */
  readonly config?: string;
  /** server_name; default `n-<port>`. */
  readonly serverName?: string;
  /** How long to wait for "Server is ready" (default 20 s). */
  readonly readyTimeoutMs?: number;
}

export interface NatsServerHandle extends AsyncDisposable {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  readonly serverName: string;
  /** PID of the current child (undefined while not running). */
  readonly pid: number | undefined;
  readonly running: boolean;
  /** Stops the server if running, then starts it again on the same port and store. */
  restart(): Promise<void>;
  /**
   * Sends `signal` (default SIGKILL) to our child by PID. For terminating signals
   * the promise resolves once the process has exited; SIGSTOP/SIGCONT resolve at once.
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Graceful stop (SIGTERM, SIGKILL after 10 s), then removes the temp directory. Idempotent. */
  stop(): Promise<void>;
  /** stderr of the current (or last) child, for diagnostics. */
  logs(): string;
  /** Resolves with the first log line of the current child matching `pattern`. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
}

const READY = 'Server is ready';
const MAX_LOG_CHARS = 512 * 1024;

function findBinary(): string {
  const fromEnv = process.env.NATS_SERVER_BIN;
  const candidates = [
    ...(fromEnv ? [fromEnv] : []),
    ...(process.env.PATH ?? '').split(delimiter).map((dir) => join(dir, 'nats-server')),
    '/usr/sbin/nats-server',
    '/usr/local/bin/nats-server',
  ];
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // try the next one
    }
  }
  throw new Error(
    'nats-server not found (looked in NATS_SERVER_BIN, PATH, /usr/sbin, /usr/local/bin). ' +
      'Install it with `bash scripts/ensure-components.sh` (Debian package nats-server) or set NATS_SERVER_BIN.',
  );
}

const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of liveChildren) {
        if (c.pid !== undefined) {
          try {
            process.kill(c.pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }
    });
  }
}

/** Thread states of `pid` from /proc (Linux); undefined where /proc is unavailable. */
function threadStates(pid: number): string[] | undefined {
  try {
    return readdirSync(`/proc/${pid}/task`).map((tid) => {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      // "tid (comm) S ...": the state follows the last ')' (comm may contain spaces).
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    });
  } catch {
    return undefined;
  }
}

/** Resolves once every thread of `pid` is stopped (or none is), failing after 5 s. */
async function waitForThreadState(pid: number, stopped: boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const states = threadStates(pid);
    if (states === undefined) return; // no /proc: nothing to wait on
    const isStopped = (state: string): boolean => state === 'T' || state === 't';
    if (states.length > 0 && states.every((state) => isStopped(state) === stopped)) return;
    if (Date.now() > deadline) {
      throw new Error(
        `nats-server pid ${pid}: expected every thread ${stopped ? 'stopped' : 'running'} within 5 s, got states ${states.join('')}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

function quote(value: string): string {
  return JSON.stringify(value);
}

interface LogWaiter {
  readonly pattern: RegExp;
  readonly resolve: (line: string) => void;
}

class NatsServerProcess implements NatsServerHandle {
  readonly port: number;
  readonly storeDir: string;
  readonly serverName: string;
  readonly #binary: string;
  readonly #dir: string;
  readonly #configPath: string;
  readonly #readyTimeoutMs: number;
  #child: ChildProcess | undefined;
  #log = '';
  #waiters: LogWaiter[] = [];
  #paused = false;
  #stopped = false;
  #stopping: Promise<void> | undefined;

  constructor(
    binary: string,
    dir: string,
    port: number,
    storeDir: string,
    serverName: string,
    readyTimeoutMs: number,
  ) {
    this.#binary = binary;
    this.#dir = dir;
    this.port = port;
    this.storeDir = storeDir;
    this.serverName = serverName;
    this.#configPath = join(dir, 'nats.conf');
    this.#readyTimeoutMs = readyTimeoutMs;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.running ? this.#child?.pid : undefined;
  }

  get running(): boolean {
    const child = this.#child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  async writeConfig(text: string): Promise<void> {
    await writeFile(this.#configPath, text);
  }

  /** Spawns the child and waits for its own "Server is ready". */
  async start(): Promise<void> {
    if (this.#stopped) throw new Error(`nats-server ${this.serverName} was stopped; start a new one`);
    if (this.running) throw new Error(`nats-server ${this.serverName} is already running`);
    this.#log = '';
    this.#paused = false;
    const child = spawn(this.#binary, ['-c', this.#configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.#child = child;
    track(child);
    let partial = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      this.#log += chunk;
      if (this.#log.length > MAX_LOG_CHARS) this.#log = this.#log.slice(-MAX_LOG_CHARS / 2);
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) this.#onLine(line);
    });
    const spawnError = new Promise<never>((_, reject) => {
      child.once('error', (error) => reject(new Error(`Failed to spawn ${this.#binary}: ${error.message}`)));
    });
    const early = exited(child).then(() => {
      throw new Error(
        `nats-server ${this.serverName} exited (code ${child.exitCode}, signal ${child.signalCode}) before it was ready:\n${this.#log}`,
      );
    });
    try {
      await Promise.race([this.waitForLog(new RegExp(READY), this.#readyTimeoutMs), early, spawnError]);
    } catch (error) {
      if (this.running) {
        child.kill('SIGKILL');
        await exited(child);
      }
      throw error;
    }
    early.catch(() => {});
    spawnError.catch(() => {});
  }

  #onLine(line: string): void {
    if (this.#waiters.length === 0) return;
    const remaining: LogWaiter[] = [];
    for (const waiter of this.#waiters) {
      if (waiter.pattern.test(line)) waiter.resolve(line);
      else remaining.push(waiter);
    }
    this.#waiters = remaining;
  }

  logs(): string {
    return this.#log;
  }

  waitForLog(pattern: RegExp, timeoutMs = 20_000): Promise<string> {
    const already = this.#log.split('\n').find((line) => pattern.test(line));
    if (already !== undefined) return Promise.resolve(already);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(
          new Error(
            `nats-server ${this.serverName}: no log line matching ${pattern} within ${timeoutMs} ms:\n${this.#log}`,
          ),
        );
      }, timeoutMs);
      const waiter: LogWaiter = {
        pattern,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      this.#waiters.push(waiter);
    });
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.#child;
    if (child === undefined || !this.running || child.pid === undefined) return;
    process.kill(child.pid, signal);
    if (signal === 'SIGSTOP' || signal === 'SIGTSTP') {
      this.#paused = true;
      // kill() only queues the signal; in sandboxed kernels (gVisor) the threads
      // can keep running for a while. Tests that send right after a stop must
      // not race the server, so wait until every thread reports stopped.
      await waitForThreadState(child.pid, true);
      return;
    }
    if (signal === 'SIGCONT') {
      this.#paused = false;
      await waitForThreadState(child.pid, false);
      return;
    }
    await exited(child);
  }

  async #terminate(): Promise<void> {
    const child = this.#child;
    if (child === undefined || !this.running || child.pid === undefined) return;
    if (this.#paused) process.kill(child.pid, 'SIGCONT');
    this.#paused = false;
    process.kill(child.pid, 'SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const forced = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        if (this.running && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
        resolve();
      }, 10_000);
    });
    await Promise.race([exited(child), forced]);
    clearTimeout(timer);
    await exited(child);
  }

  async restart(): Promise<void> {
    await this.#terminate();
    await this.start();
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#stopped = true;
      await this.#terminate();
      await rm(this.#dir, { recursive: true, force: true });
    })();
    return this.#stopping;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

function serverConfig(
  port: number,
  serverName: string,
  storeDir: string,
  jetstream: boolean,
  extra: string | undefined,
  cluster?: { name: string; port: number; routes: number[] },
): string {
  const lines = [`server_name: ${quote(serverName)}`, `listen: "127.0.0.1:${port}"`];
  if (jetstream) lines.push(`jetstream { store_dir: ${quote(storeDir)} }`);
  if (cluster !== undefined) {
    const routes = cluster.routes.map((p) => quote(`nats-route://127.0.0.1:${p}`)).join(', ');
    lines.push(
      `cluster { name: ${quote(cluster.name)}, listen: "127.0.0.1:${cluster.port}", routes: [${routes}] }`,
    );
  }
  if (extra !== undefined) lines.push(extra);
  return `${lines.join('\n')}\n`;
}

async function createProcess(
  binary: string,
  port: number,
  options: NatsServerOptions,
  cluster?: { name: string; port: number; routes: number[] },
): Promise<NatsServerProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'eventbus-nats-'));
  const storeDir = options.storeDir ?? join(dir, 'store');
  const serverName = options.serverName ?? `n-${port}`;
  const server = new NatsServerProcess(
    binary,
    dir,
    port,
    storeDir,
    serverName,
    options.readyTimeoutMs ?? 20_000,
  );
  await server.writeConfig(
    serverConfig(port, serverName, storeDir, options.jetstream ?? true, options.config, cluster),
  );
  return server;
}

/** Starts one nats-server (JetStream on by default) on a free 127.0.0.1 port. */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServerHandle> {
  const binary = findBinary();
  let lastError: unknown;
  // A free port can be taken between probing and binding: retry with a new one.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = options.port ?? (await getFreePort());
    const server = await createProcess(binary, port, options);
    try {
      await server.start();
      return server;
    } catch (error) {
      lastError = error;
      await server.stop();
      if (options.port !== undefined || !/address already in use/i.test(String(error))) throw error;
    }
  }
  throw lastError;
}

async function probeReplicatedStream(urls: string[], replicas: number, timeoutMs = 30_000): Promise<void> {
  const { connect } = await import('@nats-io/transport-node');
  const { jetstreamManager } = await import('@nats-io/jetstream');
  const nc = await connect({ servers: urls, timeout: 5_000 });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 5_000 });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await jsm.streams.add({ name: 'HARNESS_PROBE', subjects: ['harness.probe'], num_replicas: replicas });
        await jsm.streams.delete('HARNESS_PROBE');
        return;
      } catch (error) {
        if (Date.now() > deadline) {
          throw new Error(
            `JetStream cluster not ready for R${replicas} streams within ${timeoutMs} ms: ${error}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  } finally {
    await nc.close();
  }
}

export interface NatsClusterHandle extends AsyncDisposable {
  readonly nodes: readonly NatsServerHandle[];
  /** Client URLs of all nodes. */
  readonly urls: readonly string[];
  /** The node currently leading `stream` (asks the cluster via a client connection). */
  streamLeader(stream: string, timeoutMs?: number): Promise<NatsServerHandle>;
  /** Stops every node (and removes their temp directories). */
  stop(): Promise<void>;
}

/** Starts a `size`-node JetStream cluster on loopback (routes on free ports, one store each). */
export async function startNatsCluster(
  size = 3,
  options: Omit<NatsServerOptions, 'port' | 'storeDir' | 'serverName'> = {},
): Promise<NatsClusterHandle> {
  const binary = findBinary();
  const ports = await getFreePorts(size * 2);
  const clientPorts = ports.slice(0, size);
  const routePorts = ports.slice(size);
  const clusterName = `C${process.pid}`;
  const nodes: NatsServerProcess[] = [];
  for (let i = 0; i < size; i++) {
    const port = clientPorts[i] as number;
    const routePort = routePorts[i] as number;
    nodes.push(
      await createProcess(
        binary,
        port,
        { ...options, jetstream: true, serverName: `n${i + 1}` },
        {
          name: clusterName,
          port: routePort,
          routes: routePorts.filter((p) => p !== routePort),
        },
      ),
    );
  }
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((node) => node.stop()));
  };
  try {
    await Promise.all(nodes.map((node) => node.start()));
    // Streams can only be created once the JetStream meta group has a leader and
    // every peer is known: probe by creating (and deleting) an R<size> stream.
    await Promise.any(nodes.map((node) => node.waitForLog(/metadata leader/i, 30_000)));
    await probeReplicatedStream(
      nodes.map((node) => node.url),
      size,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    nodes,
    urls: nodes.map((node) => node.url),
    stop,
    [Symbol.asyncDispose]: stop,
    async streamLeader(stream: string, timeoutMs = 20_000): Promise<NatsServerHandle> {
      const { connect } = await import('@nats-io/transport-node');
      const { jetstreamManager } = await import('@nats-io/jetstream');
      const running = nodes.filter((node) => node.running);
      const nc = await connect({ servers: running.map((node) => node.url), timeout: 5_000 });
      try {
        const jsm = await jetstreamManager(nc, { timeout: 5_000 });
        const deadline = Date.now() + timeoutMs;
        let last = 'no answer';
        while (Date.now() < deadline) {
          try {
            const info = await jsm.streams.info(stream);
            const leader = info.cluster?.leader;
            const node = nodes.find((n) => n.serverName === leader);
            if (node?.running) return node;
            last = `leader ${String(leader)}`;
          } catch (error) {
            last = String(error);
          }
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        throw new Error(`No leader for stream ${stream} within ${timeoutMs} ms (${last})`);
      } finally {
        await nc.close();
      }
    },
  };
}
