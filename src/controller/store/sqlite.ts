import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, type SqliteDatabase } from 'kysely';
import { KyselyStore } from './kysely-store.js';
import type { Database as Schema } from './schema.js';
import { FifoSqliteDialect } from './sqlite-fifo.js';
import type { Store } from './types.js';

export interface SqliteStoreOptions {
  /** Path of the database file (its directory is created), or `:memory:`. */
  file: string;
  /** Clock for the timestamps the store sets itself; defaults to Date.now. */
  now?: () => number;
}

/**
 * The embedded default: one SQLite file, WAL journal, fsync on every commit (synchronous=FULL), foreign
 * keys enforced. Migrations are applied before the store is returned.
 *
 * better-sqlite3 has one connection and Kysely serializes its use with a mutex: while a `transaction()`
 * runs, every call on the outer store waits for it. Inside `transaction(fn)` use only the `tx` store, or
 * the call deadlocks.
 */
export async function openSqliteStore(opts: SqliteStoreOptions): Promise<Store> {
  return openSqliteKyselyStore(opts);
}

/** The better-sqlite3 connection the store uses, with its pragmas set. Exported for tests and tools. */
export function openSqliteDatabase(file: string): Database.Database {
  const memory = file === ':memory:' || file === '';
  if (!memory) mkdirSync(dirname(resolve(file)), { recursive: true });
  const sqlite = new Database(file, { timeout: 5000 });
  try {
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = FULL');
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma('busy_timeout = 5000');
  } catch (err) {
    sqlite.close();
    throw err;
  }
  return sqlite;
}

/** As openSqliteStore, typed as the concrete class (for `migrateReport()` and `revokeToken()`). */
export async function openSqliteKyselyStore(opts: SqliteStoreOptions): Promise<KyselyStore> {
  const sqlite = openSqliteDatabase(opts.file);
  const db = new Kysely<Schema>({ dialect: new FifoSqliteDialect({ database: withStatementCache(sqlite) }) });
  const store = new KyselyStore(db, opts.now ? { now: opts.now } : {});
  try {
    await store.migrate();
  } catch (err) {
    await db.destroy();
    throw err;
  }
  return store;
}

/**
 * Kysely prepares every query anew, and better-sqlite3 compiles SQL on each prepare(): at a thousand
 * hosts that compiling was an eighth of the controller's CPU (bench/fleet), for a few dozen distinct
 * statements. Compiled statements are kept, least recently used out past `size`. A statement still
 * iterating (busy) is not shared: that query gets a fresh one.
 */
export function withStatementCache(db: Database.Database, size = 512): SqliteDatabase {
  const cache = new Map<string, Database.Statement>();
  return {
    close: () => {
      cache.clear();
      db.close();
    },
    prepare(sql: string) {
      const hit = cache.get(sql);
      if (hit && !hit.busy) {
        cache.delete(sql);
        cache.set(sql, hit);
        return hit;
      }
      const stmt = db.prepare(sql);
      if (hit) return stmt;
      cache.set(sql, stmt);
      if (cache.size > size) {
        const oldest = cache.keys().next().value;
        if (oldest !== undefined) cache.delete(oldest);
      }
      return stmt;
    },
  };
}
