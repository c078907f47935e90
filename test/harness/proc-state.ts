/**
 * Waiting until a signalled process is really stopped or running again.
 * kill() only queues SIGSTOP/SIGCONT; a test that acts right after must not
 * race the process, so it waits until every thread reports the state in
 * /proc/<pid>/task/<tid>/stat (Linux).
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Whether a process with this pid exists (signal 0 only checks). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Thread states of `pid`; undefined where /proc is unavailable or the process is gone. */
export function threadStates(pid: number): string[] | undefined {
  try {
    return readdirSync(`/proc/${pid}/task`).map((tid) => {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      // "tid (comm) S ...": the state follows the last ')' (comm may contain spaces).
      const close = stat.lastIndexOf(')');
      return stat.slice(close + 2, close + 3);
    });
  } catch {
    return undefined;
  }
}

const isStopped = (state: string): boolean => state === 'T' || state === 't';

/** Resolves once every thread of `pid` is stopped (or every one runs), failing after `timeoutMs`. */
export async function waitForThreadState(
  pid: number,
  stopped: boolean,
  what: string,
  timeoutMs = 5_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const states = threadStates(pid);
    if (states === undefined) return; // no /proc, or the process is gone: nothing to wait on
    if (states.length > 0 && states.every((state) => isStopped(state) === stopped)) return;
    if (Date.now() > deadline) {
      throw new Error(
        `${what} (pid ${pid}): expected every thread ${stopped ? 'stopped' : 'running'} within ${timeoutMs} ms, got states ${states.join('')}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}
