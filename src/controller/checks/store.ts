import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { CheckConfig, CheckState } from '../../core/checks.js';

/**
 * Persistence of checks and uptime (migration 0005_checks), kept apart from the main Store interface:
 * the declared checks, the current state per subject (`<check>` or `service:<name>`), every state
 * transition, and per-minute rollups of raw results.
 */

export interface CheckRecord {
  name: string;
  spec: CheckConfig;
  createdAt: number;
  updatedAt: number;
}

export interface SubjectState {
  subject: string;
  state: CheckState;
  since: number;
  message: string;
  failing: number;
  locations: number;
  updatedAt: number;
}

export interface TransitionRecord {
  id: string;
  subject: string;
  at: number;
  from: CheckState;
  to: CheckState;
  cause: string;
}

export interface MinuteRollup {
  subject: string;
  /** Start of the minute (epoch ms, a multiple of 60,000). */
  minute: number;
  ok: number;
  failed: number;
  latencySumMs: number;
  latencyMaxMs: number;
}

export interface CheckStore {
  upsertCheck(name: string, spec: CheckConfig): Promise<{ record: CheckRecord; created: boolean }>;
  deleteCheck(name: string): Promise<boolean>;
  listChecks(): Promise<CheckRecord[]>;
  getCheck(name: string): Promise<CheckRecord | undefined>;
  listStates(): Promise<SubjectState[]>;
  /** Saves the state; when it differs from the stored one, records the transition too (one transaction). */
  saveState(next: SubjectState, cause: string): Promise<TransitionRecord | undefined>;
  listTransitions(q: { subject?: string; since?: number; limit?: number }): Promise<TransitionRecord[]>;
  /** The last transition of `subject` at or before `at` (the state at the start of a report window). */
  stateAt(subject: string, at: number): Promise<TransitionRecord | undefined>;
  addMinutes(rows: MinuteRollup[]): Promise<void>;
  listMinutes(subject: string, since: number): Promise<MinuteRollup[]>;
  /**
   * Merges the rollups in [from, to) into one bucket per `bucketMs` (an hour, a day) starting at the
   * bucket's start; a bucket that is already one row is left alone. Returns the rows removed.
   */
  compact(from: number, to: number, bucketMs: number): Promise<number>;
  /** Deletes rollups older than `minuteBefore` and transitions older than `transitionBefore`. */
  prune(minuteBefore: number, transitionBefore: number): Promise<{ minutes: number; transitions: number }>;
}

interface Tables {
  checks: { name: string; spec: string; created_at: number; updated_at: number };
  check_states: {
    subject: string;
    state: string;
    since: number;
    message: string;
    failing: number;
    locations: number;
    updated_at: number;
  };
  check_transitions: {
    id: string;
    subject: string;
    at: number;
    from_state: string;
    to_state: string;
    cause: string;
  };
  check_minutes: {
    subject: string;
    minute: number;
    ok: number;
    failed: number;
    latency_sum_ms: number;
    latency_max_ms: number;
  };
}

const n = (v: unknown): number => (typeof v === 'number' ? v : Number(v));

export class KyselyCheckStore implements CheckStore {
  private readonly db: Kysely<Tables>;

  // biome-ignore lint/suspicious/noExplicitAny: the main store's Kysely, typed for these tables here
  constructor(db: Kysely<any>) {
    this.db = db as Kysely<Tables>;
  }

  private tx<T>(fn: (db: Kysely<Tables>) => Promise<T>): Promise<T> {
    return this.db.isTransaction ? fn(this.db) : this.db.transaction().execute(fn);
  }

  async upsertCheck(name: string, spec: CheckConfig): Promise<{ record: CheckRecord; created: boolean }> {
    const now = Date.now();
    return this.tx(async (db) => {
      const existing = await db.selectFrom('checks').selectAll().where('name', '=', name).executeTakeFirst();
      if (existing) {
        await db
          .updateTable('checks')
          .set({ spec: JSON.stringify(spec), updated_at: now })
          .where('name', '=', name)
          .execute();
        return { record: { name, spec, createdAt: n(existing.created_at), updatedAt: now }, created: false };
      }
      await db
        .insertInto('checks')
        .values({ name, spec: JSON.stringify(spec), created_at: now, updated_at: now })
        .execute();
      return { record: { name, spec, createdAt: now, updatedAt: now }, created: true };
    });
  }

  async deleteCheck(name: string): Promise<boolean> {
    return this.tx(async (db) => {
      const r = await db.deleteFrom('checks').where('name', '=', name).executeTakeFirst();
      await db.deleteFrom('check_states').where('subject', '=', name).execute();
      return Number(r.numDeletedRows) > 0;
    });
  }

  async listChecks(): Promise<CheckRecord[]> {
    const rows = await this.db.selectFrom('checks').selectAll().orderBy('name').execute();
    return rows.map(checkRow);
  }

  async getCheck(name: string): Promise<CheckRecord | undefined> {
    const row = await this.db.selectFrom('checks').selectAll().where('name', '=', name).executeTakeFirst();
    return row ? checkRow(row) : undefined;
  }

  async listStates(): Promise<SubjectState[]> {
    const rows = await this.db.selectFrom('check_states').selectAll().orderBy('subject').execute();
    return rows.map(stateRow);
  }

  async saveState(next: SubjectState, cause: string): Promise<TransitionRecord | undefined> {
    return this.tx(async (db) => {
      const cur = await db
        .selectFrom('check_states')
        .selectAll()
        .where('subject', '=', next.subject)
        .executeTakeFirst();
      const row = {
        subject: next.subject,
        state: next.state,
        since: next.since,
        message: next.message.slice(0, 1000),
        failing: next.failing,
        locations: next.locations,
        updated_at: next.updatedAt,
      };
      if (cur) await db.updateTable('check_states').set(row).where('subject', '=', next.subject).execute();
      else await db.insertInto('check_states').values(row).execute();
      const from = (cur?.state ?? 'unknown') as CheckState;
      if (from === next.state) return undefined;
      const t: TransitionRecord = {
        id: `ct-${randomBytes(8).toString('hex')}`,
        subject: next.subject,
        at: next.since,
        from,
        to: next.state,
        cause: cause.slice(0, 1000),
      };
      await db
        .insertInto('check_transitions')
        .values({
          id: t.id,
          subject: t.subject,
          at: t.at,
          from_state: t.from,
          to_state: t.to,
          cause: t.cause,
        })
        .execute();
      return t;
    });
  }

  async listTransitions(q: {
    subject?: string;
    since?: number;
    limit?: number;
  }): Promise<TransitionRecord[]> {
    let sel = this.db.selectFrom('check_transitions').selectAll();
    if (q.subject !== undefined) sel = sel.where('subject', '=', q.subject);
    if (q.since !== undefined) sel = sel.where('at', '>=', q.since);
    const rows = await sel
      .orderBy('at', 'asc')
      .orderBy('id', 'asc')
      .limit(q.limit ?? 10_000)
      .execute();
    return rows.map(transitionRow);
  }

  async stateAt(subject: string, at: number): Promise<TransitionRecord | undefined> {
    const row = await this.db
      .selectFrom('check_transitions')
      .selectAll()
      .where('subject', '=', subject)
      .where('at', '<=', at)
      .orderBy('at', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row ? transitionRow(row) : undefined;
  }

  async addMinutes(rows: MinuteRollup[]): Promise<void> {
    if (rows.length === 0) return;
    await this.tx(async (db) => {
      for (const r of rows) {
        await db
          .insertInto('check_minutes')
          .values({
            subject: r.subject,
            minute: r.minute,
            ok: r.ok,
            failed: r.failed,
            latency_sum_ms: r.latencySumMs,
            latency_max_ms: r.latencyMaxMs,
          })
          .onConflict((oc) =>
            oc.columns(['subject', 'minute']).doUpdateSet((eb) => ({
              ok: eb('check_minutes.ok', '+', r.ok),
              failed: eb('check_minutes.failed', '+', r.failed),
              latency_sum_ms: eb('check_minutes.latency_sum_ms', '+', r.latencySumMs),
              // CASE, not max(a, b): PostgreSQL's max is an aggregate only.
              latency_max_ms: eb
                .case()
                .when('check_minutes.latency_max_ms', '<', r.latencyMaxMs)
                .then(r.latencyMaxMs)
                .else(eb.ref('check_minutes.latency_max_ms'))
                .end(),
            })),
          )
          .execute();
      }
    });
  }

  async listMinutes(subject: string, since: number): Promise<MinuteRollup[]> {
    const rows = await this.db
      .selectFrom('check_minutes')
      .selectAll()
      .where('subject', '=', subject)
      .where('minute', '>=', since)
      .orderBy('minute')
      .execute();
    return rows.map((r) => ({
      subject: r.subject,
      minute: n(r.minute),
      ok: n(r.ok),
      failed: n(r.failed),
      latencySumMs: n(r.latency_sum_ms),
      latencyMaxMs: n(r.latency_max_ms),
    }));
  }

  async compact(from: number, to: number, bucketMs: number): Promise<number> {
    return this.tx(async (db) => {
      const rows = await db
        .selectFrom('check_minutes')
        .selectAll()
        .where('minute', '>=', from - (from % bucketMs))
        .where('minute', '<', to - (to % bucketMs))
        .execute();
      const groups = new Map<string, MinuteRollup[]>();
      for (const r of rows) {
        const minute = n(r.minute);
        const bucket = minute - (minute % bucketMs);
        const key = `${r.subject}\u0000${bucket}`;
        const g = groups.get(key) ?? [];
        g.push({
          subject: r.subject,
          minute,
          ok: n(r.ok),
          failed: n(r.failed),
          latencySumMs: n(r.latency_sum_ms),
          latencyMaxMs: n(r.latency_max_ms),
        });
        groups.set(key, g);
      }
      let removed = 0;
      for (const g of groups.values()) {
        const first = g[0];
        if (!first || (g.length === 1 && first.minute % bucketMs === 0)) continue;
        const bucket = first.minute - (first.minute % bucketMs);
        await db
          .deleteFrom('check_minutes')
          .where('subject', '=', first.subject)
          .where('minute', '>=', bucket)
          .where('minute', '<', bucket + bucketMs)
          .execute();
        await db
          .insertInto('check_minutes')
          .values({
            subject: first.subject,
            minute: bucket,
            ok: g.reduce((a, x) => a + x.ok, 0),
            failed: g.reduce((a, x) => a + x.failed, 0),
            latency_sum_ms: g.reduce((a, x) => a + x.latencySumMs, 0),
            latency_max_ms: Math.max(...g.map((x) => x.latencyMaxMs)),
          })
          .execute();
        removed += g.length - 1;
      }
      return removed;
    });
  }

  async prune(
    minuteBefore: number,
    transitionBefore: number,
  ): Promise<{ minutes: number; transitions: number }> {
    const m = await this.db.deleteFrom('check_minutes').where('minute', '<', minuteBefore).executeTakeFirst();
    const t = await this.db
      .deleteFrom('check_transitions')
      .where('at', '<', transitionBefore)
      .executeTakeFirst();
    return { minutes: Number(m.numDeletedRows), transitions: Number(t.numDeletedRows) };
  }
}

function checkRow(r: Tables['checks']): CheckRecord {
  return {
    name: r.name,
    spec: JSON.parse(r.spec) as CheckConfig,
    createdAt: n(r.created_at),
    updatedAt: n(r.updated_at),
  };
}

function stateRow(r: Tables['check_states']): SubjectState {
  return {
    subject: r.subject,
    state: r.state as CheckState,
    since: n(r.since),
    message: r.message,
    failing: n(r.failing),
    locations: n(r.locations),
    updatedAt: n(r.updated_at),
  };
}

function transitionRow(r: Tables['check_transitions']): TransitionRecord {
  return {
    id: r.id,
    subject: r.subject,
    at: n(r.at),
    from: r.from_state as CheckState,
    to: r.to_state as CheckState,
    cause: r.cause,
  };
}
