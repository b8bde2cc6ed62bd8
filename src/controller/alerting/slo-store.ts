import type { Kysely, Migration } from 'kysely';

/**
 * Persistent request counts for SLOs (migration 0012_slo_counts): per service and per release, the
 * answers the proxies gave and how many of them were 5xx, in buckets. Recent buckets are minutes;
 * `compact()` rolls finished hours into one hour row and finished days into one day row once they are
 * old enough, so a service costs about 4,320 minute rows (3 days) + 650 hour rows + 60 day rows.
 *
 * A bucket row is keyed by its start (epoch ms); its length follows from its age (the rollup policy),
 * so sums over [from, to) count a row when its start lies inside: exact to the minute for windows that
 * stay inside the minute retention, to the hour / day beyond it.
 *
 * `release` is '' for the service as a whole (the proxies' per-service counters, which also count the
 * proxy's own 5xx answers such as "no healthy instance"), otherwise a release version (the per-instance
 * counters of that release's instances).
 */

export interface SloCountRow {
  service: string;
  /** '' = the whole service. */
  release: string;
  /** Start of the bucket (epoch ms). */
  at: number;
  total: number;
  bad: number;
}

export interface SloCompaction {
  /** Minute rows of hours that ended at or before this instant become hour rows. */
  hoursBefore: number;
  /** Rows of days that ended at or before this instant become day rows. */
  daysBefore: number;
  /** Rows starting before this instant are deleted. */
  deleteBefore: number;
}

export interface SloCountStore {
  /** Adds the counts to their buckets (summing into rows that exist), all in one transaction. */
  add(rows: readonly SloCountRow[]): Promise<void>;
  /** Sum of the buckets of `service`/`release` (default '') starting in [from, to). */
  sum(q: {
    service: string;
    release?: string;
    from: number;
    to: number;
  }): Promise<{ total: number; bad: number }>;
  /** Rows starting in [from, to), by service, release, start. */
  list(q: { service?: string; release?: string; from?: number; to?: number }): Promise<SloCountRow[]>;
  /** Services and releases that have a row starting at or after `since`. */
  keys(since: number): Promise<{ service: string; release: string }[]>;
  /** Rollups and retention; returns rows merged away and rows deleted. */
  compact(c: SloCompaction): Promise<{ merged: number; deleted: number }>;
}

export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

interface Tables {
  slo_counts: { service: string; release: string; at: number; total: number; bad: number };
}

export const sloCountsMigration: Migration = {
  // biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .createTable('slo_counts')
      .addColumn('service', 'text', (c) => c.notNull())
      .addColumn('release', 'text', (c) => c.notNull())
      .addColumn('at', 'bigint', (c) => c.notNull())
      .addColumn('total', 'bigint', (c) => c.notNull())
      .addColumn('bad', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('slo_counts_pk', ['service', 'release', 'at'])
      .execute();
    // Retention and rollups scan by time across every service.
    await db.schema.createIndex('slo_counts_at_ix').on('slo_counts').column('at').execute();
  },
  // biome-ignore lint/suspicious/noExplicitAny: see up()
  async down(db: Kysely<any>): Promise<void> {
    await db.schema.dropTable('slo_counts').execute();
  },
};

const n = (v: unknown): number => (typeof v === 'number' ? v : Number(v ?? 0));

export class KyselySloCountStore implements SloCountStore {
  private readonly db: Kysely<Tables>;

  // biome-ignore lint/suspicious/noExplicitAny: the main store's Kysely, typed for this table here
  constructor(db: Kysely<any>) {
    this.db = db as Kysely<Tables>;
  }

  private tx<T>(fn: (db: Kysely<Tables>) => Promise<T>): Promise<T> {
    return this.db.isTransaction ? fn(this.db) : this.db.transaction().execute(fn);
  }

  async add(rows: readonly SloCountRow[]): Promise<void> {
    // Same bucket twice in one batch: one statement each would still be correct, fewer is cheaper.
    const merged = new Map<string, SloCountRow>();
    for (const r of rows) {
      if (r.total <= 0 && r.bad <= 0) continue;
      const k = `${r.service}\u0000${r.release}\u0000${r.at}`;
      const m = merged.get(k);
      if (m) {
        m.total += r.total;
        m.bad += r.bad;
      } else merged.set(k, { ...r });
    }
    if (merged.size === 0) return;
    await this.tx(async (db) => {
      for (const r of merged.values()) {
        await db
          .insertInto('slo_counts')
          .values({ service: r.service, release: r.release, at: r.at, total: r.total, bad: r.bad })
          .onConflict((oc) =>
            oc.columns(['service', 'release', 'at']).doUpdateSet((eb) => ({
              total: eb('slo_counts.total', '+', r.total),
              bad: eb('slo_counts.bad', '+', r.bad),
            })),
          )
          .execute();
      }
    });
  }

  async sum(q: {
    service: string;
    release?: string;
    from: number;
    to: number;
  }): Promise<{ total: number; bad: number }> {
    const row = await this.db
      .selectFrom('slo_counts')
      .select((eb) => [
        eb.fn.sum<number | string | null>('total').as('total'),
        eb.fn.sum<number | string | null>('bad').as('bad'),
      ])
      .where('service', '=', q.service)
      .where('release', '=', q.release ?? '')
      .where('at', '>=', q.from)
      .where('at', '<', q.to)
      .executeTakeFirst();
    return { total: n(row?.total), bad: n(row?.bad) };
  }

  async list(q: { service?: string; release?: string; from?: number; to?: number }): Promise<SloCountRow[]> {
    let sel = this.db.selectFrom('slo_counts').selectAll();
    if (q.service !== undefined) sel = sel.where('service', '=', q.service);
    if (q.release !== undefined) sel = sel.where('release', '=', q.release);
    if (q.from !== undefined) sel = sel.where('at', '>=', q.from);
    if (q.to !== undefined) sel = sel.where('at', '<', q.to);
    const rows = await sel.orderBy('service').orderBy('release').orderBy('at').execute();
    return rows.map((r) => ({
      service: r.service,
      release: r.release,
      at: n(r.at),
      total: n(r.total),
      bad: n(r.bad),
    }));
  }

  async keys(since: number): Promise<{ service: string; release: string }[]> {
    const rows = await this.db
      .selectFrom('slo_counts')
      .select(['service', 'release'])
      .distinct()
      .where('at', '>=', since)
      .orderBy('service')
      .orderBy('release')
      .execute();
    return rows.map((r) => ({ service: r.service, release: r.release }));
  }

  async compact(c: SloCompaction): Promise<{ merged: number; deleted: number }> {
    return this.tx(async (db) => {
      const del = await db.deleteFrom('slo_counts').where('at', '<', c.deleteBefore).executeTakeFirst();
      let merged = 0;
      // Days first: a day that is old enough for a day row needs no hour rows on the way.
      const dayEnd = c.daysBefore - (c.daysBefore % DAY_MS);
      merged += await this.rollup(db, c.deleteBefore, dayEnd, DAY_MS);
      const hourEnd = c.hoursBefore - (c.hoursBefore % HOUR_MS);
      merged += await this.rollup(db, Math.max(c.deleteBefore, dayEnd), hourEnd, HOUR_MS);
      return { merged, deleted: Number(del.numDeletedRows) };
    });
  }

  /**
   * Merges the rows starting in [from, to) into one row per `bucketMs` (at the bucket's start). Only
   * buckets that still hold a row off the bucket's start are touched, so a run over 90 days of rollups
   * that are already done reads nothing but the index.
   */
  private async rollup(db: Kysely<Tables>, from: number, to: number, bucketMs: number): Promise<number> {
    if (to <= from) return 0;
    const rows = await db
      .selectFrom('slo_counts')
      .selectAll()
      .where('at', '>=', from - (from % bucketMs))
      .where('at', '<', to)
      .where((eb) => eb(eb('at', '%', bucketMs), '<>', 0))
      .execute();
    const groups = new Map<string, SloCountRow>();
    let merged = 0;
    for (const r of rows) {
      const at = n(r.at);
      const start = at - (at % bucketMs);
      const k = `${r.service}\u0000${r.release}\u0000${start}`;
      const g = groups.get(k);
      if (g) {
        g.total += n(r.total);
        g.bad += n(r.bad);
      } else
        groups.set(k, {
          service: r.service,
          release: r.release,
          at: start,
          total: n(r.total),
          bad: n(r.bad),
        });
      merged++;
    }
    for (const g of groups.values()) {
      await db
        .deleteFrom('slo_counts')
        .where('service', '=', g.service)
        .where('release', '=', g.release)
        .where('at', '>', g.at)
        .where('at', '<', g.at + bucketMs)
        .execute();
      await db
        .insertInto('slo_counts')
        .values(g)
        .onConflict((oc) =>
          oc.columns(['service', 'release', 'at']).doUpdateSet((eb) => ({
            total: eb('slo_counts.total', '+', g.total),
            bad: eb('slo_counts.bad', '+', g.bad),
          })),
        )
        .execute();
    }
    // Every row off its bucket's start was folded into the row at the start.
    return merged;
  }
}
