import { createHash } from 'node:crypto';
import { canonicalLabels, DAY, type Labels, MINUTE, type Millis } from './types.js';

// ─── Matchers (Prometheus/Alertmanager syntax) ─────────────────────────────────────────────────────────

export type MatchOp = '=' | '!=' | '=~' | '!~';

export interface Matcher {
  name: string;
  op: MatchOp;
  value: string;
}

const regexCache = new Map<string, RegExp>();
function anchored(re: string): RegExp {
  let r = regexCache.get(re);
  if (r === undefined) {
    r = new RegExp(`^(?:${re})$`); // anchored like Prometheus
    regexCache.set(re, r);
  }
  return r;
}

function matchOne(labels: Labels, m: Matcher): boolean {
  const v = labels[m.name] ?? '';
  switch (m.op) {
    case '=':
      return v === m.value;
    case '!=':
      return v !== m.value;
    case '=~':
      return anchored(m.value).test(v);
    case '!~':
      return !anchored(m.value).test(v);
  }
}

/** A missing label matches as the empty string, as in Alertmanager. */
export function matches(labels: Labels, matchers: readonly Matcher[]): boolean {
  return matchers.every((m) => matchOne(labels, m));
}

/** Parses `name=value`, `name!=value`, `name=~re`, `name!~re` (value optionally double-quoted). */
export function parseMatcher(s: string): Matcher {
  const m = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$/.exec(s);
  if (m === null) throw new SyntaxError(`not a matcher: ${s}`);
  let value = m[3] ?? '';
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = JSON.parse(value) as string;
  const op = m[2] as MatchOp;
  if (op === '=~' || op === '!~') anchored(value);
  return { name: m[1] ?? '', op, value };
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// ─── Silences ──────────────────────────────────────────────────────────────────────────────────────────

export interface Silence {
  id: string;
  matchers: readonly Matcher[];
  startsAt: Millis;
  endsAt: Millis;
  createdBy: string;
  comment?: string;
}

export function silenceActive(s: Silence, now: Millis): boolean {
  return s.startsAt <= now && now < s.endsAt;
}

/** Ids of the active silences that mute these labels. */
export function silencedBy(labels: Labels, silences: readonly Silence[], now: Millis): string[] {
  return silences.filter((s) => silenceActive(s, now) && matches(labels, s.matchers)).map((s) => s.id);
}

/**
 * A deploy silences the blips it causes itself, and only those: the instances it stops or starts, of its
 * own service, for the deploy's duration plus a grace period. Nothing else of the service is muted.
 */
export function deploySilence(opts: {
  deployId: string;
  service: string;
  instances: readonly string[];
  startsAt: Millis;
  endsAt: Millis;
  graceMs?: Millis;
}): Silence {
  return {
    id: `deploy:${opts.deployId}`,
    matchers: [
      { name: 'service', op: '=', value: opts.service },
      // an empty instance list matches nothing (a never-matching alternation)
      {
        name: 'instance',
        op: '=~',
        value: opts.instances.length === 0 ? '(?!)' : opts.instances.map(escapeRegex).join('|'),
      },
    ],
    startsAt: opts.startsAt,
    endsAt: opts.endsAt + (opts.graceMs ?? 2 * MINUTE),
    createdBy: `deploy ${opts.deployId}`,
    comment: `expected blips of deploy ${opts.deployId}`,
  };
}

// ─── Inhibition ────────────────────────────────────────────────────────────────────────────────────────

export interface InhibitRule {
  /** Matchers a firing alert must satisfy to inhibit, e.g. `alertname="host_down"`. */
  source: readonly Matcher[];
  /** Matchers of the alerts it may suppress, e.g. `alertname=~"instance_.*"`. */
  target: readonly Matcher[];
  /** Labels that must be equal on source and target, e.g. `["host"]`. */
  equal: readonly string[];
}

export interface ActiveAlert {
  dedupKey: string;
  labels: Labels;
  /** Only firing alerts are notified, inhibit others, or are inhibited. */
  state: 'pending' | 'firing' | 'resolved' | 'inactive';
}

/** The dedup key of a firing alert that inhibits `alert`, or undefined. An alert never inhibits itself. */
export function inhibitedBy(
  alert: Pick<ActiveAlert, 'dedupKey' | 'labels'>,
  firing: readonly ActiveAlert[],
  rules: readonly InhibitRule[],
): string | undefined {
  for (const rule of rules) {
    if (!matches(alert.labels, rule.target)) continue;
    for (const src of firing) {
      if (src.state !== 'firing' || src.dedupKey === alert.dedupKey) continue;
      if (!matches(src.labels, rule.source)) continue;
      if (rule.equal.every((l) => (src.labels[l] ?? '') === (alert.labels[l] ?? ''))) return src.dedupKey;
    }
  }
  return undefined;
}

// ─── Maintenance windows ───────────────────────────────────────────────────────────────────────────────

export type MaintenanceSchedule =
  | { kind: 'once'; startsAt: Millis; endsAt: Millis }
  /** Weekly, in UTC: days 0 = Sunday … 6 = Saturday, start `HH:MM`; may run past midnight. */
  | { kind: 'weekly'; days: readonly number[]; start: string; durationMs: Millis };

export interface MaintenanceWindow {
  id: string;
  matchers: readonly Matcher[];
  schedule: MaintenanceSchedule;
}

export interface Interval {
  start: Millis;
  end: Millis;
}

function parseHHMM(s: string): number {
  const m = /^([01]\d|2[0-3]):([0-5]\d)$/.exec(s);
  if (m === null) throw new SyntaxError(`not a HH:MM time: ${s}`);
  return (Number(m[1]) * 60 + Number(m[2])) * MINUTE;
}

/** The window's occurrences that overlap [from, to). */
export function occurrences(s: MaintenanceSchedule, from: Millis, to: Millis): Interval[] {
  if (s.kind === 'once')
    return s.startsAt < to && s.endsAt > from ? [{ start: s.startsAt, end: s.endsAt }] : [];
  const offset = parseHHMM(s.start);
  const out: Interval[] = [];
  // Start from enough days back to catch an occurrence that began earlier and still runs.
  const back = Math.ceil(s.durationMs / DAY) + 1;
  const firstDay = Math.floor(from / DAY) - back;
  const lastDay = Math.floor(to / DAY);
  for (let d = firstDay; d <= lastDay; d++) {
    const dayStart = d * DAY;
    const weekday = new Date(dayStart).getUTCDay();
    if (!s.days.includes(weekday)) continue;
    const start = dayStart + offset;
    const end = start + s.durationMs;
    if (start < to && end > from) out.push({ start, end });
  }
  return out;
}

export function maintenanceActive(w: MaintenanceWindow, now: Millis): boolean {
  return occurrences(w.schedule, now, now + 1).length > 0;
}

/** Ids of the maintenance windows in force for these labels now. */
export function inMaintenance(labels: Labels, windows: readonly MaintenanceWindow[], now: Millis): string[] {
  return windows.filter((w) => matches(labels, w.matchers) && maintenanceActive(w, now)).map((w) => w.id);
}

/** Merged maintenance intervals within [from, to) (for uptime reports: excluded and shown). */
export function maintenanceIntervals(
  labels: Labels,
  windows: readonly MaintenanceWindow[],
  from: Millis,
  to: Millis,
): Interval[] {
  const all = windows
    .filter((w) => matches(labels, w.matchers))
    .flatMap((w) => occurrences(w.schedule, from, to))
    .map((i) => ({ start: Math.max(i.start, from), end: Math.min(i.end, to) }))
    .sort((a, b) => a.start - b.start);
  const merged: Interval[] = [];
  for (const i of all) {
    const last = merged[merged.length - 1];
    if (last !== undefined && i.start <= last.end) last.end = Math.max(last.end, i.end);
    else merged.push({ ...i });
  }
  return merged;
}

// ─── Suppression: silences + maintenance + inhibition ──────────────────────────────────────────────────

export type Suppression =
  | { kind: 'silence'; ids: string[] }
  | { kind: 'maintenance'; ids: string[] }
  | { kind: 'inhibited'; by: string };

export interface SuppressionContext {
  silences: readonly Silence[];
  maintenance: readonly MaintenanceWindow[];
  inhibitRules: readonly InhibitRule[];
  /** All alerts currently known (the firing ones can inhibit). */
  alerts: readonly ActiveAlert[];
}

/** Why this alert must not be notified now, or undefined if it may be. */
export function suppression(
  alert: Pick<ActiveAlert, 'dedupKey' | 'labels'>,
  ctx: SuppressionContext,
  now: Millis,
): Suppression | undefined {
  const mw = inMaintenance(alert.labels, ctx.maintenance, now);
  if (mw.length > 0) return { kind: 'maintenance', ids: mw };
  const sil = silencedBy(alert.labels, ctx.silences, now);
  if (sil.length > 0) return { kind: 'silence', ids: sil };
  const by = inhibitedBy(alert, ctx.alerts, ctx.inhibitRules);
  if (by !== undefined) return { kind: 'inhibited', by };
  return undefined;
}

// ─── Grouping (Alertmanager semantics) ─────────────────────────────────────────────────────────────────

export interface GroupingOptions {
  groupBy: readonly string[];
  /** Wait this long after a group appears before its first notification (collects the burst). */
  groupWaitMs: Millis;
  /** Minimum gap between notifications of a group whose content changed. */
  groupIntervalMs: Millis;
  /** Re-send an unchanged, still-firing group after this long. */
  repeatIntervalMs: Millis;
}

export const DEFAULT_GROUPING: GroupingOptions = {
  groupBy: ['alertname', 'service'],
  groupWaitMs: 30_000,
  groupIntervalMs: 5 * MINUTE,
  repeatIntervalMs: 4 * 60 * MINUTE,
};

export interface GroupAlert {
  dedupKey: string;
  labels: Labels;
  state: 'firing' | 'resolved';
}

export interface AlertGroup {
  key: string;
  labels: Labels;
  alerts: GroupAlert[];
}

export function groupLabels(labels: Labels, groupBy: readonly string[]): Labels {
  const out: Record<string, string> = {};
  for (const k of groupBy) out[k] = labels[k] ?? '';
  return out;
}

export function groupKey(labels: Labels, groupBy: readonly string[]): string {
  return createHash('sha256')
    .update(canonicalLabels(groupLabels(labels, groupBy)))
    .digest('hex')
    .slice(0, 16);
}

export function groupAlerts(alerts: readonly GroupAlert[], groupBy: readonly string[]): AlertGroup[] {
  const groups = new Map<string, AlertGroup>();
  for (const a of alerts) {
    const key = groupKey(a.labels, groupBy);
    let g = groups.get(key);
    if (g === undefined) {
      g = { key, labels: groupLabels(a.labels, groupBy), alerts: [] };
      groups.set(key, g);
    }
    g.alerts.push(a);
  }
  for (const g of groups.values()) g.alerts.sort((a, b) => (a.dedupKey < b.dedupKey ? -1 : 1));
  return [...groups.values()].sort((a, b) => (a.key < b.key ? -1 : 1));
}

/** Fingerprint of what a notification of this group would say: changes when an alert joins, leaves or resolves. */
export function groupContentHash(g: AlertGroup): string {
  return createHash('sha256')
    .update(g.alerts.map((a) => `${a.dedupKey}:${a.state}`).join('\n'))
    .digest('hex')
    .slice(0, 16);
}

/** What the store keeps per group between ticks. */
export interface GroupState {
  firstSeenAt: Millis;
  lastNotifiedAt?: Millis;
  lastContentHash?: string;
}

export interface GroupDecision {
  notify: boolean;
  reason?: 'initial' | 'changed' | 'repeat';
  /** When to look again if nothing changes (for the scheduler). */
  nextCheckAt: Millis;
}

/**
 * Should this group be notified now? First after `groupWait`; on a content change no sooner than
 * `groupInterval` after the last one; unchanged and still firing after `repeatInterval`. A group whose
 * alerts are all resolved and already notified stays quiet (the integrator may drop its state).
 */
export function groupDue(g: AlertGroup, st: GroupState, now: Millis, o: GroupingOptions): GroupDecision {
  const hash = groupContentHash(g);
  if (st.lastNotifiedAt === undefined) {
    const at = st.firstSeenAt + o.groupWaitMs;
    return now >= at
      ? { notify: true, reason: 'initial', nextCheckAt: now + o.groupIntervalMs }
      : { notify: false, nextCheckAt: at };
  }
  if (hash !== st.lastContentHash) {
    const at = st.lastNotifiedAt + o.groupIntervalMs;
    return now >= at
      ? { notify: true, reason: 'changed', nextCheckAt: now + o.groupIntervalMs }
      : { notify: false, nextCheckAt: at };
  }
  const anyFiring = g.alerts.some((a) => a.state === 'firing');
  if (!anyFiring) return { notify: false, nextCheckAt: Number.POSITIVE_INFINITY };
  const at = st.lastNotifiedAt + o.repeatIntervalMs;
  return now >= at
    ? { notify: true, reason: 'repeat', nextCheckAt: now + o.repeatIntervalMs }
    : { notify: false, nextCheckAt: at };
}

/** The state to store after notifying. */
export function markNotified(g: AlertGroup, st: GroupState, now: Millis): GroupState {
  return { ...st, lastNotifiedAt: now, lastContentHash: groupContentHash(g) };
}
