import type { Kysely, Migration, MigrationProvider } from 'kysely';
import { sloCountsMigration } from '../alerting/slo-store.js';
import { alertsMigration } from '../alerting/store.js';
import { drillSchedulesMigration } from '../drill-scheduler.js';
import { noncesMigration } from './nonces.js';

/**
 * Versioned schema migrations, applied in name order by Kysely's Migrator. Only Kysely's schema builder
 * and portable column types are used, so the same migrations run on SQLite and PostgreSQL. Never edit a
 * migration that has shipped: add `0002_…` instead.
 */

const init: Migration = {
  // biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on the current Database type
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .createTable('services')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('spec', 'text', (c) => c.notNull())
      .addColumn('current_release', 'text')
      .addColumn('locked_by', 'text')
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('releases')
      .addColumn('service', 'text', (c) => c.notNull())
      .addColumn('version', 'text', (c) => c.notNull())
      .addColumn('sha256', 'text', (c) => c.notNull())
      .addColumn('size', 'bigint', (c) => c.notNull())
      .addColumn('spec', 'text', (c) => c.notNull())
      .addColumn('stable', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('created_by', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('seq', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('releases_pk', ['service', 'version'])
      .addUniqueConstraint('releases_seq_uq', ['seq'])
      .addForeignKeyConstraint('releases_service_fk', ['service'], 'services', ['name'])
      .execute();
    await db.schema
      .createIndex('releases_service_seq_ix')
      .on('releases')
      .columns(['service', 'seq'])
      .execute();

    await db.schema
      .createTable('deploys')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('service', 'text', (c) => c.notNull())
      .addColumn('from_version', 'text')
      .addColumn('to_version', 'text', (c) => c.notNull())
      .addColumn('strategy', 'text', (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('reason', 'text')
      .addColumn('created_by', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('started_at', 'bigint')
      .addColumn('finished_at', 'bigint')
      .addColumn('last_event_seq', 'integer', (c) => c.notNull().defaultTo(0))
      .addForeignKeyConstraint('deploys_service_fk', ['service'], 'services', ['name'])
      .execute();
    await db.schema
      .createIndex('deploys_service_created_ix')
      .on('deploys')
      .columns(['service', 'created_at'])
      .execute();
    await db.schema.createIndex('deploys_created_ix').on('deploys').column('created_at').execute();
    await db.schema.createIndex('deploys_state_ix').on('deploys').column('state').execute();

    await db.schema
      .createTable('deploy_events')
      .addColumn('deploy_id', 'text', (c) => c.notNull())
      .addColumn('seq', 'integer', (c) => c.notNull())
      .addColumn('at', 'bigint', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('message', 'text', (c) => c.notNull())
      .addColumn('data', 'text')
      .addPrimaryKeyConstraint('deploy_events_pk', ['deploy_id', 'seq'])
      .addForeignKeyConstraint('deploy_events_deploy_fk', ['deploy_id'], 'deploys', ['id'])
      .execute();

    await db.schema
      .createTable('instances')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('service', 'text', (c) => c.notNull())
      .addColumn('release_version', 'text', (c) => c.notNull())
      .addColumn('host_id', 'text', (c) => c.notNull())
      .addColumn('desired', 'text', (c) => c.notNull())
      .addColumn('route', 'text', (c) => c.notNull())
      .addColumn('deploy_id', 'text')
      .addColumn('observed', 'text')
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .addForeignKeyConstraint('instances_service_fk', ['service'], 'services', ['name'])
      .execute();
    await db.schema.createIndex('instances_service_ix').on('instances').column('service').execute();
    await db.schema.createIndex('instances_host_ix').on('instances').column('host_id').execute();

    await db.schema
      .createTable('hosts')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('zone', 'text', (c) => c.notNull())
      .addColumn('labels', 'text', (c) => c.notNull())
      .addColumn('address', 'text', (c) => c.notNull())
      .addColumn('registered_at', 'bigint', (c) => c.notNull())
      .addColumn('last_seen_at', 'bigint', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('events')
      .addColumn('id', 'bigint', (c) => c.primaryKey())
      .addColumn('at', 'bigint', (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('subject', 'text', (c) => c.notNull())
      .addColumn('message', 'text', (c) => c.notNull())
      .addColumn('data', 'text')
      .execute();
    await db.schema.createIndex('events_kind_ix').on('events').columns(['kind', 'id']).execute();
    await db.schema.createIndex('events_subject_ix').on('events').columns(['subject', 'id']).execute();

    await db.schema
      .createTable('tokens')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('hash', 'text', (c) => c.notNull())
      .addColumn('role', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('revoked_at', 'bigint')
      .addUniqueConstraint('tokens_hash_uq', ['hash'])
      .execute();

    await db.schema
      .createTable('counters')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('value', 'bigint', (c) => c.notNull())
      .execute();
  },

  // biome-ignore lint/suspicious/noExplicitAny: see up()
  async down(db: Kysely<any>): Promise<void> {
    for (const t of [
      'counters',
      'tokens',
      'events',
      'hosts',
      'instances',
      'deploy_events',
      'deploys',
      'releases',
      'services',
    ]) {
      await db.schema.dropTable(t).execute();
    }
  },
};

/**
 * Signed node requests (per-host keys, revocation) and expiring join tokens. SQLite's ALTER TABLE
 * adds one column per statement, so each is its own.
 */
const hostKeys: Migration = {
  // biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then
  async up(db: Kysely<any>): Promise<void> {
    await db.schema.alterTable('hosts').addColumn('auth_key', 'text').execute();
    await db.schema.alterTable('hosts').addColumn('revoked_at', 'bigint').execute();
    await db.schema.alterTable('tokens').addColumn('expires_at', 'bigint').execute();
  },
  // biome-ignore lint/suspicious/noExplicitAny: see up()
  async down(db: Kysely<any>): Promise<void> {
    await db.schema.alterTable('tokens').dropColumn('expires_at').execute();
    await db.schema.alterTable('hosts').dropColumn('revoked_at').execute();
    await db.schema.alterTable('hosts').dropColumn('auth_key').execute();
  },
};

/** Service modes (live / read-only / maintenance / pause): operational state, not config. */
const serviceModes: Migration = {
  // biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .alterTable('services')
      .addColumn('mode', 'text', (c) => c.notNull().defaultTo('live'))
      .execute();
    await db.schema.alterTable('services').addColumn('mode_options', 'text').execute();
  },
  // biome-ignore lint/suspicious/noExplicitAny: see up()
  async down(db: Kysely<any>): Promise<void> {
    await db.schema.alterTable('services').dropColumn('mode_options').execute();
    await db.schema.alterTable('services').dropColumn('mode').execute();
  },
};

/** What the proxies saw during a deploy: answers and failed (5xx) answers. */
const deployCounts: Migration = {
  // biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then
  async up(db: Kysely<any>): Promise<void> {
    await db.schema.alterTable('deploys').addColumn('requests', 'bigint').execute();
    await db.schema.alterTable('deploys').addColumn('failed_requests', 'bigint').execute();
  },
  // biome-ignore lint/suspicious/noExplicitAny: see up()
  async down(db: Kysely<any>): Promise<void> {
    await db.schema.alterTable('deploys').dropColumn('failed_requests').execute();
    await db.schema.alterTable('deploys').dropColumn('requests').execute();
  },
};

/**
 * Black-box checks and uptime (issue 6): the declared checks, the current state of each subject (a
 * check, or `service:<name>`), every state transition (uptime and incidents are computed from these),
 * and per-minute rollups of the raw results (raw results stay in memory, so 10,000 checks a minute add
 * one row per check per minute, pruned after a retention period).
 */
const checks: Migration = {
  // biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .createTable('checks')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('spec', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('check_states')
      .addColumn('subject', 'text', (c) => c.primaryKey())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('since', 'bigint', (c) => c.notNull())
      .addColumn('message', 'text', (c) => c.notNull())
      .addColumn('failing', 'integer', (c) => c.notNull())
      .addColumn('locations', 'integer', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('check_transitions')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('subject', 'text', (c) => c.notNull())
      .addColumn('at', 'bigint', (c) => c.notNull())
      .addColumn('from_state', 'text', (c) => c.notNull())
      .addColumn('to_state', 'text', (c) => c.notNull())
      .addColumn('cause', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('check_transitions_subject_at_ix')
      .on('check_transitions')
      .columns(['subject', 'at'])
      .execute();
    await db.schema
      .createTable('check_minutes')
      .addColumn('subject', 'text', (c) => c.notNull())
      .addColumn('minute', 'bigint', (c) => c.notNull())
      .addColumn('ok', 'integer', (c) => c.notNull())
      .addColumn('failed', 'integer', (c) => c.notNull())
      .addColumn('latency_sum_ms', 'double precision', (c) => c.notNull())
      .addColumn('latency_max_ms', 'double precision', (c) => c.notNull())
      .addPrimaryKeyConstraint('check_minutes_pk', ['subject', 'minute'])
      .execute();
  },
  // biome-ignore lint/suspicious/noExplicitAny: see up()
  async down(db: Kysely<any>): Promise<void> {
    for (const t of ['check_minutes', 'check_transitions', 'check_states', 'checks']) {
      await db.schema.dropTable(t).execute();
    }
  },
};

/**
 * Operational fleet state that is not config: host lifecycle (cordoned, draining) and evacuated zones,
 * as JSON by key, so new fleet state needs no new migration.
 */
const fleet: Migration = {
  // biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .createTable('fleet_meta')
      .addColumn('key', 'text', (c) => c.primaryKey())
      .addColumn('value', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .execute();
  },
  // biome-ignore lint/suspicious/noExplicitAny: see up()
  async down(db: Kysely<any>): Promise<void> {
    await db.schema.dropTable('fleet_meta').execute();
  },
};

/**
 * Secrets and environment variables per service and environment. `value` is the plain value of a
 * variable, or for a secret the AES-256-GCM sealed form (`v1.<key id>.<iv>.<tag>.<ciphertext>`, see
 * controller/secrets/keyring.ts): the key lives outside the store.
 */
const secrets: Migration = {
  // biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .createTable('secrets')
      .addColumn('service', 'text', (c) => c.notNull())
      .addColumn('environment', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('value', 'text', (c) => c.notNull())
      .addColumn('version', 'integer', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .addColumn('updated_by', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('secrets_pk', ['service', 'environment', 'name'])
      .execute();
  },
  // biome-ignore lint/suspicious/noExplicitAny: see up()
  async down(db: Kysely<any>): Promise<void> {
    await db.schema.dropTable('secrets').execute();
  },
};

/** Deploy strategies: a service's traffic split, a deploy's own options (auto-revert). */
const deployStrategies: Migration = {
  // biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then
  async up(db: Kysely<any>): Promise<void> {
    await db.schema.alterTable('services').addColumn('traffic', 'text').execute();
    await db.schema.alterTable('deploys').addColumn('options', 'text').execute();
  },
  // biome-ignore lint/suspicious/noExplicitAny: see up()
  async down(db: Kysely<any>): Promise<void> {
    await db.schema.alterTable('deploys').dropColumn('options').execute();
    await db.schema.alterTable('services').dropColumn('traffic').execute();
  },
};

/** `nines drill` results, newest first per service. */
const drills: Migration = {
  // biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .createTable('drills')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('service', 'text', (c) => c.notNull())
      .addColumn('scenario', 'text', (c) => c.notNull())
      .addColumn('outcome', 'text', (c) => c.notNull())
      .addColumn('created_by', 'text', (c) => c.notNull())
      .addColumn('started_at', 'bigint', (c) => c.notNull())
      .addColumn('finished_at', 'bigint', (c) => c.notNull())
      .addColumn('result', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('drills_service_started_ix')
      .on('drills')
      .columns(['service', 'started_at'])
      .execute();
  },
  // biome-ignore lint/suspicious/noExplicitAny: see up()
  async down(db: Kysely<any>): Promise<void> {
    await db.schema.dropTable('drills').execute();
  },
};

/**
 * Leadership of several controllers on one database: one row per lease (`controller`), its holder, the
 * holder's advertised URL, a fencing token that grows with every change of holder, and its expiry.
 */
const leaderLease: Migration = {
  // biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .createTable('leader_lease')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('holder', 'text', (c) => c.notNull())
      .addColumn('url', 'text', (c) => c.notNull())
      .addColumn('token', 'bigint', (c) => c.notNull())
      .addColumn('acquired_at', 'bigint', (c) => c.notNull())
      .addColumn('renewed_at', 'bigint', (c) => c.notNull())
      .addColumn('expires_at', 'bigint', (c) => c.notNull())
      .execute();
  },
  // biome-ignore lint/suspicious/noExplicitAny: see up()
  async down(db: Kysely<any>): Promise<void> {
    await db.schema.dropTable('leader_lease').execute();
  },
};

/** Every migration, by name. Names sort in the order they must run. */
export const migrations: Readonly<Record<string, Migration>> = {
  '0001_init': init,
  '0002_host_keys': hostKeys,
  '0003_service_modes': serviceModes,
  '0004_deploy_counts': deployCounts,
  '0005_checks': checks,
  '0006_alerts': alertsMigration,
  '0007_fleet': fleet,
  '0008_secrets': secrets,
  '0009_leader_lease': leaderLease,
  '0010_deploy_strategies': deployStrategies,
  '0011_drills': drills,
  '0012_slo_counts': sloCountsMigration,
  '0016_signed_nonces': noncesMigration,
  // 0013–0015 were names handed out for work that did not need a migration; a gap is harmless.
  '0017_drill_schedules': drillSchedulesMigration,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => ({ ...migrations }),
};

/** Kysely's bookkeeping tables (the default names, spelled out so a backup tool can find them). */
export const MIGRATION_TABLE = 'kysely_migration';
export const MIGRATION_LOCK_TABLE = 'kysely_migration_lock';
