/** pino-compatible logger shape: (object, message) or (message). */
export interface Logger {
  debug(obj: object | string, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
}

const noop = (): void => {};

/** The default: silent, so tests and libraries embedding us stay quiet. */
export const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };

/** A minimal JSON-lines logger to stderr, for the CLI and demos. */
export function createConsoleLogger(level: 'debug' | 'info' | 'warn' | 'error' = 'info'): Logger {
  const order = { debug: 10, info: 20, warn: 30, error: 40 } as const;
  const make =
    (lvl: keyof typeof order) =>
    (obj: object | string, msg?: string): void => {
      if (order[lvl] < order[level]) return;
      const fields = typeof obj === 'string' ? { msg: obj } : { ...obj, msg };
      process.stderr.write(`${JSON.stringify({ level: lvl, time: Date.now(), ...fields })}\n`);
    };
  return { debug: make('debug'), info: make('info'), warn: make('warn'), error: make('error') };
}
