import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type DrillRecordView, drillRow, scheduleText } from '../src/drill-model.js';

const phase = (failed = 0, p99Ms = 12.5) => ({ sent: 100, failed, p50Ms: 3, p99Ms });

describe('drill results in the dashboard', () => {
  it('summarizes a run: failed/sent, p99 during, detect, recover, alerts', () => {
    const d: DrillRecordView = {
      id: 'dr-1',
      service: 'web',
      scenario: 'dependency-down',
      outcome: 'failed',
      createdBy: 'schedule nightly',
      startedAt: 0,
      finishedAt: 1,
      result: {
        phases: { before: phase(), during: phase(64, 123.3), after: phase() },
        sent: 300,
        failed: 64,
        timeToDetectMs: 1104,
        timeToRecoverMs: 16_258,
        alerts: [
          { id: 'a', name: 'payments_down', severity: 'critical', summary: 's', firedAt: 1, resolvedAt: 2 },
          { id: 'b', name: 'x', severity: 'warning', summary: 's', firedAt: 1, resolvedAt: null },
        ],
        reasons: ['64 request(s) failed; the objective allows 0'],
      },
    };
    assert.deepEqual(drillRow(d), {
      id: 'dr-1',
      service: 'web',
      scenario: 'dependency-down',
      outcome: 'failed',
      failed: '64/300',
      p99During: '123.3 ms',
      detect: '1104 ms',
      recover: '16.3 s',
      alerts: '2 (1 resolved)',
      by: 'schedule nightly',
      why: '64 request(s) failed; the objective allows 0',
    });
  });
  it('shows a drill that did not run, and older results without alerts', () => {
    const row = drillRow({
      id: 'dr-2',
      service: 'web',
      scenario: 'instance-kill',
      outcome: 'error',
      createdBy: 'schedule hourly',
      startedAt: 0,
      finishedAt: 1,
      result: { error: { code: 'NINES_E_DRILL_REFUSED', message: 'web has a deploy in flight' } },
    });
    assert.equal(row.failed, '—');
    assert.equal(row.alerts, '—');
    assert.equal(row.why, 'NINES_E_DRILL_REFUSED: web has a deploy in flight');
  });
  it('writes schedules the way nines.yaml does', () => {
    assert.equal(scheduleText({ scenario: 'x', service: 'w', every: 21_600_000, enabled: true }), 'every 6h');
    assert.equal(
      scheduleText({ scenario: 'x', service: 'w', every: 172_800_000, enabled: true }),
      'every 2d',
    );
    assert.equal(scheduleText({ scenario: 'x', service: 'w', every: 300_000, enabled: true }), 'every 5m');
    assert.equal(
      scheduleText({ scenario: 'x', service: 'w', cron: '0 3 * * *', enabled: true }),
      'cron 0 3 * * * (UTC)',
    );
  });
});
