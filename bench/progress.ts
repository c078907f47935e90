/**
 * One progress bar per phase, on stderr, only when stderr is a TTY (and not
 * disabled). The bar polls a counter on its own timer, so the measured loops
 * never pay for rendering; when quiet, a phase prints nothing at all.
 */
import cliProgress from 'cli-progress';

export interface Phase {
  /** Stops the bar (final value drawn). Idempotent. */
  stop(): void;
}

export interface Progress {
  /** Starts a bar labelled `label` that shows `read()` out of `total`. */
  phase(label: string, total: number, read: () => number): Phase;
  /** A one-line note on stderr (only when the bars are on). */
  note(text: string): void;
}

const quietPhase: Phase = { stop() {} };

export function createProgress(enabled: boolean): Progress {
  if (!enabled) return { phase: () => quietPhase, note() {} };
  return {
    phase(label, total, read) {
      const bar = new cliProgress.SingleBar(
        {
          format: `${label.padEnd(34)} |{bar}| {value}/{total} {rate}`,
          hideCursor: true,
          clearOnComplete: false,
          fps: 5,
          stream: process.stderr,
        },
        cliProgress.Presets.shades_classic,
      );
      const started = performance.now();
      const rate = (value: number): string => {
        const secs = (performance.now() - started) / 1000;
        return secs > 0 ? `${Math.round(value / secs).toLocaleString('en-US')} msg/s` : '';
      };
      bar.start(total, 0, { rate: '' });
      const timer = setInterval(() => {
        const value = read();
        bar.update(Math.min(value, total), { rate: rate(value) });
      }, 200);
      let stopped = false;
      return {
        stop() {
          if (stopped) return;
          stopped = true;
          clearInterval(timer);
          const value = read();
          bar.update(Math.min(value, total), { rate: rate(value) });
          bar.stop();
        },
      };
    },
    note(text) {
      process.stderr.write(`${text}\n`);
    },
  };
}
