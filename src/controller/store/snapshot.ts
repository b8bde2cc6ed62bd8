import { type Kysely, sql } from 'kysely';
import type { StateSnapshot } from '../../core/backup-file.js';
import { NinesError } from '../../core/errors.js';
import { MIGRATION_LOCK_TABLE, MIGRATION_TABLE, migrations } from './migrations.js';
import type { Database } from './schema.js';

/**
 * Backup and restore of the whole store. The tables are enumerated from the database itself (Kysely's
 * introspection), not from a list kept by hand, so a table a later migration adds is included without
 * touching this file. Rows are ordered parents first by the database's own foreign keys.
 */

// biome-ignore lint/suspicious/noExplicitAny: tables are discovered at run time
type AnyDb = Kysely<any>;

const BOOKKEEPING = new Set([MIGRATION_TABLE, MIGRATION_LOCK_TABLE]);

async function userTables(db: AnyDb, postgres: boolean): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  if (postgres) {
    // Only this store's schema: Kysely's introspection lists every schema of the database (another
    // nines, or a schema dropped meanwhile: "schema … does not exist" under concurrent tests).
    const r = await sql<{ table_name: string; column_name: string }>`
      SELECT c.table_name, c.column_name
      FROM information_schema.columns c
      JOIN information_schema.tables t
        ON t.table_schema = c.table_schema AND t.table_name = c.table_name
      WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
      ORDER BY c.table_name, c.ordinal_position`.execute(db);
    for (const row of r.rows) {
      if (BOOKKEEPING.has(row.table_name)) continue;
      const cols = out.get(row.table_name) ?? [];
      cols.push(row.column_name);
      out.set(row.table_name, cols);
    }
    return out;
  }
  const tables = await db.introspection.getTables();
  for (const t of tables) {
    if (t.isView || BOOKKEEPING.has(t.name) || t.name.startsWith('sqlite_')) continue;
    out.set(
      t.name,
      t.columns.map((c) => c.name),
    );
  }
  return out;
}

/** Parents (referenced tables) of `table`, from the database's foreign keys. */
async function parents(db: AnyDb, table: string, postgres: boolean): Promise<string[]> {
  if (postgres) {
    const r = await sql<{ parent: string }>`
      SELECT DISTINCT ccu.table_name AS parent
      FROM information_schema.table_constraints tc
      JOIN information_schema.constraint_column_usage ccu
        ON tc.constraint_name = ccu.constraint_name AND tc.table_schema = ccu.table_schema
      WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_name = ${table}
        AND tc.table_schema = current_schema()`.execute(db);
    return r.rows.map((x) => x.parent);
  }
  const r = await sql<{ table: string }>`SELECT "table" FROM pragma_foreign_key_list(${table})`.execute(db);
  return r.rows.map((x) => x.table);
}

/** Tables in an order where every table comes after the tables it references. */
async function ordered(db: AnyDb, tables: string[], postgres: boolean): Promise<string[]> {
  const deps = new Map<string, string[]>();
  for (const t of tables)
    deps.set(
      t,
      (await parents(db, t, postgres)).filter((p) => p !== t && tables.includes(p)),
    );
  const out: string[] = [];
  const visit = (t: string, path: Set<string>) => {
    if (out.includes(t) || path.has(t)) return;
    path.add(t);
    for (const p of deps.get(t) ?? []) visit(p, path);
    out.push(t);
  };
  for (const t of [...tables].sort()) visit(t, new Set());
  return out;
}

/** Every table's rows, read in one transaction (a consistent snapshot: repeatable read on PostgreSQL). */
export async function exportSnapshot(root: Kysely<Database>, postgres: boolean): Promise<StateSnapshot> {
  const run = async (db: AnyDb): Promise<StateSnapshot> => {
    const tables = await userTables(db, postgres);
    const applied = await db
      .selectFrom(MIGRATION_TABLE)
      .select('name')
      .orderBy('name')
      .execute()
      .catch(() => [] as Array<{ name: string }>);
    const snap: StateSnapshot = {
      format: 'nines-state/1',
      createdAt: Date.now(),
      migrations: applied.map((m: { name: string }) => m.name),
      tables: {},
    };
    for (const [name, columns] of tables) {
      const rows = await db.selectFrom(name).select(columns).execute();
      snap.tables[name] = {
        columns,
        rows: rows.map((r: Record<string, unknown>) => columns.map((c) => r[c])),
      };
    }
    return snap;
  };
  const tx = root.transaction();
  return (postgres ? tx.setIsolationLevel('repeatable read') : tx).execute((db) =>
    run(db as unknown as AnyDb),
  );
}

/**
 * Loads a snapshot into a store that is fresh (no services, hosts or tokens) unless `replace`, in one
 * transaction. Counters, host generations and the fencing token are moved to at least the restore time
 * in ms, so every version handed out after a restore is larger than any the agents and proxies saw
 * before it: they take the restored controller's word, and a pre-restore leader stays fenced.
 */
export async function importSnapshot(
  root: Kysely<Database>,
  snap: StateSnapshot,
  opts: { postgres: boolean; replace?: boolean; now?: number },
): Promise<Record<string, number>> {
  const known = new Set(Object.keys(migrations));
  const unknown = snap.migrations.filter((m) => !known.has(m));
  if (unknown.length > 0) {
    throw new NinesError(
      'NINES_E_BACKUP_INVALID',
      `the backup was made by a newer nines (store migrations ${unknown.join(', ')}); restore it with that version`,
    );
  }
  const floor = opts.now ?? Date.now();
  return root.transaction().execute(async (trx) => {
    const db = trx as unknown as AnyDb;
    const tables = await userTables(db, opts.postgres);
    const order = await ordered(db, [...tables.keys()], opts.postgres);
    if (!opts.replace) {
      for (const t of ['services', 'hosts', 'releases']) {
        if (!tables.has(t)) continue;
        const { n } = (await db
          .selectFrom(t)
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()) as { n: number | string };
        if (Number(n) > 0) {
          throw new NinesError(
            'NINES_E_VALIDATION',
            `the target store is not empty (${t} has ${n} rows): restore into a fresh controller, or pass --replace`,
          );
        }
      }
    }
    for (const t of [...order].reverse()) await db.deleteFrom(t).execute();
    const counts: Record<string, number> = {};
    for (const t of order) {
      const data = snap.tables[t];
      if (!data) continue;
      const have = tables.get(t) ?? [];
      const cols = data.columns.filter((c) => have.includes(c));
      let rows = data.rows.map((r) => Object.fromEntries(cols.map((c) => [c, r[data.columns.indexOf(c)]])));
      if (t === 'counters') {
        rows = rows.map((r) => ({ ...r, value: Math.max(Number(r.value), floor) }));
      }
      if (t === 'leader_lease') {
        rows = rows.map((r) => ({
          ...r,
          holder: '',
          url: '',
          expires_at: 0,
          token: Math.max(Number(r.token), floor),
        }));
      }
      for (let i = 0; i < rows.length; i += 200)
        await db
          .insertInto(t)
          .values(rows.slice(i, i + 200))
          .execute();
      counts[t] = rows.length;
    }
    return counts;
  });
}
