import type { CheckState } from '../../core/checks.js';

/**
 * Pure uptime arithmetic over a subject's state transitions. Availability counts `up` and `degraded`
 * as available (a majority of locations still reach it) and `down` as not; `unknown` time (nothing
 * reported) and maintenance time are left out of both and reported on their own.
 */

export interface StateChange {
  at: number;
  to: CheckState;
  cause: string;
}

export interface Span {
  start: number;
  end: number;
}

export interface Incident {
  start: number;
  /** null: still down at the end of the window. */
  end: number | null;
  durationMs: number;
  cause: string;
}

export interface UptimeReport {
  from: number;
  to: number;
  upMs: number;
  degradedMs: number;
  downMs: number;
  unknownMs: number;
  maintenanceMs: number;
  /** (up + degraded) / (up + degraded + down); null when nothing was measured. */
  availability: number | null;
  incidents: Incident[];
  maintenance: Span[];
}

/** Merges overlapping spans and clips them to [from, to). */
export function mergeSpans(spans: readonly Span[], from: number, to: number): Span[] {
  const clipped = spans
    .map((s) => ({ start: Math.max(s.start, from), end: Math.min(s.end, to) }))
    .filter((s) => s.end > s.start)
    .sort((a, b) => a.start - b.start);
  const out: Span[] = [];
  for (const s of clipped) {
    const last = out[out.length - 1];
    if (last && s.start <= last.end) last.end = Math.max(last.end, s.end);
    else out.push({ ...s });
  }
  return out;
}

/** Length of [a, b) not covered by `spans` (merged, sorted). */
function outside(a: number, b: number, spans: readonly Span[]): number {
  let len = b - a;
  for (const s of spans) {
    const lo = Math.max(a, s.start);
    const hi = Math.min(b, s.end);
    if (hi > lo) len -= hi - lo;
  }
  return len;
}

/**
 * `initial` is the state at `from` (the last transition before the window), `changes` the transitions
 * inside [from, to), oldest first.
 */
export function computeUptime(
  initial: { state: CheckState; cause: string } | undefined,
  changes: readonly StateChange[],
  from: number,
  to: number,
  maintenance: readonly Span[] = [],
): UptimeReport {
  const mw = mergeSpans(maintenance, from, to);
  const totals: Record<CheckState, number> = { up: 0, degraded: 0, down: 0, unknown: 0 };
  const incidents: Incident[] = [];
  let state: CheckState = initial?.state ?? 'unknown';
  let since = from;
  let cause = initial?.cause ?? '';
  let downSince: number | undefined = state === 'down' ? from : undefined;
  const close = (until: number) => {
    if (until > since) totals[state] += outside(since, until, mw);
  };
  for (const c of changes) {
    if (c.at < from || c.at >= to) continue;
    close(c.at);
    if (state === 'down' && c.to !== 'down' && downSince !== undefined) {
      incidents.push({ start: downSince, end: c.at, durationMs: c.at - downSince, cause });
      downSince = undefined;
    }
    if (c.to === 'down' && state !== 'down') {
      downSince = c.at;
      cause = c.cause;
    }
    state = c.to;
    since = c.at;
  }
  close(to);
  if (state === 'down' && downSince !== undefined) {
    incidents.push({ start: downSince, end: null, durationMs: to - downSince, cause });
  }
  const measured = totals.up + totals.degraded + totals.down;
  return {
    from,
    to,
    upMs: totals.up,
    degradedMs: totals.degraded,
    downMs: totals.down,
    unknownMs: totals.unknown,
    maintenanceMs: mw.reduce((s, w) => s + (w.end - w.start), 0),
    availability: measured > 0 ? (totals.up + totals.degraded) / measured : null,
    incidents,
    maintenance: mw,
  };
}

/** What is left of the error budget of `objective` (e.g. 0.999) given a report: 1 = untouched, < 0 = overspent. */
export function errorBudgetLeft(
  r: Pick<UptimeReport, 'upMs' | 'degradedMs' | 'downMs'>,
  objective: number,
): number | null {
  const measured = r.upMs + r.degradedMs + r.downMs;
  if (measured === 0 || objective >= 1) return null;
  const budget = (1 - objective) * measured;
  return 1 - r.downMs / budget;
}

export const REPORT_WINDOWS = {
  '24h': 86_400_000,
  '7d': 7 * 86_400_000,
  '30d': 30 * 86_400_000,
  '90d': 90 * 86_400_000,
} as const;
export type ReportWindow = keyof typeof REPORT_WINDOWS;
