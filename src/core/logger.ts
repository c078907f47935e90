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

/**
 * A plain object for an error: JSON.stringify gives `{}` for an Error (its
 * fields are not enumerable), which lost every handler failure's message.
 * Reads nothing that could throw without a guard; causes nest (bounded).
 */
export function serialiseError(error: Error, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const read = (name: string): unknown => {
    try {
      return (error as unknown as Record<string, unknown>)[name];
    } catch {
      return undefined;
    }
  };
  for (const name of ['name', 'message', 'code', 'retryable', 'stack']) {
    const value = read(name);
    if (value !== undefined) out[name] = value;
  }
  const cause = read('cause');
  if (cause !== undefined) {
    out.cause = cause instanceof Error && depth < 5 ? serialiseError(cause, depth + 1) : safeValue(cause);
  }
  if (error instanceof AggregateError && depth < 5) {
    out.errors = error.errors
      .slice(0, 10)
      .map((e: unknown) => (e instanceof Error ? serialiseError(e, depth + 1) : safeValue(e)));
  }
  return out;
}

function safeValue(value: unknown): unknown {
  if (value === null || typeof value !== 'object')
    return typeof value === 'bigint' ? value.toString() : value;
  try {
    return String(value);
  } catch {
    return '[unprintable]';
  }
}

/** JSON replacer: errors as plain objects, bigints as strings, cycles cut. */
function replacer(): (key: string, value: unknown) => unknown {
  const seen = new WeakSet<object>();
  return (_key, value) => {
    if (typeof value === 'bigint') return value.toString();
    if (value instanceof Error) return serialiseError(value);
    if (typeof value === 'object' && value !== null) {
      if (seen.has(value)) return '[circular]';
      seen.add(value);
    }
    return value;
  };
}

function line(fields: Record<string, unknown>): string {
  try {
    return JSON.stringify(fields, replacer());
  } catch (error) {
    // A hostile field (throwing getter, too deep): log that, never throw from a log call.
    return JSON.stringify({
      level: fields.level,
      time: fields.time,
      msg: fields.msg,
      logError: String(error),
    });
  }
}

/** A minimal JSON-lines logger to stderr, for the CLI and demos. Errors are written out (message, code, stack, cause). */
export function createConsoleLogger(level: 'debug' | 'info' | 'warn' | 'error' = 'info'): Logger {
  const order = { debug: 10, info: 20, warn: 30, error: 40 } as const;
  const make =
    (lvl: keyof typeof order) =>
    (obj: object | string, msg?: string): void => {
      if (order[lvl] < order[level]) return;
      let text: string;
      try {
        const fields = typeof obj === 'string' ? { msg: obj } : { ...obj, msg };
        text = line({ level: lvl, time: Date.now(), ...fields });
      } catch (error) {
        text = line({ level: lvl, time: Date.now(), msg, logError: String(error) });
      }
      process.stderr.write(`${text}\n`);
    };
  return { debug: make('debug'), info: make('info'), warn: make('warn'), error: make('error') };
}
