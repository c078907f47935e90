/**
 * What `eventbus demo` shows while it runs, hand-written so the package needs
 * no progress-bar dependency.
 *
 * - Phase lines are plain lines, printed the moment a phase starts (the first
 *   one before PGlite's 10–20 s start-up, so the screen is never blank).
 * - On a terminal a live line below them is redrawn in place: a bar of the
 *   events handled out of the known total, and the published / written counts.
 *   The cursor is hidden meanwhile and always shown again by `close()` (also on
 *   Ctrl-C and on process exit).
 * - Piped or redirected (not a TTY), the same counts come as a plain
 *   `progress` line at once and then every `plainIntervalMs`, so a log shows
 *   the run advancing.
 */

/** What the demo counts, each out of the same known total; none can exceed it. */
export interface ProgressCounts {
  readonly total: number;
  /** Rows committed to the outbox by the order service. */
  readonly written: number;
  /** Events the broker acknowledged (the relay's publishes). */
  readonly published: number;
  /** Events the projection handled, plus the one dead-lettered. */
  readonly handled: number;
}

export interface DemoDisplay {
  /** A line of its own (a phase starting, a result). */
  line(text: string): void;
  /** Starts showing counts: at once, then live (TTY) or every interval (plain). */
  startCounting(read: () => ProgressCounts): void;
  /** Shows the counts one last time as a plain line and stops. */
  stopCounting(): void;
  /** Stops timers and restores the cursor. Idempotent. */
  close(): void;
}

export interface DisplayTarget {
  write(text: string): unknown;
  /** Terminal width: the live line is cut to fit (a wrapped line could not be redrawn in place). */
  readonly columns?: number;
}

export interface DisplayOptions {
  /** 'live': redraw one line in place (a terminal); 'plain': lines only. */
  readonly mode: 'live' | 'plain';
  /** Periodic progress lines (plain mode), and the live line (live mode). Default true. */
  readonly progress?: boolean;
  readonly plainIntervalMs?: number;
  readonly liveIntervalMs?: number;
}

const HIDE_CURSOR = '\x1b[?25l';
const SHOW_CURSOR = '\x1b[?25h';
const CLEAR_LINE = '\r\x1b[2K';
const BAR_WIDTH = 30;

const number = new Intl.NumberFormat('en-US');
export const formatCount = (n: number): string => number.format(Math.round(n));

/** `progress handled 5,000/10,005 (49%) · published 6,100 · written 8,000 · 3.1 s` */
export function formatProgress(c: ProgressCounts, seconds: number): string {
  const percent = c.total === 0 ? 100 : Math.floor((c.handled / c.total) * 100);
  return (
    `progress handled ${formatCount(c.handled)}/${formatCount(c.total)} (${percent}%)` +
    ` · published ${formatCount(c.published)} · written ${formatCount(c.written)} · ${seconds.toFixed(1)} s`
  );
}

function bar(c: ProgressCounts): string {
  const ratio = c.total === 0 ? 1 : Math.min(1, c.handled / c.total);
  const filled = Math.round(ratio * BAR_WIDTH);
  return `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}]`;
}

export function createDemoDisplay(target: DisplayTarget, options: DisplayOptions): DemoDisplay {
  const live = options.mode === 'live';
  const showProgress = options.progress ?? true;
  let read: (() => ProgressCounts) | undefined;
  let countingSince = 0;
  let timer: NodeJS.Timeout | undefined;
  let liveLineShown = false;
  let cursorHidden = false;
  let closed = false;

  const restoreCursor = (): void => {
    if (!cursorHidden) return;
    cursorHidden = false;
    target.write(SHOW_CURSOR);
  };
  // A crash or process.exit() between hide and close() must not leave the terminal without a cursor.
  const onExit = (): void => {
    if (liveLineShown) target.write(CLEAR_LINE);
    restoreCursor();
  };
  if (live) process.once('exit', onExit);

  const progressText = (): string | undefined =>
    read === undefined ? undefined : formatProgress(read(), (performance.now() - countingSince) / 1000);

  const drawLive = (): void => {
    const text = progressText();
    if (text === undefined || !read) return;
    if (!cursorHidden) {
      cursorHidden = true;
      target.write(HIDE_CURSOR);
    }
    const width = Math.max(20, (target.columns ?? 120) - 1);
    target.write(`${CLEAR_LINE}${`${bar(read())} ${text}`.slice(0, width)}`);
    liveLineShown = true;
  };
  const clearLive = (): void => {
    if (!liveLineShown) return;
    target.write(CLEAR_LINE);
    liveLineShown = false;
  };
  const stopTimer = (): void => {
    if (timer !== undefined) clearInterval(timer);
    timer = undefined;
  };

  return {
    line(text) {
      if (closed) return;
      clearLive();
      target.write(`${text}\n`);
      if (live && timer !== undefined) drawLive();
    },
    startCounting(next) {
      if (closed) return;
      read = next;
      countingSince = performance.now();
      if (!showProgress) return;
      if (live) {
        drawLive();
        timer = setInterval(drawLive, options.liveIntervalMs ?? 100);
      } else {
        target.write(`${progressText()}\n`);
        timer = setInterval(() => target.write(`${progressText()}\n`), options.plainIntervalMs ?? 1000);
      }
      timer.unref();
    },
    stopCounting() {
      if (closed || read === undefined) return;
      stopTimer();
      clearLive();
      target.write(`${progressText()}\n`);
      read = undefined;
    },
    close() {
      if (closed) return;
      stopTimer();
      clearLive();
      restoreCursor();
      closed = true;
      process.off('exit', onExit);
    },
  };
}
