/**
 * Two small chart kinds as inline SVG strings (no scripts, no external
 * resources): grouped bars (linear or log scale, optional threshold lines)
 * and lines over time (optional shaded bands). Tooltips are SVG <title>s.
 */

export function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const FONT = 'font-family="system-ui, sans-serif"';

export interface BarSeries {
  readonly name: string;
  readonly color: string;
  readonly values: readonly (number | undefined)[];
}

export interface BarChartOptions {
  readonly title: string;
  readonly categories: readonly string[];
  readonly series: readonly BarSeries[];
  readonly yLabel: string;
  readonly log?: boolean;
  readonly thresholds?: readonly { readonly value: number; readonly label: string }[];
  readonly format?: (v: number) => string;
  /** Text above each category group (e.g. a ratio). */
  readonly groupLabels?: readonly (string | undefined)[];
  readonly width?: number;
  readonly height?: number;
}

function niceStep(span: number, ticks: number): number {
  const raw = span / Math.max(1, ticks);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
}

export function compact(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toFixed(a >= 1e7 ? 0 : 1)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toFixed(a >= 1e4 ? 0 : 1)}k`;
  if (a >= 10 || a === 0) return `${Math.round(v)}`;
  return `${+v.toPrecision(2)}`;
}

interface Scale {
  readonly y: (v: number) => number;
  readonly ticks: readonly number[];
}

function scale(values: readonly number[], top: number, bottom: number, log: boolean): Scale {
  const positive = values.filter((v) => v > 0);
  if (log) {
    const lo = 10 ** Math.floor(Math.log10(Math.min(...positive, 1)));
    const hi = 10 ** Math.ceil(Math.log10(Math.max(...positive, lo * 10)));
    const span = Math.log10(hi) - Math.log10(lo);
    const ticks: number[] = [];
    for (let t = lo; t <= hi * 1.0001; t *= 10) ticks.push(t);
    return {
      y: (v) => bottom - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / span) * (bottom - top),
      ticks,
    };
  }
  const max = Math.max(...values, 0) || 1;
  const step = niceStep(max, 5);
  const hi = Math.ceil((max * 1.08) / step) * step;
  const ticks: number[] = [];
  for (let t = 0; t <= hi + step / 2; t += step) ticks.push(t);
  return { y: (v) => bottom - (v / hi) * (bottom - top), ticks };
}

function legend(items: readonly { name: string; color: string }[], x: number, y: number): string {
  let cx = x;
  return items
    .map((item) => {
      const s = `<rect x="${cx}" y="${y - 9}" width="11" height="11" fill="${item.color}"/><text x="${cx + 15}" y="${y}" font-size="12" ${FONT}>${esc(item.name)}</text>`;
      cx += 30 + item.name.length * 7;
      return s;
    })
    .join('');
}

export function barChart(o: BarChartOptions): string {
  const width = o.width ?? 760;
  const height = o.height ?? 320;
  const left = 70;
  const right = 16;
  const top = 46;
  const bottom = height - 44;
  const format = o.format ?? compact;
  const all = o.series.flatMap((s) => s.values.filter((v): v is number => v !== undefined));
  const thresholds = o.thresholds ?? [];
  const sc = scale([...all, ...thresholds.map((t) => t.value)], top, bottom, o.log === true);
  const groupW = (width - left - right) / Math.max(1, o.categories.length);
  const barW = Math.min(36, (groupW * 0.8) / Math.max(1, o.series.length));
  const parts: string[] = [];
  parts.push(`<text x="${left}" y="18" font-size="14" font-weight="600" ${FONT}>${esc(o.title)}</text>`);
  parts.push(legend(o.series, left, 36));
  for (const t of sc.ticks) {
    const y = sc.y(t).toFixed(1);
    parts.push(`<line x1="${left}" x2="${width - right}" y1="${y}" y2="${y}" stroke="#e3e3e3"/>`);
    parts.push(
      `<text x="${left - 6}" y="${+y + 4}" font-size="11" text-anchor="end" ${FONT}>${esc(format(t))}</text>`,
    );
  }
  parts.push(
    `<text transform="translate(14 ${(top + bottom) / 2}) rotate(-90)" font-size="11" text-anchor="middle" ${FONT}>${esc(o.yLabel)}</text>`,
  );
  o.categories.forEach((cat, ci) => {
    const gx = left + ci * groupW + (groupW - barW * o.series.length) / 2;
    o.series.forEach((s, si) => {
      const v = s.values[ci];
      if (v === undefined) return;
      const x = gx + si * barW;
      const y = sc.y(v);
      const h = Math.max(0.5, bottom - y);
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${(bottom - h).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${h.toFixed(1)}" fill="${s.color}"><title>${esc(`${s.name} · ${cat}: ${format(v)}`)}</title></rect>`,
      );
      if (barW >= 22) {
        parts.push(
          `<text x="${(x + barW / 2 - 1).toFixed(1)}" y="${(bottom - h - 3).toFixed(1)}" font-size="9" text-anchor="middle" ${FONT}>${esc(format(v))}</text>`,
        );
      }
    });
    const cx = left + ci * groupW + groupW / 2;
    parts.push(
      `<text x="${cx.toFixed(1)}" y="${bottom + 16}" font-size="12" text-anchor="middle" ${FONT}>${esc(cat)}</text>`,
    );
    const label = o.groupLabels?.[ci];
    if (label) {
      parts.push(
        `<text x="${cx.toFixed(1)}" y="${bottom + 32}" font-size="11" font-weight="600" text-anchor="middle" fill="#333" ${FONT}>${esc(label)}</text>`,
      );
    }
  });
  for (const t of thresholds) {
    const y = sc.y(t.value).toFixed(1);
    parts.push(
      `<line x1="${left}" x2="${width - right}" y1="${y}" y2="${y}" stroke="#c0392b" stroke-dasharray="6 4"/><text x="${width - right - 4}" y="${+y - 4}" font-size="11" fill="#c0392b" text-anchor="end" ${FONT}>${esc(t.label)}</text>`,
    );
  }
  parts.push(`<line x1="${left}" x2="${width - right}" y1="${bottom}" y2="${bottom}" stroke="#888"/>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${esc(o.title)}">${parts.join('')}</svg>`;
}

export interface LineSeries {
  readonly name: string;
  readonly color: string;
  readonly points: readonly (readonly [number, number])[];
}

export interface LineChartOptions {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly LineSeries[];
  readonly bands?: readonly {
    readonly from: number;
    readonly to: number;
    readonly label: string;
    readonly color: string;
  }[];
  readonly bandLegend?: readonly { readonly name: string; readonly color: string }[];
  readonly formatY?: (v: number) => string;
  readonly width?: number;
  readonly height?: number;
}

export function lineChart(o: LineChartOptions): string {
  const width = o.width ?? 980;
  const height = o.height ?? 320;
  const left = 70;
  const right = 16;
  const top = 46;
  const bottom = height - 40;
  const formatY = o.formatY ?? compact;
  const xs = o.series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = o.series.flatMap((s) => s.points.map((p) => p[1]));
  const xMin = Math.min(...xs, 0);
  const xMax = Math.max(...xs, xMin + 1);
  const sc = scale(ys, top, bottom, false);
  const x = (v: number) => left + ((v - xMin) / (xMax - xMin)) * (width - left - right);
  const parts: string[] = [];
  parts.push(`<text x="${left}" y="18" font-size="14" font-weight="600" ${FONT}>${esc(o.title)}</text>`);
  parts.push(legend([...o.series, ...(o.bandLegend ?? [])], left, 36));
  for (const b of o.bands ?? []) {
    parts.push(
      `<rect x="${x(b.from).toFixed(1)}" y="${top}" width="${Math.max(0.5, x(b.to) - x(b.from)).toFixed(1)}" height="${bottom - top}" fill="${b.color}" opacity="0.35"><title>${esc(b.label)}</title></rect>`,
    );
  }
  for (const t of sc.ticks) {
    const y = sc.y(t).toFixed(1);
    parts.push(`<line x1="${left}" x2="${width - right}" y1="${y}" y2="${y}" stroke="#e3e3e3"/>`);
    parts.push(
      `<text x="${left - 6}" y="${+y + 4}" font-size="11" text-anchor="end" ${FONT}>${esc(formatY(t))}</text>`,
    );
  }
  const xStep = niceStep(xMax - xMin, 10);
  for (let t = Math.ceil(xMin / xStep) * xStep; t <= xMax; t += xStep) {
    parts.push(
      `<text x="${x(t).toFixed(1)}" y="${bottom + 16}" font-size="11" text-anchor="middle" ${FONT}>${esc(compact(t))}</text>`,
    );
  }
  parts.push(
    `<text x="${(left + width - right) / 2}" y="${bottom + 32}" font-size="11" text-anchor="middle" ${FONT}>${esc(o.xLabel)}</text>`,
  );
  parts.push(
    `<text transform="translate(14 ${(top + bottom) / 2}) rotate(-90)" font-size="11" text-anchor="middle" ${FONT}>${esc(o.yLabel)}</text>`,
  );
  for (const s of o.series) {
    const d = s.points
      .map((p, i) => `${i === 0 ? 'M' : 'L'}${x(p[0]).toFixed(1)} ${sc.y(p[1]).toFixed(1)}`)
      .join('');
    parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.6"/>`);
  }
  parts.push(`<line x1="${left}" x2="${width - right}" y1="${bottom}" y2="${bottom}" stroke="#888"/>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${esc(o.title)}">${parts.join('')}</svg>`;
}
