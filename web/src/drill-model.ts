/**
 * The dashboard's view of drill results (`GET /v1/drills`, `GET /v1/drill-schedules`; docs/drills.md).
 * Pure, so it is unit-tested in node (web/test/drill-model.test.ts).
 */

export interface DrillPhase {
  sent: number;
  failed: number;
  p50Ms: number;
  p99Ms: number;
}

export interface DrillAlert {
  id: string;
  name: string;
  severity: string;
  summary: string;
  firedAt: number;
  resolvedAt: number | null;
}

export interface DrillRecordView {
  id: string;
  service: string;
  scenario: string;
  outcome: 'passed' | 'failed' | 'error';
  createdBy: string;
  startedAt: number;
  finishedAt: number;
  result: {
    phases?: { before: DrillPhase; during: DrillPhase; after: DrillPhase };
    sent?: number;
    failed?: number;
    timeToDetectMs?: number | null;
    timeToRecoverMs?: number | null;
    errorRateDuring?: number;
    alerts?: DrillAlert[] | null;
    reasons?: string[];
    schedule?: string;
    error?: { code: string; message: string };
  };
}

export interface DrillScheduleView {
  name: string;
  spec: { scenario: string; service: string; every?: number; cron?: string; enabled: boolean };
  lastRunAt: number | null;
  lastDrillId: string | null;
  nextDueAt: number | null;
}

export interface DrillRow {
  id: string;
  service: string;
  scenario: string;
  outcome: DrillRecordView['outcome'];
  /** `failed/sent`, or — when the drill did not run. */
  failed: string;
  p99During: string;
  detect: string;
  recover: string;
  /** `2 (1 resolved)`, `none`, or — when unknown. */
  alerts: string;
  by: string;
  /** Why it failed or did not run (empty when it passed). */
  why: string;
}

const ms = (v: number | null | undefined) =>
  v === null || v === undefined ? '—' : v < 10_000 ? `${Math.round(v)} ms` : `${(v / 1000).toFixed(1)} s`;

export function drillRow(d: DrillRecordView): DrillRow {
  const r = d.result;
  const alerts =
    r.alerts === undefined || r.alerts === null
      ? '—'
      : r.alerts.length === 0
        ? 'none'
        : `${r.alerts.length} (${r.alerts.filter((a) => a.resolvedAt !== null).length} resolved)`;
  return {
    id: d.id,
    service: d.service,
    scenario: d.scenario,
    outcome: d.outcome,
    failed: r.sent === undefined ? '—' : `${r.failed ?? 0}/${r.sent}`,
    p99During: r.phases ? `${r.phases.during.p99Ms} ms` : '—',
    detect: ms(r.timeToDetectMs),
    recover: ms(r.timeToRecoverMs),
    alerts,
    by: d.createdBy,
    why: r.error ? `${r.error.code}: ${r.error.message}` : (r.reasons ?? []).join('; '),
  };
}

/** `every 6h`, `cron 0 3 * * *`. */
export function scheduleText(s: DrillScheduleView['spec']): string {
  if (s.cron !== undefined) return `cron ${s.cron} (UTC)`;
  const e = s.every ?? 0;
  if (e % 86_400_000 === 0) return `every ${e / 86_400_000}d`;
  if (e % 3_600_000 === 0) return `every ${e / 3_600_000}h`;
  return `every ${Math.round(e / 60_000)}m`;
}
