import type { Kysely, Selectable } from 'kysely';
import type { Database, LeaderLeaseTable } from './schema.js';
import type { LeaseRecord } from './types.js';

/**
 * Leadership leases (migration 0009) as portable Kysely queries, used by KyselyStore. Every change of
 * holder is one conditional UPDATE (`expires_at <= now OR holder = me`), which PostgreSQL re-checks
 * after waiting for a competitor's row lock, so of several controllers racing for an expired lease
 * exactly one wins, and its token is the old one + 1: fencing tokens only grow.
 */

export async function tryAcquireLease(
  db: Kysely<Database>,
  l: { name: string; holder: string; url: string; ttlMs: number; now: number },
): Promise<LeaseRecord> {
  await db
    .insertInto('leader_lease')
    .values({
      name: l.name,
      holder: '',
      url: '',
      token: 0,
      acquired_at: 0,
      renewed_at: 0,
      expires_at: 0,
    })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
  await db
    .updateTable('leader_lease')
    .set((eb) => ({
      holder: l.holder,
      url: l.url,
      token: eb('token', '+', 1).$castTo<number>(),
      acquired_at: l.now,
      renewed_at: l.now,
      expires_at: l.now + l.ttlMs,
    }))
    .where('name', '=', l.name)
    .where((eb) => eb.or([eb('expires_at', '<=', l.now), eb('holder', '=', l.holder)]))
    .execute();
  const row = await db
    .selectFrom('leader_lease')
    .selectAll()
    .where('name', '=', l.name)
    .executeTakeFirstOrThrow();
  return toLease(row);
}

export async function renewLease(
  db: Kysely<Database>,
  l: { name: string; holder: string; token: number; ttlMs: number; now: number },
): Promise<boolean> {
  const r = await db
    .updateTable('leader_lease')
    .set({ renewed_at: l.now, expires_at: l.now + l.ttlMs })
    .where('name', '=', l.name)
    .where('holder', '=', l.holder)
    .where('token', '=', l.token)
    .executeTakeFirst();
  return r.numUpdatedRows > 0n;
}

export async function releaseLease(
  db: Kysely<Database>,
  name: string,
  holder: string,
  token: number,
): Promise<void> {
  await db
    .updateTable('leader_lease')
    .set({ expires_at: 0 })
    .where('name', '=', name)
    .where('holder', '=', holder)
    .where('token', '=', token)
    .execute();
}

export async function getLease(db: Kysely<Database>, name: string): Promise<LeaseRecord | undefined> {
  const row = await db.selectFrom('leader_lease').selectAll().where('name', '=', name).executeTakeFirst();
  return row && toLease(row);
}

export async function holdsLease(
  db: Kysely<Database>,
  name: string,
  holder: string,
  token: number,
  now: number,
  rowLocks: boolean,
): Promise<boolean> {
  const q = db.selectFrom('leader_lease').select(['holder', 'token', 'expires_at']).where('name', '=', name);
  const row = await (rowLocks ? q.forShare() : q).executeTakeFirst();
  return (
    row !== undefined && row.holder === holder && Number(row.token) === token && Number(row.expires_at) > now
  );
}

function toLease(row: Selectable<LeaderLeaseTable>): LeaseRecord {
  return {
    name: row.name,
    holder: row.holder,
    url: row.url,
    token: Number(row.token),
    acquiredAt: Number(row.acquired_at),
    renewedAt: Number(row.renewed_at),
    expiresAt: Number(row.expires_at),
  };
}
