import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { AlertRuntime } from './alerting/runtime.js';
import { AlertScheduler } from './alerting/scheduler.js';
import { FleetSignals, ModuleSignals, RequestSignals } from './alerting/sources.js';
import { AlertStore } from './alerting/store.js';
import { registerAlertsApi } from './alerts-api.js';
import { buildApi } from './api.js';
import { ArtifactSync } from './artifact-sync.js';
import { ArtifactStore } from './artifacts.js';
import { Authenticator, createToken, hashToken } from './auth.js';
import { type BackupScheduleOptions, BackupScheduler } from './backups.js';
import { registerCheckRoutes } from './checks/routes.js';
import { CheckService } from './checks/service.js';
import {
  DrillScheduler,
  DrillScheduleStore,
  injectedApi,
  registerDrillScheduleRoutes,
} from './drill-scheduler.js';
import { Autoscaler } from './engine/autoscaler.js';
import { DeployEngine } from './engine/engine.js';
import { InstanceOps } from './engine/ops.js';
import { Reconciler } from './engine/reconciler.js';
import { Fleet } from './fleet.js';
import { registerFleetApi } from './fleet-api.js';
import { HostOps } from './hostops.js';
import { Hub } from './hub.js';
import { Leadership } from './leadership.js';
import { registerProxyRoutes } from './proxies.js';
import { S3Artifacts, type S3Options } from './s3.js';
import { Secrets } from './secrets/index.js';
import { registerSecretRoutes } from './secrets/routes.js';
import { Signals } from './signals/signals.js';
import { KyselyStore } from './store/kysely-store.js';
import type { Store } from './store/types.js';
import { HostTasks } from './tasks.js';
import type { TlsFiles } from './tls.js';
import { registerWeb } from './web.js';

export interface ControllerOptions {
  store: Store;
  dataDir: string;
  logger: Logger;
  host: string;
  port: number;
  /** Alert evaluation period (default 1 s). */
  alertIntervalMs?: number;
  /** How often the autoscaler decides (default 15 s; tests shorten it). */
  autoscaleIntervalMs?: number;
  /** A host silent for this long is down and its instances are replaced elsewhere. Default 15 s. */
  hostDownAfterMs?: number;
  /** The environment whose secrets and variables this controller's instances get (default production). */
  environment?: string;
  /** Release artifacts also in S3-compatible object storage; agents download from it. */
  s3?: S3Options;
  /** Serve the API over HTTPS. */
  tls?: TlsFiles;
  /**
   * Several controllers on one (PostgreSQL) database: the lease timeout, and the URL the others and
   * the clients reach this one at (default this controller's own URL).
   */
  ha?: { leaseTimeoutMs?: number; advertiseUrl?: string };
  /** Record signed requests' nonces in the store too, so that no controller of the database accepts a replay. */
  sharedNonces?: boolean;
  /** Scheduled backups (run by the leader). */
  backups?: BackupScheduleOptions;
  /** How often the leader looks for a scheduled drill that is due (default 10 s). */
  drillTickMs?: number;
}

/**
 * The control plane: store + fleet state + deploy engine behind the HTTP API. On first start it mints
 * an admin token (written to `<dataDir>/admin-token`, mode 0600) and a node token for local agents and
 * proxies (`<dataDir>/node-token`).
 */
export class Controller {
  readonly store: Store;
  readonly hub: Hub;
  readonly signals: Signals;
  /** Black-box checks and service states; `checks.start()` runs the evaluation loop (leader only). */
  readonly checks: CheckService;
  readonly fleet: Fleet;
  readonly engine: DeployEngine;
  readonly ops: InstanceOps;
  readonly reconciler: Reconciler;
  readonly artifacts: ArtifactStore;
  /** Alerting (docs/alerting.md): evaluated by `alertScheduler` — to be run on the leader only. */
  readonly alerts: AlertStore;
  readonly alertRuntime: AlertRuntime;
  readonly alertScheduler: AlertScheduler;
  /** Request counts for SLOs, kept in the store (alerting/sources.ts, slo-store.ts). */
  readonly requests: RequestSignals;
  private ackSecret = '';
  readonly tasks: HostTasks;
  readonly hostOps: HostOps;
  readonly autoscaler: Autoscaler;
  readonly secrets: Secrets;
  private readonly app: ReturnType<typeof buildApi>;
  private readonly opts: ControllerOptions;
  private boundPort = 0;
  /** Who leads; subsystems that must run once per cluster register with `leadership.onLeadership`. */
  readonly leadership: Leadership;
  readonly backups: BackupScheduler | undefined;
  private readonly artifactSync: ArtifactSync;
  private nodeToken: string | undefined;
  private adminToken: string | undefined;
  /** Scheduled drills (docs/drills.md), run by the leader. */
  readonly drillSchedules: DrillScheduleStore;
  readonly drillScheduler: DrillScheduler;

  constructor(opts: ControllerOptions) {
    this.opts = opts;
    this.store = opts.store;
    this.hub = new Hub();
    this.signals = new Signals();
    this.leadership = new Leadership({
      store: opts.store,
      // Replaced in start() by the id kept in the data directory.
      id: `c-${randomBytes(6).toString('hex')}`,
      url: () => opts.ha?.advertiseUrl ?? this.url,
      logger: opts.logger,
      ...(opts.ha?.leaseTimeoutMs !== undefined ? { leaseTimeoutMs: opts.ha.leaseTimeoutMs } : {}),
    });
    // The leader's parts write through the fenced store: a stale leader's late writes are refused.
    const fenced = this.leadership.fence(opts.store);
    this.fleet = new Fleet({
      store: fenced,
      hub: this.hub,
      logger: opts.logger,
      signals: this.signals,
      ...(opts.hostDownAfterMs !== undefined ? { hostDownAfterMs: opts.hostDownAfterMs } : {}),
    });
    this.ops = new InstanceOps({ store: fenced, hub: this.hub, fleet: this.fleet, logger: opts.logger });
    this.engine = new DeployEngine({
      store: fenced,
      hub: this.hub,
      fleet: this.fleet,
      ops: this.ops,
      logger: opts.logger,
      artifactPath: (service, version) => this.artifacts.path(service, version),
    });
    this.reconciler = new Reconciler({
      store: fenced,
      hub: this.hub,
      fleet: this.fleet,
      ops: this.ops,
      logger: opts.logger.child({ part: 'reconciler' }),
    });
    this.artifacts = new ArtifactStore({
      dir: join(opts.dataDir, 'artifacts'),
      ...(opts.s3 ? { remote: new S3Artifacts(opts.s3) } : {}),
    });
    this.secrets = new Secrets({
      store: this.store,
      hub: this.hub,
      logger: opts.logger.child({ part: 'secrets' }),
      dataDir: opts.dataDir,
      ...(opts.environment ? { environment: opts.environment } : {}),
    });
    this.app = buildApi({
      store: this.store,
      hub: this.hub,
      fleet: this.fleet,
      engine: this.engine,
      artifacts: this.artifacts,
      auth: new Authenticator(this.store, opts.sharedNonces ? { sharedNonces: this.store.nonces() } : {}),
      logger: opts.logger,
      secrets: this.secrets,
      ...(opts.tls ? { tls: opts.tls } : {}),
      leadership: this.leadership,
    });
    registerSecretRoutes(this.app, { store: this.store, secrets: this.secrets });
    registerProxyRoutes(this.app, { store: this.store, hub: this.hub });
    registerWeb(this.app, {
      store: this.store,
      hub: this.hub,
      signals: this.signals,
      // this.alerts is built below; the feed first asks once someone opens the dashboard.
      listAlerts: () => this.alerts.listAlerts(),
    });
    this.checks = new CheckService({
      store: this.store,
      hub: this.hub,
      signals: this.signals,
      logger: opts.logger,
    });
    registerCheckRoutes(this.app, {
      store: this.store,
      hub: this.hub,
      signals: this.signals,
      checks: this.checks,
      // The alerting configuration's maintenance windows (read at request time).
      maintenanceWindows: () => this.alertRuntime.current.maintenance,
      // One status page per environment (one controller serves one environment).
      statusTitle: opts.environment ?? 'production',
    });
    if (!(this.store instanceof KyselyStore)) throw new Error('alerting needs the Kysely store');
    this.alerts = new AlertStore(this.store.kysely);
    this.requests = new RequestSignals(this.store, this.hub);
    this.alertRuntime = new AlertRuntime({
      alerts: this.alerts,
      store: this.store,
      sources: [
        new FleetSignals({ store: this.store, hostDownAfterMs: this.fleet.hostDownAfterMs }),
        new ModuleSignals(this.signals),
        this.requests,
      ],
      requests: this.requests,
      controllerId: `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`,
      ackSecret: () => this.ackSecret,
      baseUrl: () => this.url,
      logger: opts.logger.child({ part: 'alerting' }),
    });
    this.alertScheduler = new AlertScheduler(this.alertRuntime, {
      logger: opts.logger.child({ part: 'alerting' }),
      ...(opts.alertIntervalMs === undefined ? {} : { intervalMs: opts.alertIntervalMs }),
    });
    registerAlertsApi(this.app, {
      runtime: this.alertRuntime,
      alerts: this.alerts,
      ackSecret: () => this.ackSecret,
    });
    this.tasks = new HostTasks(this.hub);
    this.hostOps = new HostOps({
      store: this.store,
      hub: this.hub,
      fleet: this.fleet,
      tasks: this.tasks,
      logger: opts.logger.child({ part: 'hostops' }),
    });
    registerFleetApi(this.app, { hostOps: this.hostOps, tasks: this.tasks, hub: this.hub });
    this.drillSchedules = new DrillScheduleStore(this.store.kysely);
    registerDrillScheduleRoutes(this.app, { schedules: this.drillSchedules, store: this.store });
    this.drillScheduler = new DrillScheduler({
      schedules: this.drillSchedules,
      store: this.store,
      leadership: this.leadership,
      // Scheduled drills go through this controller's own API, as `nines drill` does, with its admin token.
      api: () => (this.adminToken === undefined ? undefined : injectedApi(this.app, this.adminToken)),
      logger: opts.logger.child({ part: 'drills' }),
      ...(opts.drillTickMs !== undefined ? { tickMs: opts.drillTickMs } : {}),
    });
    this.autoscaler = new Autoscaler({
      store: this.store,
      hub: this.hub,
      logger: opts.logger.child({ part: 'autoscaler' }),
      ...(opts.autoscaleIntervalMs !== undefined ? { intervalMs: opts.autoscaleIntervalMs } : {}),
    });
    this.backups = opts.backups
      ? new BackupScheduler({
          store: this.store,
          artifacts: this.artifacts,
          leadership: this.leadership,
          logger: opts.logger.child({ part: 'backups' }),
          schedule: opts.backups,
        })
      : undefined;
    this.artifactSync = new ArtifactSync({
      store: this.store,
      artifacts: this.artifacts,
      leadership: this.leadership,
      token: () => this.nodeToken,
      logger: opts.logger.child({ part: 'artifact-sync' }),
    });
  }

  get url(): string {
    return `${this.opts.tls ? 'https' : 'http'}://${this.opts.host}:${this.boundPort}`;
  }

  get adminTokenFile(): string {
    return join(this.opts.dataDir, 'admin-token');
  }

  /** Ensure the admin and node tokens exist; returns them (read back from their files on restarts). */
  async bootstrapTokens(): Promise<{ admin: string; node: string }> {
    await mkdir(this.opts.dataDir, { recursive: true, mode: 0o700 });
    const admin = await this.tokenFile('admin-token', 'admin', 'admin');
    this.adminToken = admin;
    const node = await this.tokenFile('node-token', 'node', 'local-node');
    this.nodeToken = node;
    return { admin, node };
  }

  async start(): Promise<void> {
    await this.secrets.init();
    this.ackSecret = await this.alerts.ackSecret(Date.now());
    this.leadership.setId(await this.controllerId());
    // The leader's parts: a new leader re-learns the fleet (agents and proxies report to it now),
    // resumes the deploys in flight where the fleet actually is, then heals, evaluates checks and
    // alerts, and autoscales. Followers run none of them.
    this.leadership.onLeadership(
      async () => {
        this.hub.agents.clear();
        this.hub.proxies.clear();
        await this.engine.recover();
        this.reconciler.start();
        this.checks.start();
        this.requests.reset();
        this.alertScheduler.start();
        this.autoscaler.start();
      },
      async () => {
        await this.autoscaler.stop();
        await this.alertScheduler.stop();
        // What this leader counted but has not written yet (the next leader reads the store).
        await this.requests
          .flush()
          .catch((err: unknown) => this.opts.logger.warn({ err }, 'SLO counts flush failed'));
        await this.checks.stop();
        await this.reconciler.stop();
        await this.engine.close();
      },
    );
    await this.app.listen({ host: this.opts.host, port: this.opts.port });
    const addr = this.app.server.address();
    this.boundPort = typeof addr === 'object' && addr ? addr.port : this.opts.port;
    await this.leadership.start();
    this.artifactSync.start();
  }

  async close(): Promise<void> {
    this.hostOps.close();
    await this.artifactSync.stop();
    // Heartbeats are written in batches; the last one while this controller still leads.
    await this.fleet.flushHeartbeats();
    await this.leadership.stop();
    await this.app.close();
    this.artifacts.remote?.close();
  }

  /** This controller's stable id: a restarted controller takes its own lease back at once. */
  private async controllerId(): Promise<string> {
    await mkdir(this.opts.dataDir, { recursive: true, mode: 0o700 });
    const file = join(this.opts.dataDir, 'controller-id');
    const existing = (await readFile(file, 'utf8').catch(() => '')).trim();
    if (/^[A-Za-z0-9._-]{1,64}$/.test(existing)) return existing;
    const id = this.leadership.id;
    await writeFile(file, `${id}\n`, { mode: 0o600 });
    return id;
  }

  private async tokenFile(file: string, role: 'admin' | 'node', name: string): Promise<string> {
    const path = join(this.opts.dataDir, file);
    const existing = (await readFile(path, 'utf8').catch(() => undefined))?.trim();
    if (existing) {
      // The file outlived its store (data wiped, restored elsewhere): make the store know it again.
      if (!(await this.store.findTokenByHash(hashToken(existing)))) {
        await this.store.insertToken({
          id: `t-${hashToken(existing).slice(0, 8)}`,
          hash: hashToken(existing),
          role,
          name,
          createdAt: Date.now(),
          revokedAt: null,
          expiresAt: null,
        });
      }
      return existing;
    }
    const { token } = await createToken(this.store, role, name);
    await writeFile(path, `${token}\n`, { mode: 0o600 });
    await chmod(path, 0o600);
    return token;
  }
}
