import { mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { type Logger, pino } from 'pino';
import { Agent } from '../agent/index.js';
import type { BackupScheduleOptions } from '../controller/backups.js';
import { Controller } from '../controller/controller.js';
import type { S3Options } from '../controller/s3.js';
import { openPostgresStore } from '../controller/store/postgres.js';
import { openSqliteStore } from '../controller/store/sqlite.js';
import type { TlsFiles } from '../controller/tls.js';
import { readBackup, readBackupKey, restoreArtifacts } from '../core/backup-file.js';
import { redactOptions } from '../core/redact.js';
import { HaproxyAdapter } from '../haproxy/adapter.js';
import { HaproxyRuntime } from '../haproxy/runtime.js';
import { ControllerLink, Proxy as NinesProxy } from '../proxy/index.js';

/**
 * The composition root: the only place that constructs the planes. `nines up` runs all three in one
 * process; `nines controller`, `nines agent` and `nines proxy` run one each. Either way they talk to
 * each other only through the HTTP protocol.
 */

export interface Running {
  stop(): Promise<void>;
}

export async function fileLogger(dataDir: string, level: string): Promise<{ logger: Logger; file: string }> {
  await mkdir(join(dataDir, 'logs'), { recursive: true, mode: 0o700 });
  const file = join(dataDir, 'logs', 'nines.log');
  return {
    logger: pino(
      { level, redact: redactOptions },
      pino.destination({ dest: file, sync: false, mkdir: true }),
    ),
    file,
  };
}

export async function runController(o: {
  dataDir: string;
  host: string;
  port: number;
  logger: Logger;
  hostDownAfterMs?: number;
  environment?: string;
  s3?: S3Options;
  tls?: TlsFiles;
  /** PostgreSQL URL: several controllers share it (HA); default the embedded SQLite file. */
  databaseUrl?: string;
  /** PostgreSQL schema (default the connection's current schema). */
  databaseSchema?: string;
  leaseTimeoutMs?: number;
  advertiseUrl?: string;
  backups?: BackupScheduleOptions;
}): Promise<Running & { controller: Controller; tokens: { admin: string; node: string } }> {
  const dataDir = resolve(o.dataDir);
  const logger = o.logger.child({ plane: 'controller' });
  const leaseTimeoutMs = o.leaseTimeoutMs ?? 10_000;
  const store = o.databaseUrl
    ? await openPostgresStore({
        connectionString: o.databaseUrl,
        ...(o.databaseSchema ? { schema: o.databaseSchema } : {}),
        idleInTransactionTimeoutMs: leaseTimeoutMs,
        onPoolError: (err) => logger.warn({ err }, 'PostgreSQL connection lost; reconnecting'),
      })
    : await openSqliteStore({ file: join(dataDir, 'nines.db') });
  const controller = new Controller({
    store,
    dataDir,
    logger,
    host: o.host,
    port: o.port,
    ...(o.hostDownAfterMs !== undefined ? { hostDownAfterMs: o.hostDownAfterMs } : {}),
    ...(o.environment ? { environment: o.environment } : {}),
    ...(o.s3 ? { s3: o.s3 } : {}),
    ...(o.tls ? { tls: o.tls } : {}),
    ha: { leaseTimeoutMs, ...(o.advertiseUrl ? { advertiseUrl: o.advertiseUrl } : {}) },
    // Only several controllers need it, and they share a PostgreSQL database.
    sharedNonces: o.databaseUrl !== undefined,
    ...(o.backups ? { backups: o.backups } : {}),
  });
  const tokens = await controller.bootstrapTokens();
  await controller.start();
  return {
    controller,
    tokens,
    async stop() {
      await controller.close();
      await store.close();
    },
  };
}

export async function runProxy(o: {
  /** One URL or several, comma-separated (failover). */
  controllerUrl: string;
  token: string;
  dataDir: string;
  host: string;
  port: number;
  logger: Logger;
  proxyId?: string;
  ca?: string;
  connectTimeoutMs?: number;
}): Promise<Running & { port: number }> {
  const logger = o.logger.child({ plane: 'proxy' });
  const proxy = new NinesProxy({
    host: o.host,
    port: o.port,
    proxyId: o.proxyId ?? `${hostname()}-proxy`,
    logger,
    ...(o.connectTimeoutMs !== undefined ? { upstreamConnectTimeoutMs: o.connectTimeoutMs } : {}),
    snapshotCacheFile: join(resolve(o.dataDir), 'proxy', 'snapshot.json'),
  });
  const { port } = await proxy.listen();
  const link = new ControllerLink({
    baseUrl: o.controllerUrl,
    token: o.token,
    proxy,
    logger,
    ...(o.ca ? { ca: o.ca } : {}),
  });
  link.start();
  return {
    port,
    async stop() {
      await link.stop();
      await proxy.close();
    },
  };
}

export async function runAgent(o: {
  controllerUrl: string;
  token: string;
  dataDir: string;
  name?: string;
  zone: string;
  labels: Record<string, string>;
  address: string;
  logger: Logger;
  metricsListen?: { host: string; port: number };
  ca?: string;
  onRestartRequested?: () => void;
}): Promise<Running & { agent: Agent; leave(): Promise<void> }> {
  const agent = new Agent({
    controllerUrl: o.controllerUrl,
    token: o.token,
    dataDir: join(resolve(o.dataDir), 'agent'),
    name: o.name ?? hostname(),
    zone: o.zone,
    labels: o.labels,
    address: o.address,
    logger: o.logger.child({ plane: 'agent' }),
    ...(o.metricsListen ? { metricsListen: o.metricsListen } : {}),
    ...(o.ca ? { ca: o.ca } : {}),
    ...(o.onRestartRequested ? { onRestartRequested: o.onRestartRequested } : {}),
  });
  await agent.start();
  return {
    agent,
    /** Stop the agent and its instances. */
    stop: () => agent.stop({ stopInstances: true }),
    /** Stop the agent only; its instances keep serving and a new agent adopts them. */
    leave: () => agent.stop({ stopInstances: false }),
  };
}

/**
 * `nines restore`: load a backup into the store of a controller that is not running (its SQLite file in
 * `dataDir`, or the PostgreSQL database) and its artifacts into `dataDir/artifacts`.
 */
export async function restoreBackup(o: {
  dataDir: string;
  backup: string;
  keyFile: string;
  databaseUrl?: string;
  databaseSchema?: string;
  replace?: boolean;
}): Promise<{ tables: Record<string, number>; artifacts: number; createdAt: number }> {
  const dataDir = resolve(o.dataDir);
  const key = await readBackupKey(o.keyFile);
  const { manifest, state } = await readBackup(o.backup, key);
  const store = o.databaseUrl
    ? await openPostgresStore({
        connectionString: o.databaseUrl,
        ...(o.databaseSchema ? { schema: o.databaseSchema } : {}),
      })
    : await openSqliteStore({ file: join(dataDir, 'nines.db') });
  try {
    const tables = await store.importSnapshot(state, { replace: o.replace ?? false });
    const artifacts = await restoreArtifacts(o.backup, key, manifest, join(dataDir, 'artifacts'));
    return { tables, artifacts, createdAt: state.createdAt };
  } finally {
    await store.close();
  }
}

/**
 * The HAProxy adapter: follows the controller's routing snapshots like a proxy and drives an
 * external HAProxy through its Runtime API (src/haproxy). Checks the socket answers before it reports.
 */
export async function runHaproxyAdapter(o: {
  controllerUrl: string;
  token: string;
  socket: string;
  backends: Record<string, string>;
  prefix: string;
  check: boolean;
  proxyId: string;
  logger: Logger;
  /** PEM CA bundle for an https controller signed by a private CA. */
  ca?: string;
}): Promise<Running> {
  const logger = o.logger.child({ plane: 'haproxy-adapter' });
  const runtime = new HaproxyRuntime(o.socket);
  await runtime.command('show info');
  const adapter = new HaproxyAdapter({
    proxyId: o.proxyId,
    runtime,
    logger,
    backends: o.backends,
    prefix: o.prefix,
    check: o.check,
  });
  adapter.start();
  const link = new ControllerLink({
    baseUrl: o.controllerUrl,
    token: o.token,
    proxy: adapter,
    logger,
    ...(o.ca ? { ca: o.ca } : {}),
  });
  link.start();
  return {
    async stop() {
      await link.stop();
      await adapter.stop();
    },
  };
}
