/**
 * kill -9 of a harness PostgreSQL server (the postmaster and every backend,
 * by PID, as a machine crash looks to clients) and a restart on the same
 * port and data directory (crash recovery), for fault suites.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { findPostgresBinDir, type PostgresServer, postgresUser } from './postgres.ts';
import { processAlive } from './proc-state.ts';

function childrenOf(pid: number): number[] {
  try {
    return execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .map((line) => Number(line.trim()))
      .filter((n) => Number.isSafeInteger(n) && n > 0);
  } catch {
    return []; // ps exits 1 when there are none
  }
}

/** SIGKILLs the postmaster `pid` and its backends; resolves once all are gone. */
export async function killPostgres(pid: number): Promise<void> {
  const pids = [pid, ...childrenOf(pid)];
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {}
  }
  for (const p of pids) while (processAlive(p)) await new Promise((resolve) => setTimeout(resolve, 20));
}

export interface RestartedPostgres {
  readonly pid: number;
  /** SIGKILL again (postmaster and backends). */
  kill(): Promise<void>;
  /** Fast shutdown; resolves when it exited. */
  stop(): Promise<void>;
}

/** Starts PostgreSQL again on the server's port and data directory; resolves when it accepts connections. */
export async function restartPostgres(
  server: PostgresServer,
  timeoutMs = 60_000,
): Promise<RestartedPostgres> {
  const runAs = await postgresUser();
  const args = ['-D', join(server.dataDir, 'data'), '-p', String(server.port)];
  const settings: Record<string, string> = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: server.dataDir,
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    max_connections: '200',
    shared_buffers: '128MB',
    logging_collector: 'off',
  };
  for (const [k, v] of Object.entries(settings)) args.push('-c', `${k}=${v}`);
  const child: ChildProcess = spawn(join(findPostgresBinDir(), 'postgres'), args, {
    ...runAs,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  process.once('exit', () => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  await new Promise<void>((resolve, reject) => {
    let log = '';
    const timer = setTimeout(
      () => reject(new Error(`PostgreSQL did not restart within ${timeoutMs} ms:\n${log}`)),
      timeoutMs,
    );
    child.stderr?.on('data', (d: Buffer) => {
      log += d.toString();
      if (log.includes('database system is ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`PostgreSQL exited (${code}) while restarting:\n${log}`));
    });
  });
  child.stderr?.removeAllListeners('data');
  child.stderr?.on('data', () => {});
  const pid = child.pid as number;
  return {
    pid,
    kill: () => killPostgres(pid),
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGINT');
      await exited;
    },
  };
}
