/**
 * Parent side of multi-process fault suites: spawns consumer-group members
 * (member-process.ts, one OS process each, on the pinned node), signals them
 * (SIGKILL, SIGSTOP/SIGCONT, graceful SIGTERM), and feeds their reports to
 * the checkers:
 *
 * - every execution start/end → ExecutionChecker (overlaps, fenced), on arrival;
 * - every applied end → OrderChecker.observe(), in time order across members
 *   (TimeOrderedMerge), so "out of order" means out of order in real time,
 *   not in the order reports happened to reach this process.
 *
 * While a member is stopped, observe() is held back for everything handled
 * after its last report (see time-merge.ts); `counts()` is updated on arrival
 * and is the progress measure to wait on while one is stopped.
 *
 * Each start of a name is a new incarnation (`m1#1`, `m1#2`, ...): a killed
 * incarnation's unfinished executions are never matched with the next one's.
 * Only processes spawned here are signalled, always by PID; all are SIGKILLed
 * on dispose and when the test process exits.
 *
 * Usage (see test/transports/nats/ordering.fault.ts):
 *
 *   await using members = createMembers({ checker: createOrderChecker() });
 *   await members.start('m1', { topic, bus: { transport: 'nats', nats: { servers } }, subscribe: { group } });
 *   // publish with fault-load.ts (expect/acknowledged go to members.checker), inject faults:
 *   await members.kill('m1'); await members.restart('m1'); await members.stop('m2'); ...
 *   await members.waitUntil(() => members.checker.outstanding() === 0, 120_000, 'all applied');
 *   // judge members.checker.report() and members.executions.report() (overlaps)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import {
  createExecutionChecker,
  type ExecutionChecker,
  formatExecutionReport,
  formatReport,
  type OrderChecker,
} from '../../src/testing/checker.ts';
import type { HandlerBehaviour, MemberConfig, MemberLine } from './member-process.ts';
import { waitForThreadState } from './proc-state.ts';
import { TimeOrderedMerge } from './time-merge.ts';

const MEMBER_SCRIPT = fileURLToPath(new URL('./member-process.ts', import.meta.url));
const MAX_STDERR_CHARS = 64 * 1024;

export interface MemberSpec {
  readonly topic: string;
  /** createEventBus options (JSON) without clientId, e.g. `{ transport: 'nats', nats: { servers } }`. */
  readonly bus: Readonly<Record<string, unknown>>;
  /** subscribeEnvelope options (JSON): group, actors, ... Members of one group need the same `group`. */
  readonly subscribe?: Readonly<Record<string, unknown>>;
  readonly handler?: HandlerBehaviour;
  /** Graceful close deadline inside the member. Default 10 s. */
  readonly closeTimeoutMs?: number;
}

export interface MemberCounts {
  started: number;
  finished: number;
  applied: number;
  fenced: number;
}

export interface MembersOptions {
  /** Receives observe() for every applied execution, in time order. */
  readonly checker: OrderChecker;
  /** Receives every start and end; default: a new one (see `members.executions`). */
  readonly executions?: ExecutionChecker;
  /** How long start() waits for a member to subscribe. Default 30 s. */
  readonly readyTimeoutMs?: number;
}

interface AppliedEnd {
  readonly t: bigint;
  readonly key: string;
  readonly id: string;
  readonly index: number;
}

interface Incarnation {
  readonly label: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Exited and every stdout line handled. */
  readonly closed: Promise<void>;
  ready: boolean;
  exited: boolean;
  stopped: boolean;
  /** The harness asked it to exit (kill/close) or its spec crashes it on purpose. */
  exitExpected: boolean;
  sawClosedLine: boolean;
  exitCode: number | null;
  exitSignal: NodeJS.Signals | null;
  stderr: string;
  error: string | undefined;
}

interface Member {
  readonly name: string;
  spec: MemberSpec;
  incarnations: number;
  current: Incarnation | undefined;
  readonly counts: MemberCounts;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of live) {
      if (c.pid === undefined) continue;
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what()}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export class Members implements AsyncDisposable {
  readonly checker: OrderChecker;
  readonly executions: ExecutionChecker;
  readonly #readyTimeoutMs: number;
  readonly #members = new Map<string, Member>();
  /** Event id → the incarnations that started executing it (diagnostics for lost events). */
  readonly #startedBy = new Map<string, string[]>();
  readonly #merge: TimeOrderedMerge<AppliedEnd>;
  readonly #listeners = new Set<() => void>();
  /** Members that exited without being asked to: every wait fails fast with their story. */
  readonly #unexpectedExits: string[] = [];

  constructor(options: MembersOptions) {
    this.checker = options.checker;
    this.executions = options.executions ?? createExecutionChecker();
    this.#readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
    this.#merge = new TimeOrderedMerge<AppliedEnd>((ends) => {
      for (const e of ends) this.checker.observe(e.id, e.key, e.index);
    });
  }

  /** Spawns (or re-spawns) member `name`; resolves once it has subscribed. */
  async start(name: string, spec?: MemberSpec): Promise<void> {
    let member = this.#members.get(name);
    if (member?.current && !member.current.exited) throw new Error(`member ${name} is already running`);
    if (member === undefined) {
      if (spec === undefined) throw new Error(`member ${name}: the first start needs a spec`);
      member = { name, spec, incarnations: 0, current: undefined, counts: emptyCounts() };
      this.#members.set(name, member);
    } else if (spec !== undefined) {
      member.spec = spec;
    }
    const incarnation = this.#spawn(member);
    const ready = new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (incarnation.ready) {
          this.#listeners.delete(check);
          resolve();
        } else if (incarnation.exited) {
          this.#listeners.delete(check);
          reject(
            new Error(`member ${incarnation.label} exited before it was ready: ${this.#story(incarnation)}`),
          );
        }
      };
      this.#listeners.add(check);
    });
    try {
      await withTimeout(ready, this.#readyTimeoutMs, () => `member ${incarnation.label} not ready`);
    } catch (error) {
      await this.#forceExit(incarnation);
      throw error;
    }
  }

  #spawn(member: Member): Incarnation {
    member.incarnations++;
    const label = `${member.name}#${member.incarnations}`;
    const config: MemberConfig = {
      name: member.name,
      topic: member.spec.topic,
      bus: member.spec.bus,
      ...(member.spec.subscribe ? { subscribe: member.spec.subscribe } : {}),
      ...(member.spec.handler ? { handler: member.spec.handler } : {}),
      ...(member.spec.closeTimeoutMs ? { closeTimeoutMs: member.spec.closeTimeoutMs } : {}),
    };
    // Nothing this process reports can be older than now.
    this.#merge.open(label, process.hrtime.bigint());
    // process.execPath: the pinned node that runs the tests (TypeScript type stripping).
    const child = spawn(process.execPath, [MEMBER_SCRIPT, JSON.stringify(config)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    if (child.pid === undefined) {
      // spawn failed (its 'error' follows): never signal an unknown PID.
      child.once('error', () => {});
      this.#merge.close(label);
      throw new Error(`member ${label}: could not spawn ${process.execPath}`);
    }
    track(child);
    let markClosed!: () => void;
    const incarnation: Incarnation = {
      label,
      child,
      pid: child.pid,
      closed: new Promise<void>((resolve) => {
        markClosed = resolve;
      }),
      ready: false,
      exited: false,
      stopped: false,
      exitExpected: member.spec.handler?.crashAtExecution !== undefined,
      sawClosedLine: false,
      exitCode: null,
      exitSignal: null,
      stderr: '',
      error: undefined,
    };
    member.current = incarnation;
    child.stderr?.setEncoding('utf8');
    // MEMBER_LOG_DIR: every incarnation's whole stderr (its bus logs at debug, see
    // member-process.ts) in `<dir>/<name>-<pid>.log`; a pipe keeps what a killed child wrote.
    const logDir = process.env.MEMBER_LOG_DIR;
    const logFile = logDir ? join(logDir, `${member.name}-${child.pid}.log`) : undefined;
    child.stderr?.on('data', (chunk: string) => {
      if (logFile !== undefined) appendFileSync(logFile, chunk);
      incarnation.stderr += chunk;
      if (incarnation.stderr.length > MAX_STDERR_CHARS) {
        incarnation.stderr = incarnation.stderr.slice(-MAX_STDERR_CHARS / 2);
      }
    });
    // EPIPE when the child is gone before reading stdin: nothing to do.
    child.stdin?.on('error', () => {});
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream, crlfDelay: Infinity });
    lines.on('line', (line) => this.#onLine(member, incarnation, line));
    child.once('error', (error) => {
      incarnation.error = `spawn failed: ${error.message}`;
    });
    // 'close' comes after the exit and after stdout ended: every report has been handled.
    child.once('close', (code, signal) => {
      incarnation.exited = true;
      incarnation.exitCode = code;
      incarnation.exitSignal = signal;
      this.#merge.close(label);
      // One that never got ready is reported by start() itself.
      if (!incarnation.exitExpected && incarnation.ready) {
        this.#unexpectedExits.push(`${label}: ${this.#story(incarnation)}`);
      }
      markClosed();
      this.#notify();
    });
    return incarnation;
  }

  #onLine(member: Member, incarnation: Incarnation, line: string): void {
    let message: MemberLine;
    try {
      message = JSON.parse(line) as MemberLine;
    } catch {
      incarnation.stderr += `[stdout] ${line}\n`; // something else wrote to stdout: keep it for diagnostics
      return;
    }
    switch (message.type) {
      case 'batch': {
        const ends: AppliedEnd[] = [];
        const counts = member.counts;
        for (const event of message.events) {
          const t = BigInt(event[4]);
          if (event[0] === 's') {
            counts.started++;
            this.executions.started(event[1], event[2], incarnation.label, t);
            const by = this.#startedBy.get(event[2]);
            if (by === undefined) this.#startedBy.set(event[2], [incarnation.label]);
            else by.push(incarnation.label);
          } else {
            counts.finished++;
            const applied = event[5] === 1;
            if (applied) {
              counts.applied++;
              ends.push({ t, key: event[1], id: event[2], index: event[3] });
            } else {
              counts.fenced++;
            }
            this.executions.finished(event[1], event[2], incarnation.label, t, applied);
          }
        }
        this.#merge.push(incarnation.label, ends, BigInt(message.now));
        break;
      }
      case 'ready':
        incarnation.ready = true;
        break;
      case 'closed':
        incarnation.sawClosedLine = true;
        break;
      case 'error':
        incarnation.error = message.message;
        break;
    }
    this.#notify();
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) listener();
  }

  #member(name: string): Member {
    const member = this.#members.get(name);
    if (member === undefined) throw new Error(`no member ${name}`);
    return member;
  }

  #running(name: string): Incarnation {
    const incarnation = this.#member(name).current;
    if (incarnation === undefined || incarnation.exited) throw new Error(`member ${name} is not running`);
    return incarnation;
  }

  #story(incarnation: Incarnation): string {
    const how = incarnation.exitSignal ?? `code ${incarnation.exitCode}`;
    const error = incarnation.error ? ` error: ${incarnation.error}` : '';
    const stderr = incarnation.stderr.trim() ? ` stderr: ${incarnation.stderr.trim().slice(-2_000)}` : '';
    return `exited (${how})${error}${stderr}`;
  }

  /** PID of the running incarnation of `name`, undefined when it is not running. */
  pid(name: string): number | undefined {
    const incarnation = this.#members.get(name)?.current;
    return incarnation && !incarnation.exited ? incarnation.pid : undefined;
  }

  running(name: string): boolean {
    return this.pid(name) !== undefined;
  }

  /**
   * Sends `signal` to the running incarnation of `name`. SIGSTOP/SIGCONT
   * resolve once it is really stopped/running; any other signal once it has
   * exited and its last reports are in (SIGKILL after 10 s if it ignores it).
   */
  async kill(name: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (signal === 'SIGSTOP') return this.stop(name);
    if (signal === 'SIGCONT') return this.continue(name);
    const incarnation = this.#running(name);
    incarnation.exitExpected = true;
    process.kill(incarnation.pid, signal);
    if (incarnation.stopped && signal !== 'SIGKILL') process.kill(incarnation.pid, 'SIGCONT');
    try {
      await withTimeout(
        incarnation.closed,
        10_000,
        () => `member ${incarnation.label} did not exit on ${signal}`,
      );
    } catch (error) {
      await this.#forceExit(incarnation);
      throw error;
    }
  }

  /** SIGSTOP; resolves once every thread of the member is stopped. */
  async stop(name: string): Promise<void> {
    const incarnation = this.#running(name);
    process.kill(incarnation.pid, 'SIGSTOP');
    incarnation.stopped = true;
    await waitForThreadState(incarnation.pid, true, `member ${incarnation.label}`);
  }

  /** SIGCONT; resolves once every thread of the member runs again. */
  async continue(name: string): Promise<void> {
    const incarnation = this.#running(name);
    process.kill(incarnation.pid, 'SIGCONT');
    incarnation.stopped = false;
    await waitForThreadState(incarnation.pid, false, `member ${incarnation.label}`);
  }

  /**
   * Graceful close: SIGTERM → the member closes its bus (in-flight handlers
   * finish and are reported) and exits 0. Rejects (after a SIGKILL) when it
   * does not exit cleanly within `timeoutMs`.
   */
  async close(name: string, timeoutMs = 20_000): Promise<void> {
    const incarnation = this.#running(name);
    incarnation.exitExpected = true;
    process.kill(incarnation.pid, 'SIGTERM');
    if (incarnation.stopped) process.kill(incarnation.pid, 'SIGCONT');
    incarnation.stopped = false;
    try {
      await withTimeout(incarnation.closed, timeoutMs, () => `member ${incarnation.label} did not close`);
    } catch (error) {
      await this.#forceExit(incarnation);
      throw error;
    }
    if (incarnation.exitCode !== 0 || !incarnation.sawClosedLine) {
      throw new Error(`member ${incarnation.label} did not close cleanly: ${this.#story(incarnation)}`);
    }
  }

  /** Stops the running incarnation (SIGKILL, or gracefully with 'SIGTERM') and starts a new one. */
  async restart(name: string, how: 'SIGKILL' | 'SIGTERM' = 'SIGKILL'): Promise<void> {
    if (this.running(name)) {
      if (how === 'SIGTERM') await this.close(name);
      else await this.kill(name, 'SIGKILL');
    }
    await this.start(name);
  }

  /** Executions reported so far (on arrival, not time-gated): of one member, or of all. */
  counts(name?: string): MemberCounts {
    if (name !== undefined) return { ...this.#member(name).counts };
    const total = emptyCounts();
    for (const m of this.#members.values()) {
      total.started += m.counts.started;
      total.finished += m.counts.finished;
      total.applied += m.counts.applied;
      total.fenced += m.counts.fenced;
    }
    return total;
  }

  /** Applied ends received but held back from observe() by a member that has not reported past them. */
  held(): number {
    return this.#merge.held();
  }

  /** Both checkers' reports, per-member counts and what is held back, on one line. */
  summary(): string {
    const report = this.checker.report();
    // Who started each lost event (an incarnation killed mid-handler, or nobody: never delivered).
    const lostStarts = report.examples.lost
      .map((example) => /\(([^)]+)\)$/.exec(example)?.[1])
      .filter((id): id is string => id !== undefined)
      .map((id) => `${id.slice(0, 8)} started by ${this.#startedBy.get(id)?.join(',') ?? 'nobody'}`);
    const lostNote = lostStarts.length > 0 ? ` | lost: ${lostStarts.join('; ')}` : '';
    const perMember = [...this.#members.values()]
      .map((m) => `${m.name}(x${m.incarnations}): applied=${m.counts.applied} fenced=${m.counts.fenced}`)
      .join(' ');
    return (
      `${formatReport(report)} | ${formatExecutionReport(this.executions.report())} | ` +
      `held=${this.held()} | ${perMember}${lostNote}`
    );
  }

  /**
   * Resolves once `condition` holds; it is re-checked after every report and
   * every exit. Rejects with the summary after `timeoutMs`, and at once when a
   * member exits without being asked to.
   */
  waitUntil(condition: () => boolean, timeoutMs: number, what = 'condition'): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const finish = (error?: Error): void => {
        clearTimeout(timer);
        this.#listeners.delete(check);
        if (error) reject(error);
        else resolve();
      };
      const check = (): void => {
        if (this.#unexpectedExits.length > 0) {
          finish(
            new Error(
              `waiting for ${what}: a member exited unexpectedly: ${this.#unexpectedExits.join('; ')}`,
            ),
          );
        } else if (condition()) {
          finish();
        }
      };
      const timer = setTimeout(
        () =>
          finish(
            new Error(
              `Timed out after ${timeoutMs} ms waiting for ${what}: ${this.summary()}${this.#logTails()}`,
            ),
          ),
        timeoutMs,
      );
      this.#listeners.add(check);
      check();
    });
  }

  /** The end of every member's log, for a timeout's message (what a lost event's lane went through). */
  #logTails(): string {
    const tails: string[] = [];
    for (const name of this.#members.keys()) {
      const log = this.logs(name).trim();
      if (log !== '') tails.push(`\n--- ${name} (last incarnation) log tail:\n${log.slice(-3_000)}`);
    }
    return tails.join('');
  }

  /** stderr (and stray stdout) of the current or last incarnation of `name`. */
  logs(name: string): string {
    return this.#member(name).current?.stderr ?? '';
  }

  async #forceExit(incarnation: Incarnation): Promise<void> {
    incarnation.exitExpected = true;
    if (incarnation.exited) return;
    try {
      process.kill(incarnation.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    // A SIGKILLed process exits; its pipes close with it.
    await withTimeout(incarnation.closed, 10_000, () => `member ${incarnation.label} survived SIGKILL`);
  }

  /** SIGKILLs every member still running and waits until each has exited. */
  async killAll(): Promise<void> {
    const running = [...this.#members.values()]
      .map((m) => m.current)
      .filter((i): i is Incarnation => i !== undefined && !i.exited);
    await Promise.all(running.map((i) => this.#forceExit(i)));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.killAll();
  }
}

function emptyCounts(): MemberCounts {
  return { started: 0, finished: 0, applied: 0, fenced: 0 };
}

export function createMembers(options: MembersOptions): Members {
  return new Members(options);
}
