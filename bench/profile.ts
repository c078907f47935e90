/**
 * `--profile`: CPU profiles of single runs (the inspector's V8 sampling
 * profiler, the one `node --cpu-prof` uses, started and stopped around one
 * run), written as .cpuprofile files (open in Chrome DevTools), with a
 * summary: self time by kind (idle, GC, nats.js, our code, …) and the top
 * functions overall and of our code (src/ without src/testing).
 */
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}
interface CpuProfile {
  readonly nodes: readonly { readonly id: number; readonly callFrame: CallFrame }[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples?: readonly number[];
  readonly timeDeltas?: readonly number[];
}
export interface ProfileEntry {
  readonly name: string;
  readonly selfMs: number;
  readonly pct: number;
}
export interface ProfileSummary {
  readonly label: string;
  readonly file: string;
  readonly totalMs: number;
  readonly buckets: readonly ProfileEntry[];
  readonly top: readonly ProfileEntry[];
  readonly ours: readonly ProfileEntry[];
}

const root = fileURLToPath(new URL('..', import.meta.url));
const isOurs = (url: string): boolean =>
  url.includes('/src/') && !url.includes('/src/testing/') && !url.includes('/node_modules/');

function bucketOf({ functionName: fn, url }: CallFrame): string {
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

export function summarizeProfile(profile: CpuProfile, label: string, file: string): ProfileSummary {
  const selfUs = new Map<number, number>();
  const { samples = [], timeDeltas = [] } = profile;
  for (let i = 0; i < samples.length; i++) {
    const id = samples[i] as number;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (timeDeltas[i + 1] ?? 0));
  }
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
  return {
    label,
    file,
    totalMs: Math.round(totalUs / 1000),
    buckets: [...buckets].sort((a, b) => b[1] - a[1]).map(([name, us]) => entry(name, us)),
    top: sorted.slice(0, 15).map(([name, v]) => entry(name, v.us)),
    ours: sorted
      .filter(([, v]) => v.ours)
      .slice(0, 15)
      .map(([name, v]) => entry(name, v.us)),
  };
}

/** Profiles `body`, writes `file`, returns the summary. */
export async function profiled(
  label: string,
  file: string,
  body: () => Promise<unknown>,
): Promise<ProfileSummary> {
  const session = new Session();
  session.connect();
  try {
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 200 });
    await session.post('Profiler.start');
    const outcome = await body().then(
      () => undefined,
      (error: unknown) => ({ error }),
    );
    const { profile } = (await session.post('Profiler.stop')) as { profile: CpuProfile };
    await writeFile(file, JSON.stringify(profile));
    if (outcome !== undefined) throw outcome.error;
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
