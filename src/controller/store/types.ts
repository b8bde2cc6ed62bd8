import type { StateSnapshot } from '../../core/backup-file.js';
import type { ServiceSpec, StrategyName } from '../../core/config.js';
import type { DeployState } from '../../core/lifecycle.js';
import type { ObservedInstance } from '../../core/protocol.js';
import type { TrafficSplit } from '../../core/strategies.js';
import type { SloCountStore } from '../alerting/slo-store.js';
import type { CheckStore } from '../checks/store.js';
import type { NonceStore } from './nonces.js';

/**
 * The controller's durable state. One interface, two implementations over the same SQL (Kysely):
 * embedded SQLite (default) and PostgreSQL (several controllers). Every method is atomic on its own;
 * `transaction()` groups several. Times are epoch milliseconds.
 */

/**
 * How the proxies treat a service's traffic: `live`; `read-only` (unsafe methods get 503 + Retry-After,
 * reads pass — seed 001); `maintenance` (503 page); `pause` (hold new requests during a quick switch).
 */
export type ServiceMode = 'live' | 'read-only' | 'maintenance' | 'pause';

export interface ServiceModeOptions {
  /** Retry-After on refused requests, seconds. */
  retryAfterSeconds?: number;
  /** Shown on the maintenance page / in the JSON body. */
  message?: string;
  /** Longest hold of a request in `pause`, ms. */
  pauseTimeoutMs?: number;
}

export interface ServiceRecord {
  name: string;
  spec: ServiceSpec;
  /** The release the service's instances should run once no deploy is in flight. */
  currentRelease: string | null;
  /** Id of the deploy holding this service's lock, or null. */
  lockedBy: string | null;
  createdAt: number;
  updatedAt: number;
  mode: ServiceMode;
  modeOptions: ServiceModeOptions | null;
  /** How the proxies split traffic between releases (canary, blue-green); null/absent: evenly. */
  traffic?: TrafficSplit | null;
}

export interface ReleaseRecord {
  service: string;
  version: string;
  sha256: string;
  size: number;
  /** The service spec captured when the release was made: a release is artifact + config. */
  spec: ServiceSpec;
  /** True once a deploy of this release finished with every instance healthy. */
  stable: boolean;
  createdBy: string;
  createdAt: number;
  /** Monotonic per store; orders releases of a service. */
  seq: number;
}

export type DeployKind = 'deploy' | 'rollback' | 'initial';

export interface DeployRecord {
  id: string;
  service: string;
  fromVersion: string | null;
  toVersion: string;
  strategy: StrategyName;
  kind: DeployKind;
  state: DeployState;
  reason: string | null;
  createdBy: string;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  /** Answers the proxies gave for the service while the deploy ran, and how many were 5xx (null: unknown). */
  requests: number | null;
  failedRequests: number | null;
  /** Per-deploy overrides (`nines deploy --no-auto-revert`). */
  options?: DeployOptions | null;
}

export interface DeployOptions {
  /** Overrides the spec's autoRevert. */
  autoRevert?: boolean;
}

export interface DeployEventRecord {
  deployId: string;
  /** 1, 2, 3 … per deploy. */
  seq: number;
  at: number;
  type: string;
  message: string;
  data: Record<string, unknown> | null;
}

export type InstanceRouteState = 'none' | 'ready' | 'draining';

export interface InstanceRecord {
  id: string;
  service: string;
  releaseVersion: string;
  hostId: string;
  /** What the controller wants the agent to do with it. */
  desired: 'running' | 'stopped';
  /** What the controller tells the proxies. */
  route: InstanceRouteState;
  deployId: string | null;
  /** Last report from the agent, if any. */
  observed: ObservedInstance | null;
  createdAt: number;
  updatedAt: number;
}

export interface HostRecord {
  id: string;
  name: string;
  zone: string;
  labels: Record<string, string>;
  address: string;
  registeredAt: number;
  lastSeenAt: number;
  /** Hex HMAC-SHA256 key the host signs its requests with; null before it registered with a token. */
  key: string | null;
  /** A revoked host's requests are refused (NINES_E_HOST_REVOKED). */
  revokedAt: number | null;
}

/** A finished drill: what was injected, what the load saw, pass/fail. `result` is the report (src/drill/drill.ts). */
export interface DrillRecord {
  id: string;
  service: string;
  scenario: string;
  outcome: 'passed' | 'failed' | 'error';
  createdBy: string;
  startedAt: number;
  finishedAt: number;
  result: Record<string, unknown>;
}

export interface EventRecord {
  id: number;
  at: number;
  kind: string;
  subject: string;
  message: string;
  data: Record<string, unknown> | null;
}

/** `join` tokens only register hosts and proxies (then a host signs with its own key, a proxy uses its
 *  own `proxy` token: controller/proxies.ts); `node` is the shared token of the embedded platform;
 *  `metrics` only scrapes /metrics. */
export type TokenRole = 'admin' | 'read' | 'node' | 'join' | 'proxy' | 'metrics';

export interface TokenRecord {
  id: string;
  /** sha256 hex of the token; the token itself is never stored. */
  hash: string;
  role: TokenRole;
  name: string;
  createdAt: number;
  revokedAt: number | null;
  /** After this time the token is refused; null: never expires. */
  expiresAt: number | null;
}

/**
 * A secret or an environment variable of a service in one environment. For a secret, `value` is the
 * sealed form (controller/secrets/keyring.ts) and never leaves the controller except to the hosts that
 * run the service; a variable's value is plain.
 */
export interface SecretRecord {
  service: string;
  environment: string;
  name: string;
  kind: 'secret' | 'var';
  value: string;
  /** 1 on creation, +1 on each set. */
  version: number;
  updatedAt: number;
  updatedBy: string;
}

/** A leadership lease (migration 0009). `token` is the fencing token: it grows with every new holder. */
export interface LeaseRecord {
  name: string;
  holder: string;
  /** The holder's advertised API URL (followers point clients at it). */
  url: string;
  token: number;
  acquiredAt: number;
  renewedAt: number;
  expiresAt: number;
}

export interface Store {
  /** Apply pending schema migrations (versioned, idempotent). */
  migrate(): Promise<void>;
  close(): Promise<void>;
  /** Run `fn` in one transaction; the store passed to `fn` must be used for every call inside. */
  transaction<T>(fn: (tx: Store) => Promise<T>): Promise<T>;
  /** Black-box checks and uptime (migration 0005_checks; src/controller/checks/store.ts). */
  checks(): CheckStore;
  /** Per-minute request/5xx counts per service and release for SLOs (0012_slo_counts; alerting/slo-store.ts). */
  sloCounts(): SloCountStore;
  /** Nonces of signed requests, shared by the controllers of one database (0016_signed_nonces; store/nonces.ts). */
  nonces(): NonceStore;

  upsertService(name: string, spec: ServiceSpec): Promise<ServiceRecord>;
  getService(name: string): Promise<ServiceRecord | undefined>;
  listServices(): Promise<ServiceRecord[]>;
  setCurrentRelease(service: string, version: string | null): Promise<void>;
  /** Throws NINES_E_SERVICE_NOT_FOUND for an unknown service. */
  setServiceMode(service: string, mode: ServiceMode, options: ServiceModeOptions | null): Promise<void>;
  /** Throws NINES_E_SERVICE_NOT_FOUND for an unknown service. */
  setServiceTraffic(service: string, traffic: TrafficSplit | null): Promise<void>;
  /** Take the service's deploy lock for `deployId`. Returns the holder's id when already held by another. */
  acquireDeployLock(service: string, deployId: string): Promise<{ ok: true } | { ok: false; heldBy: string }>;
  releaseDeployLock(service: string, deployId: string): Promise<void>;

  insertRelease(r: Omit<ReleaseRecord, 'seq' | 'stable'>): Promise<ReleaseRecord>;
  getRelease(service: string, version: string): Promise<ReleaseRecord | undefined>;
  /** Newest first. */
  listReleases(service: string): Promise<ReleaseRecord[]>;
  markReleaseStable(service: string, version: string): Promise<void>;

  insertDeploy(d: DeployRecord): Promise<void>;
  updateDeploy(
    id: string,
    patch: Partial<
      Pick<DeployRecord, 'state' | 'reason' | 'startedAt' | 'finishedAt' | 'requests' | 'failedRequests'>
    >,
  ): Promise<void>;
  getDeploy(id: string): Promise<DeployRecord | undefined>;
  /** Newest first; all services when `service` is undefined. */
  listDeploys(service?: string, limit?: number): Promise<DeployRecord[]>;
  /** Deploys in state pending, running or paused (to resume after a controller restart). */
  listActiveDeploys(): Promise<DeployRecord[]>;
  /** Appends with the next seq for that deploy and returns the stored event. */
  appendDeployEvent(e: Omit<DeployEventRecord, 'seq'>): Promise<DeployEventRecord>;
  listDeployEvents(deployId: string, afterSeq?: number): Promise<DeployEventRecord[]>;

  insertInstance(i: InstanceRecord): Promise<void>;
  updateInstance(
    id: string,
    patch: Partial<Pick<InstanceRecord, 'desired' | 'route' | 'observed' | 'deployId'>>,
  ): Promise<void>;
  getInstance(id: string): Promise<InstanceRecord | undefined>;
  listInstances(filter?: { service?: string; hostId?: string }): Promise<InstanceRecord[]>;
  deleteInstance(id: string): Promise<void>;

  upsertHost(h: HostRecord): Promise<void>;
  getHost(id: string): Promise<HostRecord | undefined>;
  listHosts(): Promise<HostRecord[]>;
  touchHost(id: string, at: number): Promise<void>;
  /** Sets revokedAt once; false for an unknown or already revoked host. */
  revokeHost(id: string, at: number): Promise<boolean>;

  appendEvent(e: Omit<EventRecord, 'id'>): Promise<EventRecord>;
  /** Newest first. */
  listEvents(opts?: { limit?: number; kind?: string; subject?: string }): Promise<EventRecord[]>;

  insertToken(t: TokenRecord): Promise<void>;
  findTokenByHash(hash: string): Promise<TokenRecord | undefined>;
  listTokens(): Promise<TokenRecord[]>;
  /** Sets revokedAt once; false for an unknown or already revoked token. */
  revokeToken(id: string, at: number): Promise<boolean>;

  /** Operational fleet state by key (0007): JSON values; `listMeta` returns keys starting with `prefix`. */
  getMeta(key: string): Promise<unknown>;
  putMeta(key: string, value: unknown): Promise<void>;
  deleteMeta(key: string): Promise<void>;
  listMeta(prefix: string): Promise<Array<{ key: string; value: unknown }>>;
  /** Creates (version 1) or replaces (version + 1) a secret or variable; returns the stored record. */
  putSecret(r: Omit<SecretRecord, 'version'>): Promise<SecretRecord>;
  /** Replaces a sealed value without a new version (key rotation). */
  rewrapSecret(service: string, environment: string, name: string, value: string): Promise<void>;
  /** Ordered by service, environment, name. */
  listSecrets(filter?: { service?: string; environment?: string }): Promise<SecretRecord[]>;
  /** False when there was no such secret or variable. */
  deleteSecret(service: string, environment: string, name: string): Promise<boolean>;
  /** `nines drill` results (issue 8). */
  insertDrill(d: DrillRecord): Promise<void>;
  getDrill(id: string): Promise<DrillRecord | undefined>;
  /** Newest first. */
  listDrills(opts?: { service?: string; limit?: number }): Promise<DrillRecord[]>;

  /** Monotonic counters that survive restarts (routing snapshot version, host generations). */
  nextCounter(name: string): Promise<number>;
  getCounter(name: string): Promise<number>;
  /** Several counters in one read (0 for one never bumped): a thousand long polls woken at once. */
  getCounters(names: readonly string[]): Promise<Map<string, number>>;

  /**
   * Leadership (several controllers on one database). `tryAcquireLease` takes the lease when it is free,
   * expired (`expiresAt <= now`) or held by `holder` itself (a restarted controller with the same id),
   * always with a new, larger token; it returns the lease as it is afterwards, whoever holds it.
   */
  tryAcquireLease(l: {
    name: string;
    holder: string;
    url: string;
    ttlMs: number;
    now: number;
  }): Promise<LeaseRecord>;
  /** Extends the lease if `holder` still holds it with `token`; false when it was lost. */
  renewLease(l: {
    name: string;
    holder: string;
    token: number;
    ttlMs: number;
    now: number;
  }): Promise<boolean>;
  /** Lets the lease go at once (clean shutdown), if still held with `token`. */
  releaseLease(name: string, holder: string, token: number): Promise<void>;
  getLease(name: string): Promise<LeaseRecord | undefined>;
  /**
   * The fencing check of a leader's write, meant to run inside its transaction: true when `holder`
   * holds the lease with `token` and it has not expired at `now`. On PostgreSQL the lease row is
   * share-locked until the transaction ends, so no takeover can commit in between.
   */
  holdsLease(name: string, holder: string, token: number, now: number): Promise<boolean>;

  /** Backup: every table of the store (enumerated from the database), read as one consistent snapshot. */
  exportSnapshot(): Promise<StateSnapshot>;
  /**
   * Restore: loads a snapshot in one transaction into a fresh store (or, with `replace`, over this
   * one). Returns rows per table. Counters and the fencing token move to at least the restore time.
   */
  importSnapshot(snapshot: StateSnapshot, opts?: { replace?: boolean }): Promise<Record<string, number>>;
}
