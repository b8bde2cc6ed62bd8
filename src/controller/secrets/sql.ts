import type { Kysely, Selectable } from 'kysely';
import type { Database, SecretsTable } from '../store/schema.js';
import type { SecretRecord } from '../store/types.js';

/**
 * The secrets table's queries, used by KyselyStore (kept here so the store file only delegates). Each
 * is one statement: an upsert that bumps the version in the same statement needs no transaction.
 */

function toRecord(r: Selectable<SecretsTable>): SecretRecord {
  return {
    service: r.service,
    environment: r.environment,
    name: r.name,
    kind: r.kind === 'var' ? 'var' : 'secret',
    value: r.value,
    version: Number(r.version),
    updatedAt: Number(r.updated_at),
    updatedBy: r.updated_by,
  };
}

export async function putSecret(
  db: Kysely<Database>,
  r: Omit<SecretRecord, 'version'>,
): Promise<SecretRecord> {
  const row = await db
    .insertInto('secrets')
    .values({
      service: r.service,
      environment: r.environment,
      name: r.name,
      kind: r.kind,
      value: r.value,
      version: 1,
      updated_at: r.updatedAt,
      updated_by: r.updatedBy,
    })
    .onConflict((oc) =>
      oc.columns(['service', 'environment', 'name']).doUpdateSet((eb) => ({
        kind: eb.ref('excluded.kind'),
        value: eb.ref('excluded.value'),
        version: eb('secrets.version', '+', 1),
        updated_at: eb.ref('excluded.updated_at'),
        updated_by: eb.ref('excluded.updated_by'),
      })),
    )
    .returningAll()
    .executeTakeFirstOrThrow();
  return toRecord(row);
}

export async function rewrapSecret(
  db: Kysely<Database>,
  service: string,
  environment: string,
  name: string,
  value: string,
): Promise<void> {
  await db
    .updateTable('secrets')
    .set({ value })
    .where('service', '=', service)
    .where('environment', '=', environment)
    .where('name', '=', name)
    .execute();
}

export async function listSecrets(
  db: Kysely<Database>,
  filter: { service?: string; environment?: string } = {},
): Promise<SecretRecord[]> {
  let q = db.selectFrom('secrets').selectAll();
  if (filter.service !== undefined) q = q.where('service', '=', filter.service);
  if (filter.environment !== undefined) q = q.where('environment', '=', filter.environment);
  const rows = await q.orderBy('service').orderBy('environment').orderBy('name').execute();
  return rows.map(toRecord);
}

export async function deleteSecret(
  db: Kysely<Database>,
  service: string,
  environment: string,
  name: string,
): Promise<boolean> {
  const r = await db
    .deleteFrom('secrets')
    .where('service', '=', service)
    .where('environment', '=', environment)
    .where('name', '=', name)
    .executeTakeFirst();
  return r.numDeletedRows > 0n;
}
