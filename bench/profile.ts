/**
 * `--profile`: CPU profiles of single runs (the inspector's V8 sampling
 * profiler, the one `node --cpu-prof` uses, started and stopped around one
 * run), written as .cpuprofile files (open in Chrome DevTools), with a
 * summary: self time by kind (idle, GC, nats.js, our code, …) and the top
 * functions overall and of our code (src/ without src/testing).
 */
import { writeFile } from 'node:fs/promises';
import { type Profiler, Session } from 'node:inspector/promises';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface ProfileEntry {
  readonly name: string;
  readonly selfMs: number;
  readonly pct: number;
}
export type ProfileSummary = ReturnType<typeof summarizeProfile>;

const root = fileURLToPath(new URL('..', import.meta.url));
const isOurs = (url: string): boolean =>
  url.includes('/src/') && !url.includes('/src/testing/') && !url.includes('/node_modules/');

function bucketOf({ functionName: fn, url }: { functionName: string; url: string }): string {
  if (fn === '(idle)') return 'idle (waiting for I/O)';
  if (fn === '(garbage collector)') return 'garbage collector';
  if (fn === '(program)') return 'V8/runtime (program)';
  if (url.includes('/node_modules/@nats-io/')) return 'nats.js client';
  if (url.includes('/node_modules/')) return 'other dependencies';
  if (url.includes('/src/testing/') || url.includes('/bench/')) return 'bench instrumentation';
  if (url.includes('/src/')) return 'our code (src/)';
  if (url.startsWith('node:')) return 'node internals (JS)';
  return url ? 'other' : `native: ${fn || '(anonymous)'}`;
}

export function summarizeProfile(profile: Profiler.Profile, label: string, file: string) {
  const selfUs = new Map<number, number>();
  const { samples = [], timeDeltas = [] } = profile;
  for (const [i, id] of samples.entries()) selfUs.set(id, (selfUs.get(id) ?? 0) + (timeDeltas[i + 1] ?? 0));
  const totalUs = profile.endTime - profile.startTime || 1;
  const entry = (name: string, us: number): ProfileEntry => ({
    name,
    selfMs: Math.round(us / 100) / 10,
    pct: Math.round((us / totalUs) * 1000) / 10,
  });
  const buckets = new Map<string, number>();
  const functions = new Map<string, { us: number; ours: boolean }>();
  for (const { id, callFrame: f } of profile.nodes) {
    const us = selfUs.get(id) ?? 0;
    if (us === 0) continue;
    buckets.set(bucketOf(f), (buckets.get(bucketOf(f)) ?? 0) + us);
    const where = f.url
      ? `${f.url.startsWith('file://') ? relative(root, fileURLToPath(f.url)) : f.url}:${f.lineNumber + 1}`
      : '(native)';
    const key = `${f.functionName || '(anonymous)'} ${where}`;
    functions.set(key, { us: (functions.get(key)?.us ?? 0) + us, ours: isOurs(f.url) });
  }
  const sorted = [...functions].sort((a, b) => b[1].us - a[1].us);
  const topEntries = (list: typeof sorted) => list.slice(0, 15).map(([name, v]) => entry(name, v.us));
  return {
    label,
    file,
    totalMs: Math.round(totalUs / 1000),
    buckets: [...buckets].sort((a, b) => b[1] - a[1]).map(([name, us]) => entry(name, us)),
    top: topEntries(sorted),
    ours: topEntries(sorted.filter(([, v]) => v.ours)),
  };
}

/** Profiles `body`, writes `file`, returns the summary. */
export async function profiled(label: string, file: string, body: () => Promise<unknown>) {
  const session = new Session();
  session.connect();
  try {
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 200 });
    await session.post('Profiler.start');
    // The profile is written even when the run fails, which it then reports.
    const [outcome] = await Promise.allSettled([body()]);
    const { profile } = await session.post('Profiler.stop');
    await writeFile(file, JSON.stringify(profile));
    if (outcome.status === 'rejected') throw outcome.reason;
    return summarizeProfile(profile, label, file);
  } finally {
    session.disconnect();
  }
}

export function formatProfile(s: ProfileSummary): string {
  const line = (e: ProfileEntry) =>
    `    ${e.pct.toFixed(1).padStart(5)}%  ${e.selfMs.toFixed(1).padStart(8)} ms  ${e.name}`;
  return [
    `Profile ${s.label} (${s.totalMs} ms, ${s.file})`,
    '  self time by kind:',
    ...s.buckets.map(line),
    '  top functions:',
    ...s.top.slice(0, 10).map(line),
    '  our code:',
    ...s.ours.slice(0, 10).map(line),
  ].join('\n');
}
