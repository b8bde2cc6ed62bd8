import type { Kysely, Migration } from 'kysely';

/**
 * Nonces of signed requests, shared by every controller on one database (migration 0016_signed_nonces).
 * Each controller keeps its own in-memory cache too (core/signing.ts NonceCache) — the first, cheap
 * check — but only a nonce in the store is refused by the next leader as well: a request signed for
 * the leader that just died, replayed within the window to the one that took over, is a replay.
 */
export interface NonceStore {
  /** Records the nonce until `expiresAt`; false when it was already recorded (a replay). */
  remember(hostId: string, nonce: string, expiresAt: number): Promise<boolean>;
  /** Forgets nonces that expired before `now`; how many. */
  prune(now: number): Promise<number>;
}

interface Tables {
  signed_nonces: { host_id: string; nonce: string; expires_at: number };
}

export const noncesMigration: Migration = {
  // biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on the current Database type
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .createTable('signed_nonces')
      .addColumn('host_id', 'text', (c) => c.notNull())
      .addColumn('nonce', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('signed_nonces_pk', ['host_id', 'nonce'])
      .execute();
    await db.schema
      .createIndex('signed_nonces_expires_ix')
      .on('signed_nonces')
      .column('expires_at')
      .execute();
  },
  // biome-ignore lint/suspicious/noExplicitAny: see up()
  async down(db: Kysely<any>): Promise<void> {
    await db.schema.dropTable('signed_nonces').execute();
  },
};

export class KyselyNonceStore implements NonceStore {
  private readonly db: Kysely<Tables>;

  // biome-ignore lint/suspicious/noExplicitAny: the store's Kysely, typed for this table only
  constructor(db: Kysely<any>) {
    this.db = db as Kysely<Tables>;
  }

  async remember(hostId: string, nonce: string, expiresAt: number): Promise<boolean> {
    // One statement: the primary key decides, so two controllers racing on one nonce cannot both win.
    const r = await this.db
      .insertInto('signed_nonces')
      .values({ host_id: hostId, nonce, expires_at: expiresAt })
      .onConflict((oc) => oc.columns(['host_id', 'nonce']).doNothing())
      .executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0n) === 1;
  }

  async prune(now: number): Promise<number> {
    const r = await this.db.deleteFrom('signed_nonces').where('expires_at', '<', now).executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}
