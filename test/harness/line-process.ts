/**
 * A child process whose stdout is read line by line (piped, not a TTY), with
 * event-driven waits: for a line matching a pattern, for its exit. Children
 * still running when the test process exits are SIGKILLed, by PID.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { until } from '../../src/testing/waiters.ts';

export interface LineProcess {
  readonly child: ChildProcess;
  /** stdout lines so far. */
  readonly lines: readonly string[];
  readonly stderr: () => string;
  /** Resolves once a stdout line matches (or the process exited: check `lines` after). */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<void>;
  /** Resolves with the exit code (null when ended by a signal) once the process has exited. */
  exited(timeoutMs: number): Promise<number | null>;
  /** stdout and stderr, for assertion messages. */
  output(): string;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * SIGKILLs every child started here that is still running (for `after`: a
 * child left running by a failed test would keep the test process alive).
 */
export function killLineProcesses(): void {
  for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

export function startLineProcess(
  args: readonly string[],
  options: {
    readonly env?: NodeJS.ProcessEnv;
    readonly cwd?: string;
    /** Called with each stdout line as it arrives. */
    readonly onLine?: (line: string) => void;
  } = {},
): LineProcess {
  const child = spawn(process.execPath, [...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: options.env ?? process.env,
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  });
  live.add(child);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', killLineProcesses);
  }
  const lines: string[] = [];
  let stderr = '';
  let partial = '';
  let exit: { code: number | null } | undefined;
  const watchers = new Set<{ check(): void }>();
  const notify = (): void => {
    for (const w of watchers) w.check();
  };
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      lines.push(line);
      options.onLine?.(line);
    }
    notify();
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  // 'close': the exit code is known and stdout is read to its end.
  child.once('close', (code) => {
    if (partial !== '') {
      lines.push(partial);
      options.onLine?.(partial);
    }
    exit = { code };
    live.delete(child);
    notify();
  });
  const output = (): string => `stdout:\n${lines.join('\n')}\nstderr:\n${stderr}`;
  const wait = async (condition: () => boolean, what: string, timeoutMs: number): Promise<void> => {
    const signal = until(condition, () => `${what}; ${output()}`);
    watchers.add(signal);
    try {
      await signal.wait(timeoutMs);
    } finally {
      watchers.delete(signal);
    }
  };
  return {
    child,
    lines,
    stderr: () => stderr,
    output,
    waitForLine: (pattern, timeoutMs) =>
      wait(
        () => lines.some((l) => pattern.test(l)) || exit !== undefined,
        `a line matching ${pattern}`,
        timeoutMs,
      ),
    exited: async (timeoutMs) => {
      await wait(() => exit !== undefined, 'the process to exit', timeoutMs);
      return exit?.code ?? null;
    },
  };
}
