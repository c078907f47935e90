/**
 * Envelope timestamps: RFC 3339 as the Go SDK reads them (`time.Time`'s JSON
 * form), so whatever we accept at publish a Go consumer accepts too.
 *
 * Accepted: `YYYY-MM-DDTHH:MM:SS[.fraction]` followed by `Z` or `±HH:MM`, with
 * 1 to 9 fraction digits (nanoseconds), upper-case `T`/`Z`, real calendar
 * dates, seconds 00–59. RFC 3339 also allows lower-case `t`/`z` and leap
 * second 60; Go's parser refuses them, so we do too. The string is kept as
 * written (offset and every fraction digit): a JS Date holds milliseconds only,
 * so converting would round a Go producer's nanoseconds away.
 */

const RFC_3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:Z|[+-](\d{2}):(\d{2}))$/;

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** True when `value` is an RFC 3339 timestamp a Go `time.Time` parses (see the module comment). */
export function isRfc3339(value: string): boolean {
  const m = RFC_3339.exec(value);
  if (m === null) return false;
  const year = Number(m[1]);
  const month = Number(m[2]);
  if (month < 1 || month > 12) return false;
  const day = Number(m[3]);
  if (day < 1 || day > daysInMonth(year, month)) return false;
  if (Number(m[4]) > 23 || Number(m[5]) > 59 || Number(m[6]) > 59) return false;
  // Offset groups are absent for `Z`: Number(undefined) is NaN, and NaN > n is false.
  return !(Number(m[7]) > 23 || Number(m[8]) > 59);
}

/**
 * What earlier versions of this package checked when decoding (a date and an
 * hour:minute): only for bodies in the old camelCase format, so events already
 * in streams stay readable.
 */
export function isLegacyTimestamp(value: string): boolean {
  return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(value);
}

let lastNowMs = 0;
let lastNowText = '';

/** The current time as RFC 3339 (UTC, milliseconds), formatted once per millisecond: every publish calls it. */
export function nowRfc3339(): string {
  const now = Date.now();
  if (now !== lastNowMs) {
    lastNowMs = now;
    lastNowText = new Date(now).toISOString();
  }
  return lastNowText;
}

/**
 * A Date as RFC 3339 (UTC, milliseconds). `toISOString()` is RFC 3339 for
 * years 0000–9999 only: beyond that it writes a six-digit signed year, which
 * neither RFC 3339 nor Go accepts, so the caller must reject such dates.
 */
export function dateToRfc3339(date: Date): string | undefined {
  const time = date.getTime();
  if (Number.isNaN(time)) return undefined;
  const text = date.toISOString();
  return isRfc3339(text) ? text : undefined;
}
