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
  strategy: 'rolling';
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
  strategy: 'rolling';
  desired: number;
  maxSurge: number;
  maxUnavailable: number;
  old: number;
  fresh: number;
  steps: RollingStep[];
  text: string;
  warnings: string[];
}
