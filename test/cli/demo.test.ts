import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatSummary, runDemo } from '../../src/cli/demo.ts';

describe('demo', () => {
  it('runs the order service → projection flow with 0 lost and 0 out of order', async () => {
    const summary = await runDemo({ orders: 300, batch: 50, failureRate: 0.1, progress: false });
    assert.equal(summary.published, 300 * 5 + 5);
    assert.equal(summary.processed, 300 * 5 + 4);
    assert.equal(summary.lost, 0);
    assert.equal(summary.outOfOrder, 0);
    assert.equal(summary.deadLettered, 1);
    assert.ok(summary.retried > 0);
    assert.equal(summary.outboxPublished, 300 * 5 + 5, 'every outbox row marked published');
    assert.equal(summary.outboxPending, 0);
    assert.match(formatSummary(summary), /lost\s+0/);
  });
});
