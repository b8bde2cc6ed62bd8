import type {
  AlertView,
  CheckLocation,
  DeployEvent,
  DeployRecord,
  EventRecord,
  FieldChange,
  HostView,
  InstanceView,
  Role,
  ServiceView,
  UptimeRow,
} from './types.js';

/**
 * The dashboard's logic without the DOM: permissions, the SSE parser, fleet grouping and filters,
 * version colours, formatting. Unit-tested with node:test (web/test/model.test.ts).
 */

// ---- permissions -------------------------------------------------------------------------------------

export type Action = 'deploy' | 'rollback' | 'mode' | 'ack' | 'silence';

export interface Permission {
  ok: boolean;
  /** Why not, for the tooltip and the screen reader (empty when ok). */
  reason: string;
}

const VERB: Record<Action, string> = {
  deploy: 'start deploys',
  rollback: 'roll back',
  mode: 'change service modes',
  ack: 'acknowledge alerts',
  silence: 'silence alerts',
};

/** May this role do `action`? Mirrors the server's rule (src/controller/auth.ts): only admins write. */
export function permission(
  role: Role | null,
  action: Action,
  ctx: { lockedBy?: string | null } = {},
): Permission {
  if (role !== 'admin') {
    const what = role === 'read' ? 'This token is read-only' : `A ${role ?? 'unknown'} token`;
    return { ok: false, reason: `${what}: it cannot ${VERB[action]}. Sign in with an admin token.` };
  }
  if (ctx.lockedBy) {
    return { ok: false, reason: `A deploy is in progress (${ctx.lockedBy}); wait for it to finish.` };
  }
  return { ok: true, reason: '' };
}

export function roleLabel(role: Role | null): string {
  if (role === 'admin') return 'admin';
  if (role === 'read') return 'read-only';
  return role ?? 'unknown';
}

// ---- Server-Sent Events --------------------------------------------------------------------------------

export interface SseMessage {
  event: string;
  data: string;
}

/**
 * Split an SSE byte stream (already decoded) into messages. Returns complete messages and the
 * unfinished rest to prepend to the next chunk. Comments (heartbeats) yield nothing.
 */
export function parseSse(buffer: string): { messages: SseMessage[]; rest: string } {
  const text = buffer.replace(/\r\n?/g, '\n');
  const blocks = text.split('\n\n');
  const rest = blocks.pop() ?? '';
  const messages: SseMessage[] = [];
  for (const block of blocks) {
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    if (data.length > 0) messages.push({ event, data: data.join('\n') });
  }
  return { messages, rest };
}

// ---- versions and colours -------------------------------------------------------------------------

export const PALETTE_SIZE = 8;

/**
 * A colour slot per version, stable while releases exist: versions get slots in the order they were
 * released (oldest first, over all services), so v1 and v2 always differ. Unknown versions follow.
 */
export function versionSlots(services: ServiceView[], instances: InstanceView[] = []): Map<string, number> {
  const releases = services.flatMap((s) => s.releases).sort((a, b) => a.createdAt - b.createdAt);
  const slots = new Map<string, number>();
  for (const r of releases) if (!slots.has(r.version)) slots.set(r.version, slots.size % PALETTE_SIZE);
  for (const i of instances) if (!slots.has(i.version)) slots.set(i.version, slots.size % PALETTE_SIZE);
  return slots;
}

/** Natural order: v2 < v10. */
export function compareVersions(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

/** Versions of running instances with their counts, per service when several run one service. */
export function versionsRunning(instances: InstanceView[]): Array<{ version: string; count: number }> {
  const counts = new Map<string, number>();
  for (const i of instances) {
    if (i.desired !== 'running') continue;
    counts.set(i.version, (counts.get(i.version) ?? 0) + 1);
  }
  return [...counts]
    .map(([version, count]) => ({ version, count }))
    .sort((a, b) => compareVersions(a.version, b.version));
}

/** "2 versions running: v1 ×2, v2 ×1", or null for a uniform fleet. */
export function mixedBanner(instances: InstanceView[]): string | null {
  const v = versionsRunning(instances);
  if (v.length < 2) return null;
  return `${v.length} versions running: ${v.map((x) => `${x.version} ×${x.count}`).join(', ')}`;
}

// ---- the fleet tree -------------------------------------------------------------------------------------

export interface FleetFilter {
  service: string;
  zone: string;
  version: string;
}

export const NO_FILTER: FleetFilter = { service: '', zone: '', version: '' };

export interface HostNode {
  host: HostView | { id: string; name: string; zone: string; address: string; lastSeenAt: number | null };
  instances: InstanceView[];
}

export interface ZoneNode {
  zone: string;
  hosts: HostNode[];
}

export function filterInstances(instances: InstanceView[], f: FleetFilter): InstanceView[] {
  return instances.filter(
    (i) =>
      (!f.service || i.service === f.service) &&
      (!f.zone || i.zone === f.zone) &&
      (!f.version || i.version === f.version),
  );
}

/**
 * Zones → hosts → instances, sorted by name. Hosts without (matching) instances are shown unless a
 * service or version filter is set; an instance whose host is unknown gets a placeholder host.
 */
export function fleetTree(hosts: HostView[], instances: InstanceView[], f: FleetFilter): ZoneNode[] {
  const shown = filterInstances(instances, f);
  const byHost = new Map<string, HostNode>();
  for (const h of hosts) {
    if (f.zone && h.zone !== f.zone) continue;
    byHost.set(h.name, { host: h, instances: [] });
  }
  for (const i of shown) {
    let node = byHost.get(i.host);
    if (!node) {
      node = {
        host: { id: i.host, name: i.host, zone: i.zone, address: '', lastSeenAt: null },
        instances: [],
      };
      byHost.set(i.host, node);
    }
    node.instances.push(i);
  }
  const zones = new Map<string, HostNode[]>();
  for (const node of byHost.values()) {
    if ((f.service || f.version) && node.instances.length === 0) continue;
    node.instances.sort((a, b) => a.service.localeCompare(b.service) || a.id.localeCompare(b.id));
    const z = node.host.zone || '(no zone)';
    zones.set(z, [...(zones.get(z) ?? []), node]);
  }
  return [...zones]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([zone, hs]) => ({ zone, hosts: hs.sort((a, b) => a.host.name.localeCompare(b.host.name)) }));
}

export function uniqueSorted(
  values: string[],
  cmp: (a: string, b: string) => number = (a, b) => a.localeCompare(b),
) {
  return [...new Set(values.filter((v) => v !== ''))].sort(cmp);
}

/** Instances that serve: running, healthy and routed. */
export function readyCount(service: string, instances: InstanceView[]): number {
  return instances.filter(
    (i) => i.service === service && i.desired === 'running' && i.route === 'ready' && i.healthy,
  ).length;
}

/** A host is considered gone after this long without a report (the controller's hostDownAfter). */
export const HOST_DOWN_MS = 15_000;

// ---- deploys --------------------------------------------------------------------------------------

/** The release `POST /v1/services/:name/rollback` picks: the newest stable one other than the current. */
export function rollbackTarget(s: ServiceView): string | null {
  return s.releases.find((r) => r.stable && r.version !== s.currentRelease)?.version ?? null;
}

export function isActive(d: DeployRecord): boolean {
  return d.state === 'pending' || d.state === 'running' || d.state === 'paused';
}

export type DeployControl = 'promote' | 'pause' | 'resume' | 'abort';

/**
 * Which controls a deploy in this state takes (the server refuses the others with 409). Promote ends a
 * canary's pause (or a blue-green's wait before the switch) early; other strategies have nothing to promote.
 */
export function deployControls(d: DeployRecord): DeployControl[] {
  const promote: DeployControl[] = d.strategy === 'canary' || d.strategy === 'blue-green' ? ['promote'] : [];
  if (d.state === 'running') return [...promote, 'pause', 'abort'];
  if (d.state === 'paused') return ['resume', 'abort'];
  return [];
}

/** `~ instances: 3 → 5`, `+ env.LOG_LEVEL: "debug"`, `- rolling.maxSurge: 1` — as `nines plan` prints them. */
export function renderChanges(changes: readonly FieldChange[]): string[] {
  const show = (v: unknown) =>
    typeof v === 'string' ? JSON.stringify(v) : (JSON.stringify(v) ?? 'undefined');
  return changes.map((c) =>
    !('from' in c)
      ? `+ ${c.path}: ${show(c.to)}`
      : !('to' in c)
        ? `- ${c.path}: ${show(c.from)}`
        : `~ ${c.path}: ${show(c.from)} → ${show(c.to)}`,
  );
}

export function deployDuration(d: DeployRecord, now: number): number | null {
  const t0 = d.startedAt ?? d.createdAt;
  return (d.finishedAt ?? now) - t0;
}

/** The one-line result, as the CLI prints it: `done: web v1 → v2 in 8.1 s` or `failed: …`. */
export function resultLine(d: DeployRecord, now: number = Date.now()): string {
  const arrow = `${d.service} ${d.fromVersion ?? '∅'} → ${d.toVersion}`;
  const took = deployDuration(d, now);
  const secs = took === null ? '' : ` in ${(took / 1000).toFixed(1)} s`;
  const seen =
    d.requests === null ||
    d.requests === undefined ||
    d.failedRequests === null ||
    d.failedRequests === undefined
      ? ''
      : ` · ${d.failedRequests} of ${d.requests.toLocaleString('en-US')} requests failed`;
  if (d.state === 'succeeded') return `done: ${arrow}${secs}${seen}`;
  if (d.state === 'failed' || d.state === 'reverted') {
    return `failed: ${arrow}${secs}: ${d.reason ?? 'unknown reason'}${seen}`;
  }
  if (d.state === 'paused') return `paused: ${arrow} (resume or abort)`;
  if (d.state === 'running') return `running: ${arrow} for ${secs.replace(' in ', '')}`;
  return `pending: ${arrow}`;
}

/** The severity a timeline entry is shown with. */
export function eventTone(type: string): 'bad' | 'good' | 'warn' | 'info' {
  if (/failed|revert|unhealthy|error|killed/.test(type)) return 'bad';
  if (/succeeded|healthy|routed|stopped$|drained/.test(type)) return 'good';
  if (/draining|stopping|interrupted|resumed|backoff/.test(type)) return 'warn';
  return 'info';
}

export function mergeBySeq(a: DeployEvent[], b: DeployEvent[]): DeployEvent[] {
  const m = new Map<number, DeployEvent>();
  for (const e of a) m.set(e.seq, e);
  for (const e of b) m.set(e.seq, e);
  return [...m.values()].sort((x, y) => x.seq - y.seq);
}

/** Newest first, unique by id, at most `limit`. */
export function mergeEvents(a: EventRecord[], b: EventRecord[], limit = 2000): EventRecord[] {
  const m = new Map<number, EventRecord>();
  for (const e of a) m.set(e.id, e);
  for (const e of b) m.set(e.id, e);
  return [...m.values()].sort((x, y) => y.id - x.id).slice(0, limit);
}

/** Every whitespace-separated term must appear (case-insensitive) in kind, subject or message. */
export function filterEvents(events: EventRecord[], query: string): EventRecord[] {
  const terms = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (terms.length === 0) return events;
  return events.filter((e) => {
    const hay = `${e.kind} ${e.subject} ${e.message}`.toLowerCase();
    return terms.every((t) => hay.includes(t));
  });
}

// ---- formatting -----------------------------------------------------------------------------------

export function formatDuration(ms: number): string {
  if (ms < 0) ms = 0;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** Deploy durations: 1.3 s, 42.0 s, then as formatDuration. */
export function formatSeconds(ms: number): string {
  return ms < 60_000 ? `${(Math.max(0, ms) / 1000).toFixed(1)} s` : formatDuration(ms);
}

export function ago(at: number | null, now: number): string {
  if (at === null) return 'never';
  const d = now - at;
  if (d < 1500) return 'just now';
  return `${formatDuration(d)} ago`;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** Local wall-clock time, HH:MM:SS (with the date when it is not today). */
export function clock(at: number, now: number = Date.now()): string {
  const d = new Date(at);
  const t = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  const n = new Date(now);
  if (d.toDateString() === n.toDateString()) return t;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${t}`;
}

export function clockMs(at: number): string {
  const d = new Date(at);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

// ---- routes ---------------------------------------------------------------------------------------

export type Route =
  | { page: 'fleet' }
  | { page: 'services' }
  | { page: 'deploys'; deployId?: string; service?: string; version?: string }
  | { page: 'alerts' }
  | { page: 'events' }
  | { page: 'drills' };

/** `#/deploys/d-123`, `#/deploys?service=web&version=v2`, `#/events` … (unknown → fleet). */
export function parseRoute(hash: string): Route {
  const h = hash.replace(/^#\/?/, '');
  const [path = '', query = ''] = h.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const q = new URLSearchParams(query);
  switch (parts[0]) {
    case 'services':
      return { page: 'services' };
    case 'events':
      return { page: 'events' };
    case 'alerts':
      return { page: 'alerts' };
    case 'drills':
      return { page: 'drills' };
    case 'deploys': {
      const r: Route = { page: 'deploys' };
      if (parts[1]) r.deployId = parts[1];
      const service = q.get('service');
      const version = q.get('version');
      if (service) r.service = service;
      if (version) r.version = version;
      return r;
    }
    default:
      return { page: 'fleet' };
  }
}

// ---- alerts, checks, uptime ---------------------------------------------------------------------------

const ALERT_ORDER: Record<string, number> = { firing: 0, pending: 1, resolved: 2, inactive: 3 };

/** Firing first (unacknowledged before acknowledged), then pending, then the rest; newest change first. */
export function sortAlerts(alerts: readonly AlertView[]): AlertView[] {
  return [...alerts].sort(
    (a, b) =>
      (ALERT_ORDER[a.state] ?? 9) - (ALERT_ORDER[b.state] ?? 9) ||
      Number(a.acknowledged === true) - Number(b.acknowledged === true) ||
      b.updatedAt - a.updatedAt,
  );
}

/** Firing alerts nobody acknowledged yet: the number in the navigation. */
export function unackedFiring(alerts: readonly AlertView[]): number {
  return alerts.filter((a) => a.state === 'firing' && !a.acknowledged).length;
}

/** `name=value`, `name!=value`, `name=~re`, `name!~re`: the server's syntax (alerting/grouping.ts). */
const MATCHER = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$/;

/**
 * The matchers typed into the silence form, one per line or comma-separated. Returns them trimmed, or
 * the first line the server would refuse (so the form says which, before sending).
 */
export function parseMatchers(text: string): { matchers: string[]; error: string | null } {
  const parts = text
    .split(/[\n,]/)
    .map((p) => p.trim())
    .filter(Boolean);
  if (parts.length === 0) return { matchers: [], error: 'a silence needs at least one matcher' };
  for (const p of parts) {
    const m = MATCHER.exec(p);
    if (!m)
      return { matchers: [], error: `"${p}" is not a matcher (name=value, name!=value, name=~re, name!~re)` };
    if (m[2] === '=~' || m[2] === '!~') {
      try {
        new RegExp(m[3] ?? '');
      } catch {
        return { matchers: [], error: `"${p}": the regular expression does not compile` };
      }
    }
  }
  return { matchers: parts, error: null };
}

/** A silence that matches exactly this alert: its rule and its labels (sorted, alertname first). */
export function matchersFor(a: Pick<AlertView, 'labels'>): string {
  return Object.entries(a.labels)
    .sort(([x], [y]) => (x === 'alertname' ? -1 : y === 'alertname' ? 1 : x.localeCompare(y)))
    .map(([k, v]) => `${k}=${/^[^\s,"]*$/.test(v) ? v : JSON.stringify(v)}`)
    .join(', ');
}

export function formatMatcher(m: { name: string; op: string; value: string }): string {
  return `${m.name}${m.op}${m.value}`;
}

/** `<input type="datetime-local">` value for a time (local clock, minutes). */
export function toLocalInput(at: number): string {
  const d = new Date(at);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** The time a `datetime-local` value means on this browser's clock, or null. */
export function fromLocalInput(value: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(value);
  if (!m) return null;
  const [, y, mo, d, h, mi, sec] = m;
  const at = new Date(
    Number(y),
    Number(mo) - 1,
    Number(d),
    Number(h),
    Number(mi),
    Number(sec ?? 0),
  ).getTime();
  return Number.isFinite(at) ? at : null;
}

/**
 * Share of the error budget left: 1 − down / ((1 − objective) × measured), as the controller computes
 * it (checks/uptime.ts); negative when overspent, null when nothing was measured.
 */
export function budgetLeft(
  r: Pick<UptimeRow, 'upMs' | 'degradedMs' | 'downMs'>,
  objective: number,
): number | null {
  const measured = r.upMs + r.degradedMs + r.downMs;
  if (measured === 0 || objective >= 1) return null;
  return 1 - r.downMs / ((1 - objective) * measured);
}

/** 0.99953 → "99.953 %"; null → "no data". */
export function percent(ratio: number | null | undefined, digits = 3): string {
  if (ratio === null || ratio === undefined || !Number.isFinite(ratio)) return 'no data';
  return `${(ratio * 100).toFixed(digits).replace(/\.?0+$/, '')} %`;
}

export type LocationState = 'up' | 'down' | 'stale';

/** One location's view of a check: its last result, or stale after three missed intervals. */
export function locationState(
  l: Pick<CheckLocation, 'ok' | 'at'>,
  intervalMs: number,
  now: number,
): LocationState {
  if (now - l.at > Math.max(3 * intervalMs, 15_000)) return 'stale';
  return l.ok ? 'up' : 'down';
}

export interface IncidentRow {
  subject: string;
  kind: 'service' | 'check';
  start: number;
  end: number | null;
  durationMs: number;
  cause: string;
}

/** Every incident of the report, newest first. */
export function incidentsOf(rows: readonly UptimeRow[]): IncidentRow[] {
  return rows
    .flatMap((r) => r.incidents.map((i) => ({ subject: r.name, kind: r.kind, ...i })))
    .sort((a, b) => b.start - a.start);
}

// ---- sparklines ---------------------------------------------------------------------------------------

/**
 * An SVG path for values over time in a `width`×`height` box (y grows down). Gaps (null) break the
 * line. The scale starts at 0 and ends at the largest value, or `floor` when all are smaller (so a
 * flat 0.1 % 5xx share is not drawn as a full-height wall). `last` marks the newest value (a dot,
 * so a single point shows too).
 */
export function sparkPath(
  points: ReadonlyArray<{ at: number; value: number | null }>,
  width: number,
  height: number,
  floor = 0,
): { d: string; max: number; last: { x: number; y: number } | null; dots: Array<{ x: number; y: number }> } {
  const vals = points.map((p) => p.value).filter((v): v is number => v !== null && Number.isFinite(v));
  const max = Math.max(floor, ...vals, 0);
  if (points.length === 0) return { d: '', max, last: null, dots: [] };
  const t0 = points[0]?.at ?? 0;
  const t1 = points[points.length - 1]?.at ?? t0;
  const span = t1 - t0 || 1;
  const r = (n: number) => Math.round(n * 10) / 10;
  const ok = (v: number | null | undefined): v is number =>
    v !== null && v !== undefined && Number.isFinite(v);
  let d = '';
  let last: { x: number; y: number } | null = null;
  const dots: Array<{ x: number; y: number }> = [];
  points.forEach((p, i) => {
    if (!ok(p.value)) return;
    const x = r(points.length === 1 ? width : ((p.at - t0) / span) * width);
    const y = r(max > 0 ? height - (p.value / max) * height : height);
    const joined = ok(points[i - 1]?.value);
    d += `${joined ? 'L' : 'M'}${x},${y}`;
    // A lone value (gaps on both sides) draws no line: it gets a dot.
    if (!joined && !ok(points[i + 1]?.value)) dots.push({ x, y });
    last = { x, y };
  });
  return { d, max, last, dots };
}
