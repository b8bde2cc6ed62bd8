/**
 * What the controller's API answers, as the dashboard reads it. These mirror the server's types
 * (src/controller/status.ts, src/controller/store/types.ts, src/controller/web.ts), which the dashboard
 * cannot import: it is a separate, browser-only program.
 */

export type Role = 'admin' | 'read' | 'node' | 'join';

export interface Whoami {
  name: string;
  role: Role | null;
}

export interface InstanceView {
  id: string;
  service: string;
  version: string;
  host: string;
  zone: string;
  desired: 'running' | 'stopped';
  route: 'none' | 'ready' | 'draining';
  state: string;
  healthy: boolean;
  proxyUp: boolean;
  port: number | null;
  pid: number | null;
  restarts: number;
  startedAt: number | null;
  /** Percent of one core and resident bytes at the agent's last sample (null: not running or not yet). */
  cpu?: number | null;
  memoryBytes?: number | null;
}

export interface ReleaseView {
  version: string;
  sha256: string;
  size: number;
  stable: boolean;
  createdAt: number;
}

export type ServiceMode = 'live' | 'read-only' | 'maintenance' | 'pause';

export interface ServiceView {
  name: string;
  mode: ServiceMode;
  currentRelease: string | null;
  desiredInstances: number;
  lockedBy: string | null;
  /** Newest first. */
  releases: ReleaseView[];
}

export interface HostView {
  id: string;
  name: string;
  zone: string;
  address: string;
  lastSeenAt: number;
}

export interface StatusView {
  services: ServiceView[];
  instances: InstanceView[];
  hosts: HostView[];
  proxies: Array<{ id: string; appliedVersion: number; at: number }>;
  /** Server clock when the stream built this view (absent from GET /v1/status). */
  now?: number;
}

export type DeployState = 'pending' | 'running' | 'paused' | 'succeeded' | 'failed' | 'reverted';

export interface DeployRecord {
  id: string;
  service: string;
  fromVersion: string | null;
  toVersion: string;
  strategy: DeployStrategy;
  kind: 'deploy' | 'rollback' | 'initial';
  state: DeployState;
  reason: string | null;
  createdBy: string;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  /** What the proxies saw while the deploy ran (null: not counted). */
  requests?: number | null;
  failedRequests?: number | null;
}

export interface DeployEvent {
  deployId: string;
  seq: number;
  at: number;
  type: string;
  message: string;
  data: Record<string, unknown> | null;
}

export interface EventRecord {
  id: number;
  at: number;
  kind: string;
  subject: string;
  message: string;
  data: Record<string, unknown> | null;
}

export interface RollingStep {
  start: number;
  stop: number;
  done: boolean;
}

export interface DeployPlan {
  service: string;
  from: string | null;
  to: string;
  strategy: DeployStrategy;
  desired: number;
  maxSurge: number;
  maxUnavailable: number;
  old: number;
  fresh: number;
  steps: RollingStep[];
  /** Other strategies: what happens, in order. */
  lines: string[];
  /** Every instance already runs `to`. */
  nothing: boolean;
  text: string;
  warnings: string[];
}

export type DeployStrategy = 'rolling' | 'canary' | 'blue-green' | 'all-at-once' | 'in-place';
export const DEPLOY_STRATEGIES: readonly DeployStrategy[] = [
  'rolling',
  'canary',
  'blue-green',
  'all-at-once',
  'in-place',
];

// ---- alerts, checks, uptime (src/controller/alerting/store.ts, checks/service.ts, checks/reports.ts) ----

export type AlertState = 'inactive' | 'pending' | 'firing' | 'resolved';

export interface AlertView {
  dedupKey: string;
  ruleId: string;
  labels: Record<string, string>;
  severity: 'critical' | 'error' | 'warning' | 'info';
  summary: string;
  state: AlertState;
  activeSince?: number;
  firedAt?: number;
  resolvedAt?: number;
  acknowledged?: boolean;
  acknowledgedAt?: number;
  acknowledgedBy?: string;
  lastValue?: number;
  /** Why notifications are withheld now (`silence:ID`, `maintenance:ID`, `inhibited:KEY`), or null. */
  suppressed: string | null;
  updatedAt: number;
}

export interface MatcherView {
  name: string;
  op: '=' | '!=' | '=~' | '!~';
  value: string;
}

export interface SilenceView {
  id: string;
  matchers: MatcherView[];
  startsAt: number;
  endsAt: number;
  createdBy: string;
  comment?: string;
}

export type CheckState = 'up' | 'degraded' | 'down' | 'unknown';

export interface CheckLocation {
  location: string;
  name: string;
  ok: boolean;
  at: number;
  message: string;
  latencyMs: number;
  status?: number;
}

export interface CheckView {
  name: string;
  spec: {
    type: 'http' | 'tcp' | 'dns';
    url?: string;
    host?: string;
    port?: number;
    name?: string;
    interval: number;
    dependency: boolean;
    service?: string;
  };
  state: CheckState;
  since: number | null;
  message: string;
  quorum: number;
  locations: CheckLocation[];
}

export interface Incident {
  start: number;
  /** null: still down at the end of the window. */
  end: number | null;
  durationMs: number;
  cause: string;
}

export type UptimeWindow = '24h' | '7d' | '30d';

export interface UptimeRow {
  kind: 'service' | 'check';
  name: string;
  window: string;
  upMs: number;
  degradedMs: number;
  downMs: number;
  unknownMs: number;
  maintenanceMs: number;
  availability: number | null;
  incidents: Incident[];
  service?: string;
  dependency?: boolean;
}

export interface RatePoint {
  at: number;
  requestsPerSecond: number;
  errorRatio: number | null;
  p99Seconds: number | null;
}

export interface ServiceCharts {
  now: number;
  minutes: number;
  stepSeconds: number;
  services: Array<{ service: string; points: RatePoint[] }>;
}

/** One field of a service's config that differs between two releases (src/core/config-diff.ts). */
export interface FieldChange {
  path: string;
  /** Absent when the field is new. */
  from?: unknown;
  /** Absent when the field is removed. */
  to?: unknown;
}

/** `GET /v1/services/:name/releases/:version/diff[?from=]`. */
export interface ReleaseDiff {
  service: string;
  from: string | null;
  to: string;
  changes: FieldChange[];
}
