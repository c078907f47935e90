/**
 * The bus's health report: the transport's view plus what is wrong now in
 * each subscription and on the publish side. Read-only; it changes nothing.
 */
import type { Transport } from '../core/transport.ts';
import type { HealthReport } from '../core/types.ts';
import type { PublishPath } from './publish-path.ts';
import type { PublishResultHub } from './publish-results.ts';
import type { PublishWindow } from './publish-window.ts';
import type { BusSubscription } from './subscription.ts';

export interface HealthParts {
  readonly transportKind: string;
  readonly transport: Transport;
  readonly subscriptions: ReadonlySet<BusSubscription>;
  readonly window: PublishWindow;
  readonly publishing: PublishPath;
  readonly results: PublishResultHub;
  readonly maxPendingPublishes: number;
  readonly closing: boolean;
}

export function busHealth(parts: HealthParts): HealthReport {
  const transport = parts.transport.health();
  let troubled = false;
  const subscriptions = [...parts.subscriptions].map((s) => {
    const stats = s.pool.stats();
    // Only what is wrong now: a stuck handler, a dead letter that cannot be
    // published, a transport problem not yet over (see BusSubscription.lastError).
    const problems: string[] = [];
    if (stats.stuckHandlers > 0) problems.push(`${stats.stuckHandlers} stuck handler(s)`);
    if (stats.deadLetterFailing > 0) problems.push(`${stats.deadLetterFailing} dead letter(s) failing`);
    const lastError = s.lastError;
    if (lastError !== undefined) problems.push(lastError.message);
    const loop = s.redeliveryLoop;
    if (loop !== undefined) problems.push(loop);
    if (problems.length > 0) troubled = true;
    return {
      topic: s.topic,
      group: s.group,
      inFlight: stats.inFlight,
      queued: stats.queued,
      parkedAggregates: stats.parkedAggregates,
      intakePaused: stats.intakePaused,
      stuckHandlers: stats.stuckHandlers,
      deadLetterFailing: stats.deadLetterFailing,
      ...(problems.length > 0 ? { problems } : {}),
    };
  });
  const retrying = parts.publishing.retrying;
  // Unread publishResults() count against the window: at half of it (where the
  // warning is logged) the reader is not keeping up and publishing is about to wait.
  const unreadResults = parts.results.maxBacklog();
  const resultsStalling = unreadResults * 2 >= parts.maxPendingPublishes;
  const transportProblems = transport.problems ?? [];
  const degraded =
    !transport.connected || troubled || retrying > 0 || resultsStalling || transportProblems.length > 0;
  const report: { -readonly [K in keyof HealthReport]: HealthReport[K] } = {
    status: parts.closing ? 'closed' : degraded ? 'degraded' : 'ok',
    transport: parts.transportKind,
    connected: transport.connected,
    pendingPublishes: parts.window.pending,
    retryingPublishes: retrying,
    oldestRetryingPublishMs: parts.publishing.oldestRetryingAgeMs(),
    unreadPublishResults: unreadResults,
    subscriptions,
  };
  if (transportProblems.length > 0) report.problems = transportProblems;
  if (transport.details) report.details = transport.details;
  return report;
}
