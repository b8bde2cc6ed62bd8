import { CompiledQuery, Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { NinesError } from '../../core/errors.js';
import { KyselyStore } from './kysely-store.js';
import type { Database as Schema } from './schema.js';
import type { Store } from './types.js';

export interface PostgresStoreOptions {
  /** libpq-style URL, e.g. `postgres://nines:secret@db.internal:5432/nines`. */
  connectionString: string;
  /**
   * Keep every table (and Kysely's migration tables) in this schema, created if missing, by setting
   * `search_path` on every pooled connection. Lower-case letters, digits and `_` only. Default: the
   * connection's own `current_schema()` (normally `public`).
   */
  schema?: string;
  /** Maximum pooled connections (default 10). Each `transaction()` holds one until it ends. */
  poolSize?: number;
  /** How long to wait for a connection to the server, in ms (default 10 000; 0 waits forever). */
  connectTimeoutMs?: number;
  /** Clock for the timestamps the store sets itself; defaults to Date.now. */
  now?: () => number;
  /** `application_name` of the connections, as `pg_stat_activity` shows it (default `nines`). */
  applicationName?: string;
  /**
   * Errors of pooled connections (server restarted, network cut). The pool drops such a connection
   * and the next query opens a new one; without a listener pg would crash the process. Default: ignored.
   */
  onPoolError?: (err: Error) => void;
  /**
   * The server ends a session that sits idle inside a transaction this long, in ms (default 10 000): a
   * stalled controller (SIGSTOP, long GC pause) must not hold the lease row's lock and block a takeover.
   */
  idleInTransactionTimeoutMs?: number;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** OIDs of the PostgreSQL types the store reads as numbers. */
const INT8_OID = 20;

/**
 * int8 (`bigint`, also what COUNT(*) returns) as a JS number when it fits exactly, which every value the
 * store keeps does (epoch ms, sizes, sequence numbers). A larger one stays a string rather than silently
 * losing digits; the store's readers still go through Number().
 */
export function parseInt8(text: string): number | string {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : text;
}

const typeParsers: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === INT8_OID && (format === undefined || format === 'text')) return parseInt8;
    return pg.types.getTypeParser(oid, format as 'text');
  }) as pg.CustomTypesConfig['getTypeParser'],
};

/**
 * The store for several controllers: PostgreSQL through Kysely's PostgresDialect over a `pg.Pool`, the
 * same SQL as SQLite (see KyselyStore). Migrations are applied before the store is returned (Kysely takes
 * an advisory lock, so controllers starting together migrate once). `close()` ends the pool.
 *
 * Unlike SQLite, calls run in parallel on several connections; inside `transaction(fn)` every call on
 * `tx` uses the transaction's one connection, and calls on the outer store are refused (as on SQLite),
 * since they would run outside the transaction and could wait for its locks.
 */
export async function openPostgresStore(opts: PostgresStoreOptions): Promise<Store> {
  return openPostgresKyselyStore(opts);
}

/** As openPostgresStore, typed as the concrete class (for `migrateReport()` and `revokeToken()`). */
export async function openPostgresKyselyStore(opts: PostgresStoreOptions): Promise<KyselyStore> {
  const wanted = opts.schema;
  if (wanted !== undefined && !SCHEMA_NAME.test(wanted)) {
    throw new NinesError(
      'NINES_E_INTERNAL',
      `invalid PostgreSQL schema name ${JSON.stringify(wanted)}: use lower-case letters, digits and _`,
    );
  }
  const pool = new pg.Pool({
    connectionString: opts.connectionString,
    max: opts.poolSize ?? 10,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
    application_name: opts.applicationName ?? 'nines',
    idle_in_transaction_session_timeout: opts.idleInTransactionTimeoutMs ?? 10_000,
    types: typeParsers,
  });
  const onPoolError = opts.onPoolError ?? (() => {});
  // The pool listens for errors on idle connections only. One checked out — a transaction waiting on
  // JavaScript, e.g. a controller that was stalled (SIGSTOP) past idle_in_transaction_session_timeout —
  // emits 'error' with no listener when the server ends it, and that crashed the controller. With a
  // listener the transaction's next query fails instead, and the pool drops the connection on release.
  pool.on('connect', (client) => {
    client.on('error', (err) => onPoolError(err));
  });
  pool.on('error', (err) => onPoolError(err));

  const db = new Kysely<Schema>({
    dialect: new PostgresDialect({
      pool,
      // Session-level, once per new connection, before Kysely hands it out.
      ...(wanted !== undefined
        ? {
            onCreateConnection: async (conn) => {
              await conn.executeQuery(CompiledQuery.raw(`SET search_path TO "${wanted}"`));
            },
          }
        : {}),
    }),
  });
  try {
    let schema = wanted;
    if (schema === undefined) {
      const { rows } = await sql<{ s: string | null }>`SELECT current_schema() AS s`.execute(db);
      const current = rows[0]?.s;
      if (!current) {
        throw new NinesError(
          'NINES_E_INTERNAL',
          'PostgreSQL: no schema of the search_path exists; create one or pass a schema',
        );
      }
      schema = current;
    } else {
      await createSchemaIfMissing(db, schema);
    }
    const store = new KyselyStore(db, {
      ...(opts.now ? { now: opts.now } : {}),
      migrationSchema: schema,
      rowLocks: true,
    });
    await store.migrate();
    return store;
  } catch (err) {
    await db.destroy();
    throw err;
  }
}

/** CREATE SCHEMA IF NOT EXISTS can still fail when two sessions run it at once; the schema exists then. */
async function createSchemaIfMissing(db: Kysely<Schema>, schema: string): Promise<void> {
  try {
    await db.schema.createSchema(schema).ifNotExists().execute();
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    if (code !== '23505' && code !== '42P06') throw err;
  }
}
