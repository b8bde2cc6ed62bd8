import {
  allowedDowntimeMs,
  nines,
  parallel,
  replicasNeeded,
  requiredInSeries,
  series,
} from '../alerting/availability.js';
import { type MaintenanceWindow, maintenanceIntervals } from '../alerting/grouping.js';
import type { EventRecord, Store } from '../store/types.js';
import { serviceSubject } from './service.js';
import {
  computeUptime,
  errorBudgetLeft,
  mergeSpans,
  REPORT_WINDOWS,
  type ReportWindow,
  type Span,
  type UptimeReport,
} from './uptime.js';

/**
 * Uptime reports and `nines availability`, from the stored state transitions of services and checks.
 * Maintenance comes from two places: a service put in `maintenance` mode (the event log records when)
 * and the maintenance windows of the alerting configuration (passed in by whoever owns them).
 */

export interface UptimeRow extends UptimeReport {
  kind: 'service' | 'check';
  name: string;
  window: ReportWindow;
  objective: number;
  errorBudgetLeft: number | null;
  /** Checks: a third-party dependency. */
  dependency?: boolean;
  /** Checks: the service they belong to. */
  service?: string;
  /** Checks: shown on the public status page. */
  public?: boolean;
  /** Services: the proxies' answers over the window (stored SLO counts), maintenance left out. */
  requests?: RequestFigures;
}

/** Request-based availability: what the SLO burn rates and error budget are computed from. */
export interface RequestFigures {
  total: number;
  /** 5xx answers. */
  failed: number;
  /** (total − failed) / total; null without traffic. */
  availability: number | null;
  /** 1 − failed / ((1 − objective) × total); null without traffic. */
  errorBudgetLeft: number | null;
}

/**
 * A service's answers in [from, to) from the stored SLO counts (alerting/slo-store.ts), less those in
 * the maintenance spans. Buckets count when they start inside a span, so this is exact to the minute for
 * the last 3 days and to the hour / day of the rollups beyond.
 */
export async function requestFigures(
  store: Store,
  service: string,
  from: number,
  to: number,
  maintenance: readonly Span[],
  objective: number,
): Promise<RequestFigures> {
  const slo = store.sloCounts();
  const all = await slo.sum({ service, from, to });
  let total = all.total;
  let failed = all.bad;
  for (const m of mergeSpans(maintenance, from, to)) {
    const x = await slo.sum({ service, from: m.start, to: m.end });
    total -= x.total;
    failed -= x.bad;
  }
  if (total <= 0) return { total: 0, failed: 0, availability: null, errorBudgetLeft: null };
  return {
    total,
    failed,
    availability: (total - failed) / total,
    errorBudgetLeft: objective >= 1 ? null : 1 - failed / ((1 - objective) * total),
  };
}

export interface ReportDeps {
  store: Store;
  now?: () => number;
  /** Maintenance windows from the alerting configuration (default none). */
  maintenanceWindows?: () => readonly MaintenanceWindow[];
}

/** Spans a service spent in `maintenance` mode, from its `service.mode` events (newest first in the log). */
export function modeMaintenanceSpans(events: readonly EventRecord[], to: number): Span[] {
  const spans: Span[] = [];
  let start: number | undefined;
  for (const e of [...events].sort((a, b) => a.at - b.at || a.id - b.id)) {
    const inMaint = / is maintenance\b/.test(e.message);
    if (inMaint && start === undefined) start = e.at;
    else if (!inMaint && start !== undefined) {
      spans.push({ start, end: e.at });
      start = undefined;
    }
  }
  if (start !== undefined) spans.push({ start, end: to });
  return spans;
}

export async function uptimeReport(
  d: ReportDeps,
  window: ReportWindow,
  objective: number,
): Promise<UptimeRow[]> {
  const to = (d.now ?? Date.now)();
  const from = to - REPORT_WINDOWS[window];
  const checks = d.store.checks();
  const windows = d.maintenanceWindows?.() ?? [];
  const rows: UptimeRow[] = [];
  const one = async (
    kind: 'service' | 'check',
    name: string,
    subject: string,
    labels: Record<string, string>,
    extra: Span[],
  ) => {
    const [before, changes] = await Promise.all([
      checks.stateAt(subject, from),
      checks.listTransitions({ subject, since: from }),
    ]);
    const maint = [...maintenanceIntervals(labels, windows, from, to), ...extra];
    const r = computeUptime(
      before ? { state: before.to, cause: before.cause } : undefined,
      changes.map((c) => ({ at: c.at, to: c.to, cause: c.cause })),
      from,
      to,
      maint,
    );
    return { ...r, kind, name, window, objective, errorBudgetLeft: errorBudgetLeft(r, objective) };
  };
  for (const svc of await d.store.listServices()) {
    const events = await d.store.listEvents({ kind: 'service.mode', subject: svc.name, limit: 1000 });
    const spans = modeMaintenanceSpans(events, to);
    const row = await one('service', svc.name, serviceSubject(svc.name), { service: svc.name }, spans);
    rows.push({
      ...row,
      requests: await requestFigures(d.store, svc.name, from, to + 1, row.maintenance, objective),
    });
  }
  for (const c of await checks.listChecks()) {
    const labels: Record<string, string> = {
      check: c.name,
      ...(c.spec.service ? { service: c.spec.service } : {}),
    };
    let spans: Span[] = [];
    if (c.spec.service) {
      const events = await d.store.listEvents({ kind: 'service.mode', subject: c.spec.service, limit: 1000 });
      spans = modeMaintenanceSpans(events, to);
    }
    rows.push({
      ...(await one('check', c.name, c.name, labels, spans)),
      dependency: c.spec.dependency,
      public: c.spec.public,
      ...(c.spec.service ? { service: c.spec.service } : {}),
    });
  }
  return rows;
}

export interface AvailabilityComponent {
  name: string;
  kind: 'instances' | 'check' | 'dependency';
  /** Measured availability of one member (an instance: the service's; a check: its own). */
  measured: number | null;
  /** Members in parallel (instances across zones); 1 for checks. */
  members: number;
  /** Availability of the component as a whole. */
  composed: number | null;
}

export interface AvailabilityAnswer {
  service: string;
  window: ReportWindow;
  objective: number;
  components: AvailabilityComponent[];
  /** Series composition of the components. */
  predicted: number | null;
  predictedNines: number | null;
  /** What the service itself measured over the window. */
  measured: number | null;
  /** The share of the proxies' answers that were not 5xx over the window (stored SLO counts). */
  measuredByRequests: number | null;
  meetsObjective: boolean | null;
  /** With n components in series, each needs at least this to meet the objective. */
  requiredPerComponent: number;
  allowedDowntimeMs: number;
  /** Instances (in parallel) each of the service's measured availability needs to meet the objective. */
  instancesNeeded: number | null;
}

/**
 * Seed 004's arithmetic on the live topology: the service's instances in parallel (each with the
 * availability measured for one instance-equivalent) in series with every check declared for the service
 * (its dependencies).
 */
export function availabilityFor(
  service: { name: string; instances: number },
  rows: readonly UptimeRow[],
  objective: number,
  window: ReportWindow,
): AvailabilityAnswer {
  const svcRow = rows.find((r) => r.kind === 'service' && r.name === service.name);
  const deps = rows.filter((r) => r.kind === 'check' && r.service === service.name);
  const components: AvailabilityComponent[] = [];
  const members = Math.max(1, service.instances);
  // The service row measures "at least one healthy instance": back out one instance's availability,
  // assuming independent failures: 1 - (1-a)^(1/n).
  const svcA = svcRow?.availability ?? null;
  const perInstance = svcA === null ? null : 1 - (1 - svcA) ** (1 / members);
  components.push({
    name: `${service.name} (${members} instance${members === 1 ? '' : 's'})`,
    kind: 'instances',
    measured: perInstance,
    members,
    composed: perInstance === null ? null : parallel(...Array.from({ length: members }, () => perInstance)),
  });
  for (const r of deps) {
    components.push({
      name: r.name,
      kind: r.dependency ? 'dependency' : 'check',
      measured: r.availability,
      members: 1,
      composed: r.availability,
    });
  }
  const known = components.map((c) => c.composed).filter((x): x is number => x !== null);
  const predicted = known.length === components.length && known.length > 0 ? series(...known) : null;
  return {
    service: service.name,
    window,
    objective,
    components,
    predicted,
    predictedNines: predicted === null ? null : nines(predicted),
    measured: svcA,
    measuredByRequests: svcRow?.requests?.availability ?? null,
    meetsObjective: predicted === null ? null : predicted >= objective,
    requiredPerComponent: requiredInSeries(objective, components.length),
    allowedDowntimeMs: allowedDowntimeMs(objective, REPORT_WINDOWS[window]),
    instancesNeeded: perInstance === null || perInstance <= 0 ? null : replicasNeeded(perInstance, objective),
  };
}
