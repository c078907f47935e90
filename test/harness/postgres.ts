/**
 * A real PostgreSQL server for integration tests: initdb into a temp dir,
 * start `postgres` on a free loopback port (unix socket inside the temp dir),
 * wait until it accepts connections, stop it by PID and remove the dir.
 *
 * PostgreSQL refuses to run as root, so when the tests run as root both
 * initdb and postgres run as the `postgres` OS user (the Debian package
 * creates it) on a data dir owned by that user.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export interface PostgresServer {
  readonly host: string;
  readonly port: number;
  /** Connection string of the default `postgres` database (trust auth, user `postgres`). */
  readonly url: string;
  readonly dataDir: string;
  readonly pid: number;
  /** Creates a fresh database and returns its connection string. */
  createDatabase(name: string): Promise<string>;
  /** Fast shutdown (SIGINT) by PID, then removes the data dir. Idempotent. */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface StartPostgresOptions {
  /** Max time for initdb + startup. Default 60 s. */
  readonly timeoutMs?: number;
  /** Extra `-c name=value` settings. */
  readonly settings?: Readonly<Record<string, string>>;
}

const READY = 'database system is ready to accept connections';

/** The directory holding initdb/postgres: $PG_BIN, else the newest /usr/lib/postgresql/N/bin. */
export function findPostgresBinDir(): string {
  const fromEnv = process.env.PG_BIN;
  if (fromEnv && existsSync(join(fromEnv, 'postgres'))) return fromEnv;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, 'bin', 'postgres')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  const newest = versions[0];
  if (newest === undefined) {
    throw new Error(
      'Expected PostgreSQL server binaries (initdb, postgres) under /usr/lib/postgresql/<version>/bin or $PG_BIN, found none. ' +
        'Install the Debian package `postgresql` (bash scripts/ensure-components.sh does it when run as root).',
    );
  }
  return join(root, newest, 'bin');
}

export interface RunAs {
  readonly uid?: number;
  readonly gid?: number;
}

export async function postgresUser(): Promise<RunAs> {
  if (process.getuid?.() !== 0) return {};
  const lookup = (flag: '-u' | '-g') =>
    new Promise<number>((resolve, reject) => {
      const child = spawn('id', [flag, 'postgres'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
      });
      child.on('error', reject);
      child.on('close', (code) => {
        const n = Number(out.trim());
        if (code === 0 && Number.isSafeInteger(n)) resolve(n);
        else
          reject(
            new Error(
              'Running as root, and PostgreSQL refuses to run as root: expected an OS user `postgres` to run it as, found none. ' +
                'Install the Debian package `postgresql` (it creates the user) or run the tests as a non-root user.',
            ),
          );
      });
    });
  return { uid: await lookup('-u'), gid: await lookup('-g') };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const address = server.address();
      server.close(() => {
        if (address === null || typeof address === 'string') reject(new Error('Expected a TCP address'));
        else resolve(address.port);
      });
    });
  });
}

function run(cmd: string, args: string[], runAs: RunAs, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      ...runAs,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
    });
    let output = '';
    const collect = (d: Buffer) => {
      output += d.toString();
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`Expected ${cmd} to succeed, it exited with ${code ?? signal}:\n${output}`));
    });
  });
}

/** Kills still-running servers when the test process exits without stopping them. */
const live = new Set<{ child: ChildProcess; dataDir: string }>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const s of live) {
      if (s.child.pid !== undefined && s.child.exitCode === null) {
        try {
          process.kill(s.child.pid, 'SIGQUIT'); // immediate shutdown; the watchdog removes the dir
        } catch {}
      }
    }
  });
}

/**
 * A detached shell that outlives us only to clean up: once this process is
 * gone (however it died: SIGKILL, a closed stdout pipe, ...), it stops our
 * postgres (checking by its command line that the PID is still ours) and
 * removes the data dir. stop() kills the watchdog first.
 */
const WATCHDOG = `
parent=$1; pg=$2; dir=$3
ours() { tr '\\0' ' ' < /proc/$pg/cmdline 2>/dev/null | grep -qF -- "$dir"; }
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
if ours; then
  kill -INT "$pg" 2>/dev/null
  i=0
  while ours && [ $i -lt 40 ]; do sleep 0.5; i=$((i+1)); done
  ours && kill -KILL "$pg" 2>/dev/null
fi
rm -rf -- "$dir"
`;

function startWatchdog(pgPid: number, dataDir: string): ChildProcess | undefined {
  try {
    const watchdog = spawn(
      'sh',
      ['-c', WATCHDOG, 'eventbus-pg-watchdog', String(process.pid), String(pgPid), dataDir],
      {
        detached: true,
        stdio: 'ignore',
      },
    );
    watchdog.on('error', () => {});
    watchdog.unref();
    return watchdog;
  } catch {
    return undefined; // the exit hook still stops the server on a normal exit
  }
}

async function waitReady(child: ChildProcess, timeoutMs: number): Promise<void> {
  let log = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`Expected postgres to become ready within ${timeoutMs} ms; log:\n${log}`));
    }, timeoutMs);
    const onData = (d: Buffer) => {
      log += d.toString();
      if (log.includes(READY)) {
        cleanup();
        resolve();
      }
    };
    const onExit = (code: number | null, signal: string | null) => {
      cleanup();
      reject(new Error(`Expected postgres to start, it exited with ${code ?? signal}; log:\n${log}`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
    };
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
  });
}

async function connectOnce(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.query('SELECT 1');
      await client.end();
      return;
    } catch (err) {
      await client.end().catch(() => {});
      if (Date.now() > deadline) throw err;
      // The server said it is ready; a refused first connection is retried at once on the next tick.
      await new Promise((r) => setImmediate(r));
    }
  }
}

/** Starts a throwaway PostgreSQL server. */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresServer> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const bin = findPostgresBinDir();
  const runAs = await postgresUser();
  const dataDir = mkdtempSync(join(tmpdir(), 'eventbus-pg-'));
  if (runAs.uid !== undefined && runAs.gid !== undefined) chownSync(dataDir, runAs.uid, runAs.gid);
  const pgdata = join(dataDir, 'data');
  const superuser = runAs.uid === undefined ? userInfo().username : 'postgres';
  try {
    await run(
      join(bin, 'initdb'),
      ['-D', pgdata, '-U', superuser, '--auth=trust', '-E', 'UTF8', '--no-sync', '--no-instructions'],
      runAs,
      timeoutMs,
    );
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }

  const settings: Record<string, string> = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: dataDir,
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    max_connections: '200',
    shared_buffers: '128MB',
    logging_collector: 'off',
    ...options.settings,
  };

  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const args = ['-D', pgdata, '-p', String(port)];
    for (const [k, v] of Object.entries(settings)) args.push('-c', `${k}=${v}`);
    const child = spawn(join(bin, 'postgres'), args, {
      ...runAs,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
    });
    const entry = { child, dataDir };
    live.add(entry);
    installExitHook();
    try {
      await waitReady(child, timeoutMs);
    } catch (err) {
      live.delete(entry);
      if (child.exitCode === null) child.kill('SIGKILL');
      lastError = err;
      // Another process took the port between the probe and the bind: try another one.
      if (/could not bind|already in use/i.test(String(err))) continue;
      break;
    }
    // Keep draining the log so the server never blocks on a full pipe.
    child.stderr?.on('data', () => {});
    const exited = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
    const host = '127.0.0.1';
    const url = `postgres://${superuser}@${host}:${port}/postgres`;
    const watchdog = startWatchdog(child.pid as number, dataDir);
    let stopping: Promise<void> | undefined;
    const stop = (): Promise<void> => {
      stopping ??= (async () => {
        if (watchdog?.pid !== undefined && watchdog.exitCode === null) {
          try {
            process.kill(-watchdog.pid, 'SIGKILL'); // its own process group (detached): sh and its sleep
          } catch {}
        }
        // Not already gone (a fault suite may have SIGKILLed it: signalCode set, exitCode null).
        if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
          process.kill(child.pid, 'SIGINT');
          const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
          await exited;
          clearTimeout(timer);
        }
        live.delete(entry);
        rmSync(dataDir, { recursive: true, force: true });
      })();
      return stopping;
    };
    try {
      await connectOnce(url, timeoutMs);
    } catch (err) {
      await stop();
      throw err;
    }
    return {
      host,
      port,
      url,
      dataDir,
      pid: child.pid as number,
      async createDatabase(name: string) {
        if (!/^[a-z_][a-z0-9_]*$/.test(name)) {
          throw new Error(`Expected a simple lower-case database name, got ${JSON.stringify(name)}`);
        }
        const client = new pg.Client({ connectionString: url });
        await client.connect();
        try {
          await client.query(`CREATE DATABASE ${name}`);
        } finally {
          await client.end();
        }
        return `postgres://${superuser}@${host}:${port}/${name}`;
      },
      stop,
      [Symbol.asyncDispose]: stop,
    };
  }
  rmSync(dataDir, { recursive: true, force: true });
  throw lastError;
}
