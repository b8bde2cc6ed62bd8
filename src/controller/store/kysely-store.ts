import { AsyncLocalStorage } from 'node:async_hooks';
import { type Kysely, Migrator, type Selectable } from 'kysely';
import type { StateSnapshot } from '../../core/backup-file.js';
import type { ServiceSpec } from '../../core/config.js';
import { NinesError } from '../../core/errors.js';
import type { DeployState } from '../../core/lifecycle.js';
import type { ObservedInstance } from '../../core/protocol.js';
import type { TrafficSplit } from '../../core/strategies.js';
import { KyselySloCountStore, type SloCountStore } from '../alerting/slo-store.js';
import { type CheckStore, KyselyCheckStore } from '../checks/store.js';
import * as secretsSql from '../secrets/sql.js';
import * as lease from './lease.js';
import { MIGRATION_LOCK_TABLE, MIGRATION_TABLE, migrationProvider } from './migrations.js';
import { KyselyNonceStore, type NonceStore } from './nonces.js';
import type {
  Database,
  DeploysTable,
  DrillsTable,
  EventsTable,
  HostsTable,
  InstancesTable,
  ReleasesTable,
  ServicesTable,
  TokensTable,
} from './schema.js';
import * as snapshot from './snapshot.js';
import type {
  DeployEventRecord,
  DeployKind,
  DeployOptions,
  DeployRecord,
  DrillRecord,
  EventRecord,
  HostRecord,
  InstanceRecord,
  InstanceRouteState,
  LeaseRecord,
  ReleaseRecord,
  SecretRecord,
  ServiceMode,
  ServiceModeOptions,
  ServiceRecord,
  Store,
  TokenRecord,
  TokenRole,
} from './types.js';

/** Counters the store itself uses (they share the counters table with `nextCounter`). */
export const RELEASE_SEQ_COUNTER = 'store.release_seq';
export const EVENT_ID_COUNTER = 'store.event_id';

export interface KyselyStoreOptions {
  /** Clock for createdAt/updatedAt the store sets itself (upsertService, setCurrentRelease, updateInstance). */
  now?: () => number;
  /**
   * Schema of Kysely's migration bookkeeping tables (PostgreSQL). Kysely looks for them in every schema
   * it can see unless told which one, so a second schema in the same database would find the first's.
   */
  migrationSchema?: string;
  /** PostgreSQL: take row locks where the store needs them (the lease check of fenced writes). */
  rowLocks?: boolean;
}

/**
 * The Store over Kysely: one implementation for SQLite and PostgreSQL. An instance is bound either to the
 * root `Kysely` (each method is its own transaction where it needs more than one statement) or to a
 * Kysely `Transaction` (every method runs inside it; `transaction()` just calls `fn(this)`).
 *
 * Portability rules: only the query builder (no raw SQL), upserts via `ON CONFLICT`, `RETURNING`
 * (SQLite ≥ 3.35 and PostgreSQL), no auto-increment: sequence numbers come from the counters table or a
 * per-row counter, whose UPDATE takes a row lock on PostgreSQL so concurrent controllers serialize.
 */
export class KyselyStore implements Store {
  private readonly kdb: Kysely<Database>;
  private readonly now: () => number;
  private readonly migrationSchema: string | undefined;
  private readonly rowLocks: boolean;
  /** Marks the async context of a running `transaction()` callback of this (root) store. */
  private readonly txScope = new AsyncLocalStorage<{ active: boolean }>();

  constructor(db: Kysely<Database>, opts: KyselyStoreOptions = {}) {
    this.kdb = db;
    this.now = opts.now ?? Date.now;
    this.migrationSchema = opts.migrationSchema;
    this.rowLocks = opts.rowLocks ?? false;
  }

  /** True when this store is bound to a transaction (the `tx` passed to a `transaction()` callback). */
  get inTransaction(): boolean {
    return this.kdb.isTransaction;
  }

  /**
   * The Kysely to query. Using the root store from inside its own `transaction()` callback is a bug: on
   * SQLite (one connection) it waits for the transaction forever, on PostgreSQL it runs outside it. Fail
   * loudly instead.
   */
  private get db(): Kysely<Database> {
    if (!this.kdb.isTransaction && this.txScope.getStore()?.active) {
      throw new NinesError(
        'NINES_E_INTERNAL',
        'store used inside its own transaction(): use the tx store passed to the callback for every call',
      );
    }
    return this.kdb;
  }

  checks(): CheckStore {
    return new KyselyCheckStore(this.db);
  }

  sloCounts(): SloCountStore {
    return new KyselySloCountStore(this.db);
  }

  nonces(): NonceStore {
    return new KyselyNonceStore(this.db);
  }

  /** The root Kysely, for plane-specific tables kept beside the store's (alerting/store.ts). */
  get kysely(): Kysely<Database> {
    return this.kdb;
  }

  async migrate(): Promise<void> {
    await this.migrateReport();
  }

  /** Applies pending migrations and returns the names of those it applied (empty: nothing to do). */
  async migrateReport(): Promise<string[]> {
    if (this.db.isTransaction)
      throw new NinesError('NINES_E_INTERNAL', 'migrate() cannot run inside a transaction');
    const migrator = new Migrator({
      db: this.db,
      provider: migrationProvider,
      migrationTableName: MIGRATION_TABLE,
      migrationLockTableName: MIGRATION_LOCK_TABLE,
      ...(this.migrationSchema !== undefined ? { migrationTableSchema: this.migrationSchema } : {}),
    });
    const { error, results } = await migrator.migrateToLatest();
    if (error) {
      const failed = results?.find((r) => r.status === 'Error')?.migrationName;
      throw new NinesError(
        'NINES_E_INTERNAL',
        `store migration ${failed ?? ''} failed: ${error instanceof Error ? error.message : String(error)}`,
        { migration: failed },
      );
    }
    return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
  }

  async close(): Promise<void> {
    if (this.db.isTransaction)
      throw new NinesError('NINES_E_INTERNAL', 'close() cannot be called on a transaction');
    await this.db.destroy();
  }

  async transaction<T>(fn: (tx: Store) => Promise<T>): Promise<T> {
    const db = this.db;
    if (db.isTransaction) return fn(this);
    const scope = { active: true };
    return this.txScope
      .run(scope, () =>
        db
          .transaction()
          .execute((trx) => fn(new KyselyStore(trx, { now: this.now, rowLocks: this.rowLocks }))),
      )
      .finally(() => {
        scope.active = false;
      });
  }

  /** Runs `fn` atomically: in the current transaction if there is one, else in a new one. */
  private async atomic<T>(fn: (db: Kysely<Database>) => Promise<T>): Promise<T> {
    const db = this.db;
    if (db.isTransaction) return fn(db);
    return db.transaction().execute(fn);
  }

  // ---- services -------------------------------------------------------------------------------------

  async upsertService(name: string, spec: ServiceSpec): Promise<ServiceRecord> {
    const now = this.now();
    const json = JSON.stringify(spec);
    const row = await this.db
      .insertInto('services')
      .values({ name, spec: json, current_release: null, locked_by: null, created_at: now, updated_at: now })
      .onConflict((oc) => oc.column('name').doUpdateSet({ spec: json, updated_at: now }))
      .returningAll()
      .executeTakeFirstOrThrow();
    return toService(row);
  }

  async getService(name: string): Promise<ServiceRecord | undefined> {
    const row = await this.db.selectFrom('services').selectAll().where('name', '=', name).executeTakeFirst();
    return row && toService(row);
  }

  async listServices(): Promise<ServiceRecord[]> {
    const rows = await this.db.selectFrom('services').selectAll().orderBy('name').execute();
    return rows.map(toService);
  }

  async setCurrentRelease(service: string, version: string | null): Promise<void> {
    await this.atomic(async (db) => {
      if (version !== null) {
        const rel = await db
          .selectFrom('releases')
          .select('version')
          .where('service', '=', service)
          .where('version', '=', version)
          .executeTakeFirst();
        if (!rel) {
          await assertService(db, service);
          throw releaseNotFound(service, version);
        }
      }
      const r = await db
        .updateTable('services')
        .set({ current_release: version, updated_at: this.now() })
        .where('name', '=', service)
        .executeTakeFirst();
      if (r.numUpdatedRows === 0n) throw serviceNotFound(service);
    });
  }

  async setServiceMode(
    service: string,
    mode: ServiceMode,
    options: ServiceModeOptions | null,
  ): Promise<void> {
    const r = await this.db
      .updateTable('services')
      .set({ mode, mode_options: options === null ? null : JSON.stringify(options), updated_at: this.now() })
      .where('name', '=', service)
      .executeTakeFirst();
    if (r.numUpdatedRows === 0n) throw serviceNotFound(service);
  }

  async setServiceTraffic(service: string, traffic: TrafficSplit | null): Promise<void> {
    const r = await this.db
      .updateTable('services')
      .set({ traffic: traffic === null ? null : JSON.stringify(traffic), updated_at: this.now() })
      .where('name', '=', service)
      .executeTakeFirst();
    if (r.numUpdatedRows === 0n) throw serviceNotFound(service);
  }

  async acquireDeployLock(
    service: string,
    deployId: string,
  ): Promise<{ ok: true } | { ok: false; heldBy: string }> {
    return this.atomic(async (db) => {
      // On PostgreSQL (read committed) the holder may release between our UPDATE and SELECT; try again.
      for (let attempt = 0; attempt < 5; attempt++) {
        const r = await db
          .updateTable('services')
          .set({ locked_by: deployId })
          .where('name', '=', service)
          .where((eb) => eb.or([eb('locked_by', 'is', null), eb('locked_by', '=', deployId)]))
          .executeTakeFirst();
        if (r.numUpdatedRows > 0n) return { ok: true as const };
        const row = await db
          .selectFrom('services')
          .select('locked_by')
          .where('name', '=', service)
          .executeTakeFirst();
        if (!row) throw serviceNotFound(service);
        if (row.locked_by !== null && row.locked_by !== deployId)
          return { ok: false as const, heldBy: row.locked_by };
      }
      throw new NinesError(
        'NINES_E_INTERNAL',
        `could not take the deploy lock of ${service}: lock is churning`,
      );
    });
  }

  async releaseDeployLock(service: string, deployId: string): Promise<void> {
    await this.db
      .updateTable('services')
      .set({ locked_by: null })
      .where('name', '=', service)
      .where('locked_by', '=', deployId)
      .execute();
  }

  // ---- releases -------------------------------------------------------------------------------------

  async insertRelease(r: Omit<ReleaseRecord, 'seq' | 'stable'>): Promise<ReleaseRecord> {
    return this.atomic(async (db) => {
      await assertService(db, r.service);
      const existing = await db
        .selectFrom('releases')
        .select('seq')
        .where('service', '=', r.service)
        .where('version', '=', r.version)
        .executeTakeFirst();
      if (existing) throw releaseExists(r.service, r.version);
      const seq = await bumpCounter(db, RELEASE_SEQ_COUNTER);
      let inserted: { seq: unknown } | undefined;
      try {
        // A concurrent controller may insert the same version between our check and this insert. ON
        // CONFLICT DO NOTHING reports it without an error: on PostgreSQL a failed statement would abort the
        // caller's whole transaction, even when the caller catches NINES_E_RELEASE_EXISTS. (On PostgreSQL
        // the insert waits for the other transaction and sees its outcome.)
        inserted = await db
          .insertInto('releases')
          .values({
            service: r.service,
            version: r.version,
            sha256: r.sha256,
            size: r.size,
            spec: JSON.stringify(r.spec),
            stable: 0,
            created_by: r.createdBy,
            created_at: r.createdAt,
            seq,
          })
          .onConflict((oc) => oc.columns(['service', 'version']).doNothing())
          .returning('seq')
          .executeTakeFirst();
      } catch (err) {
        if (isUniqueViolation(err)) throw releaseExists(r.service, r.version);
        throw err;
      }
      if (!inserted) throw releaseExists(r.service, r.version);
      return {
        service: r.service,
        version: r.version,
        sha256: r.sha256,
        size: r.size,
        spec: r.spec,
        stable: false,
        createdBy: r.createdBy,
        createdAt: r.createdAt,
        seq,
      };
    });
  }

  async getRelease(service: string, version: string): Promise<ReleaseRecord | undefined> {
    const row = await this.db
      .selectFrom('releases')
      .selectAll()
      .where('service', '=', service)
      .where('version', '=', version)
      .executeTakeFirst();
    return row && toRelease(row);
  }

  async listReleases(service: string): Promise<ReleaseRecord[]> {
    const rows = await this.db
      .selectFrom('releases')
      .selectAll()
      .where('service', '=', service)
      .orderBy('seq', 'desc')
      .execute();
    return rows.map(toRelease);
  }

  async markReleaseStable(service: string, version: string): Promise<void> {
    const r = await this.db
      .updateTable('releases')
      .set({ stable: 1 })
      .where('service', '=', service)
      .where('version', '=', version)
      .executeTakeFirst();
    if (r.numUpdatedRows === 0n) throw releaseNotFound(service, version);
  }

  // ---- deploys --------------------------------------------------------------------------------------

  async insertDeploy(d: DeployRecord): Promise<void> {
    await this.atomic(async (db) => {
      await assertService(db, d.service);
      await db
        .insertInto('deploys')
        .values({
          id: d.id,
          service: d.service,
          from_version: d.fromVersion,
          to_version: d.toVersion,
          strategy: d.strategy,
          kind: d.kind,
          state: d.state,
          reason: d.reason,
          created_by: d.createdBy,
          created_at: d.createdAt,
          started_at: d.startedAt,
          finished_at: d.finishedAt,
          last_event_seq: 0,
          requests: d.requests,
          failed_requests: d.failedRequests,
          options: d.options ? JSON.stringify(d.options) : null,
        })
        .execute();
    });
  }

  async updateDeploy(
    id: string,
    patch: Partial<
      Pick<DeployRecord, 'state' | 'reason' | 'startedAt' | 'finishedAt' | 'requests' | 'failedRequests'>
    >,
  ): Promise<void> {
    const set: {
      state?: string;
      reason?: string | null;
      started_at?: number | null;
      finished_at?: number | null;
      requests?: number | null;
      failed_requests?: number | null;
    } = {};
    if (patch.requests !== undefined) set.requests = patch.requests;
    if (patch.failedRequests !== undefined) set.failed_requests = patch.failedRequests;
    if (patch.state !== undefined) set.state = patch.state;
    if (patch.reason !== undefined) set.reason = patch.reason;
    if (patch.startedAt !== undefined) set.started_at = patch.startedAt;
    if (patch.finishedAt !== undefined) set.finished_at = patch.finishedAt;
    if (Object.keys(set).length === 0) {
      if (!(await this.getDeploy(id))) throw deployNotFound(id);
      return;
    }
    const r = await this.db.updateTable('deploys').set(set).where('id', '=', id).executeTakeFirst();
    if (r.numUpdatedRows === 0n) throw deployNotFound(id);
  }

  async getDeploy(id: string): Promise<DeployRecord | undefined> {
    const row = await this.db.selectFrom('deploys').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toDeploy(row);
  }

  async listDeploys(service?: string, limit?: number): Promise<DeployRecord[]> {
    let q = this.db.selectFrom('deploys').selectAll();
    if (service !== undefined) q = q.where('service', '=', service);
    q = q.orderBy('created_at', 'desc').orderBy('id', 'desc');
    if (limit !== undefined) q = q.limit(limit);
    return (await q.execute()).map(toDeploy);
  }

  async listActiveDeploys(): Promise<DeployRecord[]> {
    const active: DeployState[] = ['pending', 'running', 'paused'];
    const rows = await this.db
      .selectFrom('deploys')
      .selectAll()
      .where('state', 'in', active)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(toDeploy);
  }

  async appendDeployEvent(e: Omit<DeployEventRecord, 'seq'>): Promise<DeployEventRecord> {
    return this.atomic(async (db) => {
      // Bumping the deploy's own counter both assigns max+1 and locks the deploy row (PostgreSQL), so two
      // controllers appending at once get 1, 2 rather than a key collision.
      const bumped = await db
        .updateTable('deploys')
        .set((eb) => ({ last_event_seq: eb('last_event_seq', '+', 1) }))
        .where('id', '=', e.deployId)
        .returning('last_event_seq')
        .executeTakeFirst();
      if (!bumped) throw deployNotFound(e.deployId);
      const seq = Number(bumped.last_event_seq);
      await db
        .insertInto('deploy_events')
        .values({
          deploy_id: e.deployId,
          seq,
          at: e.at,
          type: e.type,
          message: e.message,
          data: e.data === null ? null : JSON.stringify(e.data),
        })
        .execute();
      return { deployId: e.deployId, seq, at: e.at, type: e.type, message: e.message, data: e.data };
    });
  }

  async listDeployEvents(deployId: string, afterSeq?: number): Promise<DeployEventRecord[]> {
    let q = this.db.selectFrom('deploy_events').selectAll().where('deploy_id', '=', deployId);
    if (afterSeq !== undefined) q = q.where('seq', '>', afterSeq);
    const rows = await q.orderBy('seq').execute();
    return rows.map((row) => ({
      deployId: row.deploy_id,
      seq: Number(row.seq),
      at: num(row.at),
      type: row.type,
      message: row.message,
      data: parseJsonOrNull<Record<string, unknown>>(row.data),
    }));
  }

  // ---- instances ------------------------------------------------------------------------------------

  async insertInstance(i: InstanceRecord): Promise<void> {
    await this.atomic(async (db) => {
      await assertService(db, i.service);
      await db
        .insertInto('instances')
        .values({
          id: i.id,
          service: i.service,
          release_version: i.releaseVersion,
          host_id: i.hostId,
          desired: i.desired,
          route: i.route,
          deploy_id: i.deployId,
          observed: i.observed === null ? null : JSON.stringify(i.observed),
          created_at: i.createdAt,
          updated_at: i.updatedAt,
        })
        .execute();
    });
  }

  /** A missing instance is not an error: an agent's report can race the instance's deletion. */
  async updateInstance(
    id: string,
    patch: Partial<Pick<InstanceRecord, 'desired' | 'route' | 'observed' | 'deployId'>>,
  ): Promise<void> {
    const set: {
      desired?: string;
      route?: string;
      observed?: string | null;
      deploy_id?: string | null;
      updated_at: number;
    } = { updated_at: this.now() };
    if (patch.desired !== undefined) set.desired = patch.desired;
    if (patch.route !== undefined) set.route = patch.route;
    if (patch.observed !== undefined)
      set.observed = patch.observed === null ? null : JSON.stringify(patch.observed);
    if (patch.deployId !== undefined) set.deploy_id = patch.deployId;
    await this.db.updateTable('instances').set(set).where('id', '=', id).execute();
  }

  async getInstance(id: string): Promise<InstanceRecord | undefined> {
    const row = await this.db.selectFrom('instances').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toInstance(row);
  }

  async listInstances(filter: { service?: string; hostId?: string } = {}): Promise<InstanceRecord[]> {
    let q = this.db.selectFrom('instances').selectAll();
    if (filter.service !== undefined) q = q.where('service', '=', filter.service);
    if (filter.hostId !== undefined) q = q.where('host_id', '=', filter.hostId);
    const rows = await q.orderBy('created_at').orderBy('id').execute();
    return rows.map(toInstance);
  }

  async deleteInstance(id: string): Promise<void> {
    await this.db.deleteFrom('instances').where('id', '=', id).execute();
  }

  // ---- hosts ----------------------------------------------------------------------------------------

  /** Inserts, or replaces every field of the host with this id. */
  async upsertHost(h: HostRecord): Promise<void> {
    const labels = JSON.stringify(h.labels);
    await this.db
      .insertInto('hosts')
      .values({
        id: h.id,
        name: h.name,
        zone: h.zone,
        labels,
        address: h.address,
        registered_at: h.registeredAt,
        last_seen_at: h.lastSeenAt,
        auth_key: h.key,
        revoked_at: h.revokedAt,
      })
      .onConflict((oc) =>
        oc.column('id').doUpdateSet({
          name: h.name,
          zone: h.zone,
          labels,
          address: h.address,
          registered_at: h.registeredAt,
          last_seen_at: h.lastSeenAt,
          auth_key: h.key,
          revoked_at: h.revokedAt,
        }),
      )
      .execute();
  }

  async getHost(id: string): Promise<HostRecord | undefined> {
    const row = await this.db.selectFrom('hosts').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toHost(row);
  }

  async listHosts(): Promise<HostRecord[]> {
    const rows = await this.db.selectFrom('hosts').selectAll().orderBy('name').orderBy('id').execute();
    return rows.map(toHost);
  }

  /** Throws NINES_E_HOST_NOT_FOUND for an unknown host (an agent the controller forgot must re-register). */
  async touchHost(id: string, at: number): Promise<void> {
    const r = await this.db
      .updateTable('hosts')
      .set({ last_seen_at: at })
      .where('id', '=', id)
      .executeTakeFirst();
    if (r.numUpdatedRows === 0n)
      throw new NinesError('NINES_E_HOST_NOT_FOUND', `no host ${id}`, { host: id });
  }

  // ---- events ---------------------------------------------------------------------------------------

  async appendEvent(e: Omit<EventRecord, 'id'>): Promise<EventRecord> {
    return this.atomic(async (db) => {
      const id = await bumpCounter(db, EVENT_ID_COUNTER);
      await db
        .insertInto('events')
        .values({
          id,
          at: e.at,
          kind: e.kind,
          subject: e.subject,
          message: e.message,
          data: e.data === null ? null : JSON.stringify(e.data),
        })
        .execute();
      return { id, at: e.at, kind: e.kind, subject: e.subject, message: e.message, data: e.data };
    });
  }

  async listEvents(opts: { limit?: number; kind?: string; subject?: string } = {}): Promise<EventRecord[]> {
    let q = this.db.selectFrom('events').selectAll();
    if (opts.kind !== undefined) q = q.where('kind', '=', opts.kind);
    if (opts.subject !== undefined) q = q.where('subject', '=', opts.subject);
    q = q.orderBy('id', 'desc');
    if (opts.limit !== undefined) q = q.limit(opts.limit);
    return (await q.execute()).map(toEvent);
  }

  // ---- drills ---------------------------------------------------------------------------------------

  async insertDrill(d: DrillRecord): Promise<void> {
    await this.db
      .insertInto('drills')
      .values({
        id: d.id,
        service: d.service,
        scenario: d.scenario,
        outcome: d.outcome,
        created_by: d.createdBy,
        started_at: d.startedAt,
        finished_at: d.finishedAt,
        result: JSON.stringify(d.result),
      })
      .execute();
  }

  async getDrill(id: string): Promise<DrillRecord | undefined> {
    const row = await this.db.selectFrom('drills').selectAll().where('id', '=', id).executeTakeFirst();
    return row === undefined ? undefined : toDrill(row);
  }

  async listDrills(opts: { service?: string; limit?: number } = {}): Promise<DrillRecord[]> {
    let q = this.db.selectFrom('drills').selectAll();
    if (opts.service !== undefined) q = q.where('service', '=', opts.service);
    q = q
      .orderBy('started_at', 'desc')
      .orderBy('id', 'desc')
      .limit(opts.limit ?? 100);
    return (await q.execute()).map(toDrill);
  }

  // ---- tokens ---------------------------------------------------------------------------------------

  async insertToken(t: TokenRecord): Promise<void> {
    await this.db
      .insertInto('tokens')
      .values({
        id: t.id,
        hash: t.hash,
        role: t.role,
        name: t.name,
        created_at: t.createdAt,
        revoked_at: t.revokedAt,
        expires_at: t.expiresAt,
      })
      .execute();
  }

  /** Returns revoked tokens too: the caller checks `revokedAt`. */
  async findTokenByHash(hash: string): Promise<TokenRecord | undefined> {
    const row = await this.db.selectFrom('tokens').selectAll().where('hash', '=', hash).executeTakeFirst();
    return row && toToken(row);
  }

  async listTokens(): Promise<TokenRecord[]> {
    const rows = await this.db.selectFrom('tokens').selectAll().orderBy('created_at').orderBy('id').execute();
    return rows.map(toToken);
  }

  /** Not part of `Store` (yet): sets revokedAt once; returns false for an unknown or already revoked token. */
  async revokeHost(id: string, at: number): Promise<boolean> {
    const r = await this.db
      .updateTable('hosts')
      .set({ revoked_at: at })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  async revokeToken(id: string, at: number): Promise<boolean> {
    const r = await this.db
      .updateTable('tokens')
      .set({ revoked_at: at })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  // ---- fleet meta (0007) ----------------------------------------------------------------------------

  async getMeta(key: string): Promise<unknown> {
    const row = await this.db
      .selectFrom('fleet_meta')
      .select('value')
      .where('key', '=', key)
      .executeTakeFirst();
    return row ? JSON.parse(row.value) : undefined;
  }

  async putMeta(key: string, value: unknown): Promise<void> {
    const v = JSON.stringify(value);
    const at = this.now();
    await this.db
      .insertInto('fleet_meta')
      .values({ key, value: v, updated_at: at })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value: v, updated_at: at }))
      .execute();
  }

  async deleteMeta(key: string): Promise<void> {
    await this.db.deleteFrom('fleet_meta').where('key', '=', key).execute();
  }

  async listMeta(prefix: string): Promise<Array<{ key: string; value: unknown }>> {
    const rows = await this.db
      .selectFrom('fleet_meta')
      .select(['key', 'value'])
      .where('key', '>=', prefix)
      .where('key', '<', `${prefix}\uffff`)
      .orderBy('key')
      .execute();
    return rows.map((r) => ({ key: r.key, value: JSON.parse(r.value) }));
  }

  // ---- secrets and variables (queries in controller/secrets/sql.ts) ---------------------------------

  putSecret(r: Omit<SecretRecord, 'version'>): Promise<SecretRecord> {
    return secretsSql.putSecret(this.db, r);
  }

  rewrapSecret(service: string, environment: string, name: string, value: string): Promise<void> {
    return secretsSql.rewrapSecret(this.db, service, environment, name, value);
  }

  listSecrets(filter?: { service?: string; environment?: string }): Promise<SecretRecord[]> {
    return secretsSql.listSecrets(this.db, filter);
  }

  deleteSecret(service: string, environment: string, name: string): Promise<boolean> {
    return secretsSql.deleteSecret(this.db, service, environment, name);
  }

  // ---- counters -------------------------------------------------------------------------------------

  async nextCounter(name: string): Promise<number> {
    return bumpCounter(this.db, name);
  }

  async getCounters(names: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>(names.map((n) => [n, 0]));
    // Well below SQLite's and PostgreSQL's limits on bound parameters per statement.
    for (let i = 0; i < names.length; i += 500) {
      const rows = await this.db
        .selectFrom('counters')
        .select(['name', 'value'])
        .where('name', 'in', names.slice(i, i + 500))
        .execute();
      for (const r of rows) out.set(r.name, num(r.value));
    }
    return out;
  }

  async getCounter(name: string): Promise<number> {
    const row = await this.db
      .selectFrom('counters')
      .select('value')
      .where('name', '=', name)
      .executeTakeFirst();
    return row ? num(row.value) : 0;
  }

  // ---- leadership leases (store/lease.ts) -------------------------------------------------------------

  async tryAcquireLease(l: {
    name: string;
    holder: string;
    url: string;
    ttlMs: number;
    now: number;
  }): Promise<LeaseRecord> {
    return this.atomic((db) => lease.tryAcquireLease(db, l));
  }

  async renewLease(l: { name: string; holder: string; token: number; ttlMs: number; now: number }) {
    return lease.renewLease(this.db, l);
  }

  async releaseLease(name: string, holder: string, token: number): Promise<void> {
    await lease.releaseLease(this.db, name, holder, token);
  }

  async getLease(name: string): Promise<LeaseRecord | undefined> {
    return lease.getLease(this.db, name);
  }

  async holdsLease(name: string, holder: string, token: number, now: number): Promise<boolean> {
    return lease.holdsLease(this.db, name, holder, token, now, this.rowLocks && this.db.isTransaction);
  }

  // ---- backup and restore (store/snapshot.ts) ---------------------------------------------------------

  async exportSnapshot(): Promise<StateSnapshot> {
    if (this.db.isTransaction)
      throw new NinesError('NINES_E_INTERNAL', 'exportSnapshot() inside a transaction');
    return snapshot.exportSnapshot(this.db, this.rowLocks);
  }

  async importSnapshot(
    snap: StateSnapshot,
    opts: { replace?: boolean } = {},
  ): Promise<Record<string, number>> {
    if (this.db.isTransaction)
      throw new NinesError('NINES_E_INTERNAL', 'importSnapshot() inside a transaction');
    return snapshot.importSnapshot(this.db, snap, { postgres: this.rowLocks, ...opts });
  }
}

// ---- helpers ----------------------------------------------------------------------------------------

/** One statement: insert 1 or add 1, returning the new value. Atomic on SQLite and PostgreSQL. */
async function bumpCounter(db: Kysely<Database>, name: string): Promise<number> {
  const row = await db
    .insertInto('counters')
    .values({ name, value: 1 })
    .onConflict((oc) => oc.column('name').doUpdateSet((eb) => ({ value: eb('counters.value', '+', 1) })))
    .returning('value')
    .executeTakeFirstOrThrow();
  return num(row.value);
}

async function assertService(db: Kysely<Database>, service: string): Promise<void> {
  const row = await db.selectFrom('services').select('name').where('name', '=', service).executeTakeFirst();
  if (!row) throw serviceNotFound(service);
}

function serviceNotFound(service: string): NinesError {
  return new NinesError('NINES_E_SERVICE_NOT_FOUND', `no service ${service}`, { service });
}

function releaseNotFound(service: string, version: string): NinesError {
  return new NinesError('NINES_E_RELEASE_NOT_FOUND', `no release ${version} of ${service}`, {
    service,
    version,
  });
}

function releaseExists(service: string, version: string): NinesError {
  return new NinesError(
    'NINES_E_RELEASE_EXISTS',
    `release ${version} of ${service} already exists; releases are immutable, use a new version`,
    { service, version },
  );
}

function deployNotFound(id: string): NinesError {
  return new NinesError('NINES_E_DEPLOY_NOT_FOUND', `no deploy ${id}`, { deploy: id });
}

/** better-sqlite3: SQLITE_CONSTRAINT_PRIMARYKEY / _UNIQUE; pg: SQLSTATE 23505. */
export function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === '23505';
}

function num(v: number | string | bigint): number {
  return typeof v === 'number' ? v : Number(v);
}

function numOrNull(v: number | string | bigint | null): number | null {
  return v === null ? null : num(v);
}

function parseJsonOrNull<T>(text: string | null): T | null {
  return text === null ? null : (JSON.parse(text) as T);
}

function toService(row: Selectable<ServicesTable>): ServiceRecord {
  return {
    name: row.name,
    spec: JSON.parse(row.spec) as ServiceSpec,
    currentRelease: row.current_release,
    lockedBy: row.locked_by,
    createdAt: num(row.created_at),
    updatedAt: num(row.updated_at),
    mode: row.mode as ServiceMode,
    modeOptions: row.mode_options === null ? null : (JSON.parse(row.mode_options) as ServiceModeOptions),
    ...(row.traffic ? { traffic: JSON.parse(row.traffic) as TrafficSplit } : {}),
  };
}

function toRelease(row: Selectable<ReleasesTable>): ReleaseRecord {
  return {
    service: row.service,
    version: row.version,
    sha256: row.sha256,
    size: num(row.size),
    spec: JSON.parse(row.spec) as ServiceSpec,
    stable: Number(row.stable) !== 0,
    createdBy: row.created_by,
    createdAt: num(row.created_at),
    seq: num(row.seq),
  };
}

function toDeploy(row: Selectable<DeploysTable>): DeployRecord {
  return {
    id: row.id,
    service: row.service,
    fromVersion: row.from_version,
    toVersion: row.to_version,
    strategy: row.strategy as DeployRecord['strategy'],
    kind: row.kind as DeployKind,
    state: row.state as DeployState,
    reason: row.reason,
    createdBy: row.created_by,
    createdAt: num(row.created_at),
    startedAt: numOrNull(row.started_at),
    finishedAt: numOrNull(row.finished_at),
    requests: numOrNull(row.requests),
    failedRequests: numOrNull(row.failed_requests),
    ...(row.options ? { options: JSON.parse(row.options) as DeployOptions } : {}),
  };
}

function toInstance(row: Selectable<InstancesTable>): InstanceRecord {
  return {
    id: row.id,
    service: row.service,
    releaseVersion: row.release_version,
    hostId: row.host_id,
    desired: row.desired as InstanceRecord['desired'],
    route: row.route as InstanceRouteState,
    deployId: row.deploy_id,
    observed: parseJsonOrNull<ObservedInstance>(row.observed),
    createdAt: num(row.created_at),
    updatedAt: num(row.updated_at),
  };
}

function toHost(row: Selectable<HostsTable>): HostRecord {
  return {
    id: row.id,
    name: row.name,
    zone: row.zone,
    labels: JSON.parse(row.labels) as Record<string, string>,
    address: row.address,
    registeredAt: num(row.registered_at),
    lastSeenAt: num(row.last_seen_at),
    key: row.auth_key,
    revokedAt: numOrNull(row.revoked_at),
  };
}

function toDrill(row: Selectable<DrillsTable>): DrillRecord {
  return {
    id: row.id,
    service: row.service,
    scenario: row.scenario,
    outcome: row.outcome as DrillRecord['outcome'],
    createdBy: row.created_by,
    startedAt: num(row.started_at),
    finishedAt: num(row.finished_at),
    result: parseJsonOrNull<Record<string, unknown>>(row.result) ?? {},
  };
}

function toEvent(row: Selectable<EventsTable>): EventRecord {
  return {
    id: num(row.id),
    at: num(row.at),
    kind: row.kind,
    subject: row.subject,
    message: row.message,
    data: parseJsonOrNull<Record<string, unknown>>(row.data),
  };
}

function toToken(row: Selectable<TokensTable>): TokenRecord {
  return {
    id: row.id,
    hash: row.hash,
    role: row.role as TokenRole,
    name: row.name,
    createdAt: num(row.created_at),
    revokedAt: numOrNull(row.revoked_at),
    expiresAt: numOrNull(row.expires_at),
  };
}
