import type { CheckState } from '../../core/checks.js';
import type { UptimeRow } from './reports.js';
import type { CheckService } from './service.js';

/**
 * The public status page (`/status`, `/status.json`): per service and public check, the state now,
 * uptime over 90 days and the incidents. No token, so nothing internal: no URLs, host names or
 * failure messages, only names, states, times and percentages.
 */

export interface StatusEntry {
  name: string;
  kind: 'service' | 'check' | 'dependency';
  state: CheckState;
  since: number | null;
  uptime: number | null;
  maintenanceMs: number;
  incidents: { start: number; end: number | null; durationMs: number }[];
}

export interface StatusModel {
  title: string;
  generatedAt: number;
  overall: 'operational' | 'degraded' | 'outage' | 'unknown';
  windowDays: number;
  entries: StatusEntry[];
}

export function statusPageModel(
  rows: readonly UptimeRow[],
  checks: Pick<CheckService, 'subjectStates'>,
  title: string,
): StatusModel {
  const states = new Map(checks.subjectStates().map((s) => [s.subject, s]));
  const entries: StatusEntry[] = [];
  for (const r of rows) {
    if (r.kind === 'check' && r.public === false) continue;
    const st = states.get(r.kind === 'service' ? `service:${r.name}` : r.name);
    entries.push({
      name: r.name,
      kind: r.kind === 'check' && r.dependency ? 'dependency' : r.kind,
      state: st?.state ?? 'unknown',
      since: st?.since ?? null,
      uptime: r.availability,
      maintenanceMs: r.maintenanceMs,
      incidents: r.incidents
        .slice(-20)
        .map((i) => ({ start: i.start, end: i.end, durationMs: i.durationMs })),
    });
  }
  const own = entries.filter((e) => e.kind !== 'dependency');
  const overall: StatusModel['overall'] =
    own.length === 0 || own.every((e) => e.state === 'unknown')
      ? 'unknown'
      : own.some((e) => e.state === 'down')
        ? 'outage'
        : own.some((e) => e.state === 'degraded')
          ? 'degraded'
          : 'operational';
  return { title, generatedAt: Date.now(), overall, windowDays: 90, entries };
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function pct(a: number | null): string {
  return a === null ? 'no data' : `${(Math.floor(a * 100_000) / 1000).toFixed(3)} %`;
}

function when(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
}

function dur(ms: number): string {
  const m = Math.round(ms / 60_000);
  return m < 60 ? `${m} min` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

const COLOR: Record<CheckState, string> = {
  up: '#1a7f37',
  degraded: '#9a6700',
  down: '#cf222e',
  unknown: '#6e7781',
};
const HEADLINE: Record<StatusModel['overall'], string> = {
  operational: 'All systems operational',
  degraded: 'Some systems degraded',
  outage: 'Outage in progress',
  unknown: 'No data yet',
};

export function statusPageHtml(m: StatusModel): string {
  const rows = m.entries
    .map((e) => {
      const incidents = e.incidents
        .slice()
        .reverse()
        .map(
          (i) =>
            `<li>${esc(when(i.start))} – ${i.end === null ? 'ongoing' : esc(when(i.end))} (${dur(i.durationMs)})</li>`,
        )
        .join('');
      return `<section><h2><span class="dot" style="background:${COLOR[e.state]}"></span>${esc(e.name)}${
        e.kind === 'dependency' ? ' <small>(third party)</small>' : ''
      } <small>${e.state}</small></h2><p>Uptime ${m.windowDays} days: <b>${pct(e.uptime)}</b>${
        e.maintenanceMs > 0 ? ` · maintenance ${dur(e.maintenanceMs)} (not counted)` : ''
      }</p>${incidents ? `<details><summary>${e.incidents.length} incident(s)</summary><ul>${incidents}</ul></details>` : ''}</section>`;
    })
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="refresh" content="30"><title>Status: ${esc(m.title)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1f2328}
h1{font-size:1.6rem}h2{font-size:1.1rem;margin:.2rem 0}section{border-top:1px solid #d0d7de;padding:.6rem 0}
.dot{display:inline-block;width:.7rem;height:.7rem;border-radius:50%;margin-right:.5rem}small{color:#6e7781;font-weight:normal}
.banner{padding:.8rem 1rem;border-radius:6px;color:#fff;background:${m.overall === 'operational' ? COLOR.up : m.overall === 'degraded' ? COLOR.degraded : m.overall === 'outage' ? COLOR.down : COLOR.unknown}}</style>
</head><body><h1>Status: ${esc(m.title)}</h1><p class="banner" id="overall">${HEADLINE[m.overall]}</p>
${rows || '<p>Nothing is monitored yet.</p>'}
<p><small>Updated ${esc(when(m.generatedAt))}</small></p></body></html>
`;
}
