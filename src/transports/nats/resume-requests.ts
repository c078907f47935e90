/**
 * Resume requests through the `<prefix>_PARKED` KV bucket (issue 12): whoever
 * wants a parked aggregate resumed (the operator's `eventbus dlq requeue
 * --parked`, or `subscription.resume()` on a member that does not own the
 * aggregate's partition) writes a request key; the member that owns the
 * partition sees it on its watch, replays the parked events and answers on
 * an answer key. Only that member can replay in order: it is the one that
 * holds the aggregate's newer events back meanwhile.
 *
 * Keys of one group, under `<stream>.<durable>.`:
 * - `<b64url(aggregate)>`: the aggregate is parked (value: the reason);
 * - `resume.<b64url(aggregate)>`: a request, JSON `{ id, key }`;
 * - `resumed.<b64url(aggregate)>`: an answer, JSON ResumeAnswer (`accepted`, then `done`).
 * base64url has no `.`, so parked keys are exactly one token after the prefix.
 */
import { randomUUID } from 'node:crypto';
import { type KV, KvWatchInclude } from '@nats-io/kv';
import type { ResumeAnswer, ResumeRequest } from '../../core/transport.ts';

export function encodeKeyToken(key: string): string {
  return Buffer.from(key, 'utf8').toString('base64url');
}

export function decodeKeyToken(token: string): string {
  return Buffer.from(token, 'base64url').toString('utf8');
}

/** `<stream>.<durable>.`: every key of one group's parked state starts with it. */
export function groupPrefix(stream: string, durable: string): string {
  return `${stream}.${durable}.`;
}

export const requestToken = 'resume';
export const answerToken = 'resumed';

/** A key of the bucket, read relative to a group prefix. */
export type ParkedKey =
  | { readonly kind: 'parked'; readonly key: string }
  | { readonly kind: 'request'; readonly key: string }
  | { readonly kind: 'answer'; readonly key: string }
  | { readonly kind: 'other' };

export function classifyKey(rest: string): ParkedKey {
  const tokens = rest.split('.');
  if (tokens.length === 1 && tokens[0] !== '') return { kind: 'parked', key: decodeKeyToken(rest) };
  if (tokens.length === 2 && tokens[1] !== '') {
    const key = decodeKeyToken(tokens[1] as string);
    if (tokens[0] === requestToken) return { kind: 'request', key };
    if (tokens[0] === answerToken) return { kind: 'answer', key };
  }
  return { kind: 'other' };
}

/** A request read from the bucket, or undefined when it is not one (written by someone else). */
export function parseRequest(text: string, key: string): ResumeRequest | undefined {
  try {
    const value = JSON.parse(text) as { id?: unknown; key?: unknown };
    if (typeof value.id !== 'string' || value.id === '' || value.key !== key) return undefined;
    return { id: value.id, key };
  } catch {
    return undefined;
  }
}

export function parseAnswer(text: string): ResumeAnswer | undefined {
  try {
    const value = JSON.parse(text) as Partial<ResumeAnswer>;
    if (typeof value.id !== 'string' || typeof value.key !== 'string') return undefined;
    if (value.state !== 'accepted' && value.state !== 'done') return undefined;
    return {
      id: value.id,
      key: value.key,
      state: value.state,
      member: typeof value.member === 'string' ? value.member : '?',
      ...(typeof value.resumed === 'boolean' ? { resumed: value.resumed } : {}),
      ...(typeof value.replayed === 'number' ? { replayed: value.replayed } : {}),
      ...(typeof value.error === 'string' ? { error: value.error } : {}),
    };
  } catch {
    return undefined;
  }
}

/**
 * Writes a request for `key` and waits (at most `timeoutMs`) for the owning
 * member's answers. Resolves with the last answer seen (`done`, or `accepted`
 * when the replay outlasted the wait), or undefined when no member picked the
 * request up; in that case the request is withdrawn, so a member starting
 * later does not act on a request its requester gave up on.
 */
export async function requestResume(
  kv: KV,
  prefix: string,
  key: string,
  timeoutMs: number,
  onAnswer?: (answer: ResumeAnswer) => void,
): Promise<ResumeAnswer | undefined> {
  const id = randomUUID();
  const token = encodeKeyToken(key);
  const requestKey = `${prefix}${requestToken}.${token}`;
  // Watching before the request is written: an answer can never be missed.
  const answers = await kv.watch({
    key: `${prefix}${answerToken}.${token}`,
    include: KvWatchInclude.UpdatesOnly,
  });
  const timer = setTimeout(() => answers.stop(), timeoutMs);
  let last: ResumeAnswer | undefined;
  try {
    await kv.put(requestKey, JSON.stringify({ id, key } satisfies ResumeRequest));
    for await (const entry of answers) {
      if (entry.operation !== 'PUT') continue;
      const answer = parseAnswer(entry.string());
      if (answer === undefined || answer.id !== id) continue;
      last = answer;
      onAnswer?.(answer);
      if (answer.state === 'done') break;
    }
  } finally {
    clearTimeout(timer);
    answers.stop();
    if (last === undefined) await withdraw(kv, requestKey, id);
  }
  return last;
}

/** Deletes the request if it is still ours (another requester may have replaced it). */
async function withdraw(kv: KV, requestKey: string, id: string): Promise<void> {
  try {
    const entry = await kv.get(requestKey);
    if (entry === null || entry.operation !== 'PUT') return;
    if (parseRequest(entry.string(), parseKeyOf(entry.string()))?.id !== id) return;
    await kv.delete(requestKey, { previousSeq: entry.revision });
  } catch {
    // Best effort: a member that sees it later resumes an aggregate somebody asked to resume.
  }
}

function parseKeyOf(text: string): string {
  try {
    const value = JSON.parse(text) as { key?: unknown };
    return typeof value.key === 'string' ? value.key : '';
  } catch {
    return '';
  }
}
