/**
 * CPU profiles of single phases (in-process, via the inspector: the same
 * V8 sampling profiler `node --cpu-prof` uses, but started and stopped around
 * one run), written as .cpuprofile files (open in Chrome DevTools), and a
 * summary of self time per function: overall, and for our code (src/).
 *
 * `node bench/profile-summary.ts FILE.cpuprofile` summarises any profile,
 * including the whole-process ones `node --cpu-prof bench/run.ts` writes.
 */
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProfileEntry, ProfileSummary } from './types.ts';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly hitCount?: number;
}

export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples?: readonly number[];
  readonly timeDeltas?: readonly number[];
}

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

function location(frame: CallFrame): string {
  if (!frame.url) return '(native)';
  let path = frame.url;
  if (path.startsWith('file://')) path = relative(repoRoot, fileURLToPath(path));
  return `${path}:${frame.lineNumber + 1}`;
}

/** Library code: src/, except src/testing (the order checker is bench instrumentation here). */
function isOurs(frame: CallFrame): boolean {
  return (
    frame.url.includes('/src/') &&
    !frame.url.includes('/src/testing/') &&
    !frame.url.includes('/node_modules/')
  );
}

/** Where a frame's self time goes in the bucket summary. */
function bucketOf(frame: CallFrame): string {
  const url = frame.url;
  if (frame.functionName === '(idle)') return 'idle (waiting for I/O)';
  if (frame.functionName === '(garbage collector)') return 'garbage collector';
  if (frame.functionName === '(program)') return 'V8/runtime (program)';
  if (url.includes('/node_modules/@nats-io/')) return 'nats.js client';
  if (url.includes('/node_modules/')) return 'other dependencies';
  if (url.includes('/src/testing/') || url.includes('/bench/'))
    return 'bench instrumentation (checker, workload)';
  if (url.includes('/src/')) return 'our code (src/)';
  if (url.startsWith('node:')) return 'node internals (JS)';
  if (!url) return `native: ${frame.functionName || '(anonymous)'}`;
  return 'other';
}

/** Self time per function (ms), from samples and time deltas (falls back to hit counts). */
export function summarizeProfile(profile: CpuProfile, label: string, file: string, top = 15): ProfileSummary {
  const selfUs = new Map<number, number>();
  if (profile.samples && profile.timeDeltas && profile.samples.length === profile.timeDeltas.length) {
    const { samples, timeDeltas } = profile;
    for (let i = 0; i < samples.length; i++) {
      // timeDeltas[i] is the time before sample i; attribute the gap after it to the sample.
      const dt = (timeDeltas[i + 1] ?? 0) as number;
      const id = samples[i] as number;
      selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
    }
  } else {
    const total = profile.endTime - profile.startTime;
    const hits = profile.nodes.reduce((sum, n) => sum + (n.hitCount ?? 0), 0) || 1;
    for (const n of profile.nodes) selfUs.set(n.id, ((n.hitCount ?? 0) / hits) * total);
  }
  const totalUs = profile.endTime - profile.startTime;
  const byFunction = new Map<string, { frame: CallFrame; us: number }>();
  const byFile = new Map<string, number>();
  const buckets = new Map<string, number>();
  for (const node of profile.nodes) {
    const us = selfUs.get(node.id) ?? 0;
    if (us === 0) continue;
    const frame = node.callFrame;
    const bucket = bucketOf(frame);
    buckets.set(bucket, (buckets.get(bucket) ?? 0) + us);
    const key = `${frame.functionName}|${frame.url}|${frame.lineNumber}`;
    const entry = byFunction.get(key);
    if (entry) entry.us += us;
    else byFunction.set(key, { frame, us });
    if (isOurs(frame)) {
      const path = location(frame).replace(/:\d+$/, '');
      byFile.set(path, (byFile.get(path) ?? 0) + us);
    }
  }
  const toEntry = ({ frame, us }: { frame: CallFrame; us: number }): ProfileEntry => ({
    functionName: frame.functionName || '(anonymous)',
    location: location(frame),
    selfMs: Math.round(us / 100) / 10,
    pct: Math.round((us / totalUs) * 1000) / 10,
  });
  const sorted = [...byFunction.values()].sort((a, b) => b.us - a.us);
  return {
    label,
    file,
    totalMs: Math.round(totalUs / 1000),
    top: sorted.slice(0, top).map(toEntry),
    ours: sorted
      .filter((e) => isOurs(e.frame))
      .slice(0, top)
      .map(toEntry),
    buckets: [...buckets.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([name, us]) => ({
        name,
        selfMs: Math.round(us / 100) / 10,
        pct: Math.round((us / totalUs) * 1000) / 10,
      })),
    oursByFile: [...byFile.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([path, us]) => ({
        file: path,
        selfMs: Math.round(us / 100) / 10,
        pct: Math.round((us / totalUs) * 1000) / 10,
      })),
  };
}

/** Profiles `body` and writes `<file>`; returns the body's value and the summary. */
export async function profiled<T>(
  label: string,
  file: string,
  body: () => Promise<T>,
): Promise<{ value: T; summary: ProfileSummary }> {
  const session = new Session();
  session.connect();
  try {
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 200 });
    await session.post('Profiler.start');
    let outcome: { ok: true; value: T } | { ok: false; error: unknown };
    try {
      outcome = { ok: true, value: await body() };
    } catch (error) {
      outcome = { ok: false, error };
    }
    const { profile } = (await session.post('Profiler.stop')) as { profile: CpuProfile };
    await writeFile(file, JSON.stringify(profile));
    if (!outcome.ok) throw outcome.error;
    return { value: outcome.value, summary: summarizeProfile(profile, label, file) };
  } finally {
    session.disconnect();
  }
}

export function formatProfile(s: ProfileSummary): string {
  const lines = [`${s.label}: ${s.totalMs} ms profiled (${s.file})`, '  self time by kind:'];
  for (const b of s.buckets.slice(0, 10)) {
    lines.push(`    ${b.pct.toFixed(1).padStart(5)}%  ${b.selfMs.toFixed(1).padStart(8)} ms  ${b.name}`);
  }
  lines.push('  top self time, all code:');
  for (const e of s.top.slice(0, 10)) {
    lines.push(
      `    ${e.pct.toFixed(1).padStart(5)}%  ${e.selfMs.toFixed(1).padStart(8)} ms  ${e.functionName}  ${e.location}`,
    );
  }
  lines.push('  top self time, our code (src/ without src/testing):');
  for (const e of s.ours.slice(0, 10)) {
    lines.push(
      `    ${e.pct.toFixed(1).padStart(5)}%  ${e.selfMs.toFixed(1).padStart(8)} ms  ${e.functionName}  ${e.location}`,
    );
  }
  lines.push('  our code by file:');
  for (const f of s.oursByFile.slice(0, 10)) {
    lines.push(`    ${f.pct.toFixed(1).padStart(5)}%  ${f.selfMs.toFixed(1).padStart(8)} ms  ${f.file}`);
  }
  return lines.join('\n');
}
