import { randomBytes } from 'node:crypto';
import type { Kysely, Migration } from 'kysely';
import type { DeliveryResult } from './channels/types.js';
import type { Matcher, Silence } from './grouping.js';
import type { AlertRecord, AlertState } from './lifecycle.js';
import type { Labels, Millis, Severity } from './types.js';

/**
 * Durable alerting state (migration `0006_alerts`), over the same database as the main store:
 * the alerting config `nines up` sent, alerts (one row per dedup key), their history, silences, group
 * notification state, and the delivery log that makes each notification go out once even with several
 * controllers (docs/alerting.md, "Exactly one notification per transition").
 */
export const alertsMigration: Migration = {
  // biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .createTable('alerting_config')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('config', 'text', (c) => c.notNull())
      .addColumn('updated_by', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('alerts')
      .addColumn('dedup_key', 'text', (c) => c.primaryKey())
      .addColumn('rule_id', 'text', (c) => c.notNull())
      .addColumn('labels', 'text', (c) => c.notNull())
      .addColumn('severity', 'text', (c) => c.notNull())
      .addColumn('summary', 'text', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('active_since', 'bigint')
      .addColumn('fired_at', 'bigint')
      .addColumn('resolved_at', 'bigint')
      .addColumn('acked_at', 'bigint')
      .addColumn('acked_by', 'text')
      .addColumn('last_value', 'double precision')
      .addColumn('suppressed', 'text')
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('alerts_state_ix').on('alerts').column('state').execute();
    await db.schema
      .createTable('alert_events')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('dedup_key', 'text', (c) => c.notNull())
      .addColumn('at', 'bigint', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('by', 'text')
      .addColumn('data', 'text')
      .execute();
    await db.schema
      .createIndex('alert_events_key_ix')
      .on('alert_events')
      .columns(['dedup_key', 'at'])
      .execute();
    await db.schema
      .createTable('silences')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('matchers', 'text', (c) => c.notNull())
      .addColumn('starts_at', 'bigint', (c) => c.notNull())
      .addColumn('ends_at', 'bigint', (c) => c.notNull())
      .addColumn('created_by', 'text', (c) => c.notNull())
      .addColumn('comment', 'text')
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('alert_groups')
      .addColumn('key', 'text', (c) => c.primaryKey())
      .addColumn('first_seen_at', 'bigint', (c) => c.notNull())
      .addColumn('last_notified_at', 'bigint')
      .addColumn('last_content_hash', 'text')
      .execute();
    await db.schema
      .createTable('alert_deliveries')
      .addColumn('key', 'text', (c) => c.primaryKey())
      .addColumn('dedup_key', 'text', (c) => c.notNull())
      .addColumn('transition', 'text', (c) => c.notNull())
      .addColumn('channel', 'text', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('claimed_by', 'text', (c) => c.notNull())
      .addColumn('lease_until', 'bigint', (c) => c.notNull())
      .addColumn('attempts', 'integer', (c) => c.notNull())
      .addColumn('result', 'text')
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('alert_deliveries_alert_ix')
      .on('alert_deliveries')
      .columns(['dedup_key', 'created_at'])
      .execute();
    // Every attempt of every delivery (HTTP status / SMTP code, error, wait), for `nines alerts --json`.
    await db.schema
      .createTable('alert_delivery_attempts')
      .addColumn('delivery_key', 'text', (c) => c.notNull())
      .addColumn('delivery', 'integer', (c) => c.notNull())
      .addColumn('n', 'integer', (c) => c.notNull())
      .addColumn('started_at', 'bigint', (c) => c.notNull())
      .addColumn('duration_ms', 'double precision', (c) => c.notNull())
      .addColumn('status', 'integer')
      .addColumn('error', 'text')
      .addColumn('retry_in_ms', 'bigint')
      .addColumn('controller', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('alert_delivery_attempts_pk', ['delivery_key', 'delivery', 'n'])
      .execute();
  },
  // biome-ignore lint/suspicious/noExplicitAny: see up()
  async down(db: Kysely<any>): Promise<void> {
    for (const t of [
      'alert_delivery_attempts',
      'alert_deliveries',
      'alert_groups',
      'silences',
      'alert_events',
      'alerts',
      'alerting_config',
    ])
      await db.schema.dropTable(t).execute();
  },
};

export interface AlertDatabase {
  alerting_config: { id: string; config: string; updated_by: string; updated_at: number };
  alerts: {
    dedup_key: string;
    rule_id: string;
    labels: string;
    severity: string;
    summary: string;
    state: string;
    active_since: number | null;
    fired_at: number | null;
    resolved_at: number | null;
    acked_at: number | null;
    acked_by: string | null;
    last_value: number | null;
    suppressed: string | null;
    updated_at: number;
  };
  alert_events: {
    id: string;
    dedup_key: string;
    at: number;
    type: string;
    by: string | null;
    data: string | null;
  };
  silences: {
    id: string;
    matchers: string;
    starts_at: number;
    ends_at: number;
    created_by: string;
    comment: string | null;
    created_at: number;
  };
  alert_groups: {
    key: string;
    first_seen_at: number;
    last_notified_at: number | null;
    last_content_hash: string | null;
  };
  alert_deliveries: {
    key: string;
    dedup_key: string;
    transition: string;
    channel: string;
    state: string;
    claimed_by: string;
    lease_until: number;
    attempts: number;
    result: string | null;
    created_at: number;
    updated_at: number;
  };
  alert_delivery_attempts: {
    delivery_key: string;
    delivery: number;
    n: number;
    started_at: number;
    duration_ms: number;
    status: number | null;
    error: string | null;
    retry_in_ms: number | null;
    controller: string;
  };
}

/** One alert as stored and shown (`nines alerts`). */
export interface StoredAlert extends AlertRecord {
  dedupKey: string;
  ruleId: string;
  labels: Labels;
  severity: Severity;
  summary: string;
  /** Why its notifications are withheld now (`silence:ID`, `maintenance:ID`, `inhibited:KEY`), or null. */
  suppressed: string | null;
  updatedAt: Millis;
}

export interface DeliveryRecord {
  key: string;
  dedupKey: string;
  transition: string;
  channel: string;
  state: 'claimed' | 'sent' | 'failed' | 'dropped';
  claimedBy: string;
  attempts: number;
  result: DeliveryResult | null;
  createdAt: Millis;
  updatedAt: Millis;
}

const num = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : Number(v));

function toAlert(r: AlertDatabase['alerts']): StoredAlert {
  const a: StoredAlert = {
    dedupKey: r.dedup_key,
    ruleId: r.rule_id,
    labels: JSON.parse(r.labels) as Labels,
    severity: r.severity as Severity,
    summary: r.summary,
    state: r.state as AlertState,
    acknowledged: r.acked_at !== null,
    suppressed: r.suppressed,
    updatedAt: Number(r.updated_at),
  };
  const set = <K extends keyof StoredAlert>(k: K, v: StoredAlert[K] | undefined) => {
    if (v !== undefined) a[k] = v;
  };
  set('activeSince', num(r.active_since));
  set('firedAt', num(r.fired_at));
  set('resolvedAt', num(r.resolved_at));
  set('acknowledgedAt', num(r.acked_at));
  set('acknowledgedBy', r.acked_by ?? undefined);
  set('lastValue', num(r.last_value));
  return a;
}

/** The alerting tables. Single statements only where atomicity matters (claims), so it works on both databases. */
export class AlertStore {
  private readonly db: Kysely<AlertDatabase>;
  private eventSeq = 0;

  // biome-ignore lint/suspicious/noExplicitAny: the main store's Kysely, whose schema type does not list these tables
  constructor(db: Kysely<any>) {
    this.db = db as unknown as Kysely<AlertDatabase>;
  }

  // ─── config ───────────────────────────────────────────────────────────────────────────────────────

  async putConfig(config: unknown, by: string, now: Millis): Promise<void> {
    const row = { id: 'current', config: JSON.stringify(config), updated_by: by, updated_at: now };
    await this.db
      .insertInto('alerting_config')
      .values(row)
      .onConflict((oc) =>
        oc.column('id').doUpdateSet({ config: row.config, updated_by: by, updated_at: now }),
      )
      .execute();
  }

  async getConfig(): Promise<{ config: unknown; updatedAt: Millis; updatedBy: string } | undefined> {
    const r = await this.db
      .selectFrom('alerting_config')
      .selectAll()
      .where('id', '=', 'current')
      .executeTakeFirst();
    return (
      r && {
        config: JSON.parse(r.config) as unknown,
        updatedAt: Number(r.updated_at),
        updatedBy: r.updated_by,
      }
    );
  }

  /**
   * The acknowledge-link key: created once (random 32 bytes), kept in the store so every controller
   * signs and verifies with the same one.
   */
  async ackSecret(now: Millis): Promise<string> {
    await this.db
      .insertInto('alerting_config')
      .values({
        id: 'ack-secret',
        config: JSON.stringify(randomBytes(32).toString('base64url')),
        updated_by: 'nines',
        updated_at: now,
      })
      .onConflict((oc) => oc.column('id').doNothing())
      .execute();
    const r = await this.db
      .selectFrom('alerting_config')
      .select('config')
      .where('id', '=', 'ack-secret')
      .executeTakeFirstOrThrow();
    return JSON.parse(r.config) as string;
  }

  // ─── alerts ───────────────────────────────────────────────────────────────────────────────────────

  async listAlerts(filter: { states?: readonly AlertState[] } = {}): Promise<StoredAlert[]> {
    let q = this.db.selectFrom('alerts').selectAll();
    if (filter.states) q = q.where('state', 'in', [...filter.states]);
    return (await q.orderBy('updated_at', 'desc').execute()).map(toAlert);
  }

  async getAlert(dedupKey: string): Promise<StoredAlert | undefined> {
    const r = await this.db
      .selectFrom('alerts')
      .selectAll()
      .where('dedup_key', '=', dedupKey)
      .executeTakeFirst();
    return r && toAlert(r);
  }

  async putAlert(a: StoredAlert): Promise<void> {
    const row = {
      dedup_key: a.dedupKey,
      rule_id: a.ruleId,
      labels: JSON.stringify(a.labels),
      severity: a.severity,
      summary: a.summary,
      state: a.state,
      active_since: a.activeSince ?? null,
      fired_at: a.firedAt ?? null,
      resolved_at: a.resolvedAt ?? null,
      acked_at: a.acknowledged ? (a.acknowledgedAt ?? null) : null,
      acked_by: a.acknowledged ? (a.acknowledgedBy ?? null) : null,
      last_value: a.lastValue ?? null,
      suppressed: a.suppressed,
      updated_at: a.updatedAt,
    };
    const { dedup_key: _k, ...rest } = row;
    await this.db
      .insertInto('alerts')
      .values(row)
      .onConflict((oc) => oc.column('dedup_key').doUpdateSet(rest))
      .execute();
  }

  /**
   * Acknowledge a firing alert: one conditional UPDATE, so two people (or controllers) acking at once
   * record only the first. Returns false when it was not firing or already acknowledged.
   */
  async ackAlert(dedupKey: string, by: string, now: Millis): Promise<boolean> {
    const r = await this.db
      .updateTable('alerts')
      .set({ acked_at: now, acked_by: by, updated_at: now })
      .where('dedup_key', '=', dedupKey)
      .where('state', '=', 'firing')
      .where('acked_at', 'is', null)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async appendEvent(
    dedupKey: string,
    at: Millis,
    type: string,
    by: string | null,
    data?: unknown,
  ): Promise<void> {
    this.eventSeq = (this.eventSeq + 1) % 1e6;
    await this.db
      .insertInto('alert_events')
      .values({
        id: `${at.toString(36)}-${process.pid.toString(36)}-${this.eventSeq}-${Math.random().toString(36).slice(2, 8)}`,
        dedup_key: dedupKey,
        at,
        type,
        by,
        data: data === undefined ? null : JSON.stringify(data),
      })
      .execute();
  }

  async listEvents(
    dedupKey: string,
  ): Promise<{ at: Millis; type: string; by: string | null; data: unknown }[]> {
    const rows = await this.db
      .selectFrom('alert_events')
      .selectAll()
      .where('dedup_key', '=', dedupKey)
      .orderBy('at', 'asc')
      .execute();
    return rows.map((r) => ({
      at: Number(r.at),
      type: r.type,
      by: r.by,
      data: r.data ? JSON.parse(r.data) : null,
    }));
  }

  // ─── silences ─────────────────────────────────────────────────────────────────────────────────────

  async addSilence(s: Silence, now: Millis): Promise<void> {
    await this.db
      .insertInto('silences')
      .values({
        id: s.id,
        matchers: JSON.stringify(s.matchers),
        starts_at: s.startsAt,
        ends_at: s.endsAt,
        created_by: s.createdBy,
        comment: s.comment ?? null,
        created_at: now,
      })
      .onConflict((oc) =>
        // A deploy silence is re-put as the deploy goes (its instance list grows).
        oc.column('id').doUpdateSet({ matchers: JSON.stringify(s.matchers), ends_at: s.endsAt }),
      )
      .execute();
  }

  /** Silences not yet ended at `now` (future ones included). */
  async listSilences(now: Millis): Promise<Silence[]> {
    const rows = await this.db
      .selectFrom('silences')
      .selectAll()
      .where('ends_at', '>', now)
      .orderBy('starts_at')
      .execute();
    return rows.map((r) => ({
      id: r.id,
      matchers: JSON.parse(r.matchers) as Matcher[],
      startsAt: Number(r.starts_at),
      endsAt: Number(r.ends_at),
      createdBy: r.created_by,
      ...(r.comment === null ? {} : { comment: r.comment }),
    }));
  }

  /** Ends a silence now (kept for history). False when unknown or already ended. */
  async expireSilence(id: string, now: Millis): Promise<boolean> {
    const r = await this.db
      .updateTable('silences')
      .set({ ends_at: now })
      .where('id', '=', id)
      .where('ends_at', '>', now)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  // ─── groups ───────────────────────────────────────────────────────────────────────────────────────

  async getGroups(): Promise<
    Map<string, { firstSeenAt: Millis; lastNotifiedAt?: Millis; lastContentHash?: string }>
  > {
    const rows = await this.db.selectFrom('alert_groups').selectAll().execute();
    return new Map(
      rows.map((r) => [
        r.key,
        {
          firstSeenAt: Number(r.first_seen_at),
          ...(r.last_notified_at === null ? {} : { lastNotifiedAt: Number(r.last_notified_at) }),
          ...(r.last_content_hash === null ? {} : { lastContentHash: r.last_content_hash }),
        },
      ]),
    );
  }

  async putGroup(
    key: string,
    st: { firstSeenAt: Millis; lastNotifiedAt?: Millis; lastContentHash?: string },
  ): Promise<void> {
    const row = {
      key,
      first_seen_at: st.firstSeenAt,
      last_notified_at: st.lastNotifiedAt ?? null,
      last_content_hash: st.lastContentHash ?? null,
    };
    await this.db
      .insertInto('alert_groups')
      .values(row)
      .onConflict((oc) =>
        oc
          .column('key')
          .doUpdateSet({ last_notified_at: row.last_notified_at, last_content_hash: row.last_content_hash }),
      )
      .execute();
  }

  async deleteGroup(key: string): Promise<void> {
    await this.db.deleteFrom('alert_groups').where('key', '=', key).execute();
  }

  // ─── delivery log ─────────────────────────────────────────────────────────────────────────────────

  /**
   * Claim the right to send delivery `key`. Whoever's write succeeds sends: a new row (INSERT … ON
   * CONFLICT DO NOTHING), or taking over a row that is not `sent` whose lease ran out and that has
   * deliveries left. Returns the delivery number (1, 2 …) when claimed, undefined when someone else
   * holds or finished it.
   */
  async claimDelivery(
    d: { key: string; dedupKey: string; transition: string; channel: string },
    me: string,
    now: Millis,
    leaseMs: Millis,
    maxDeliveries: number,
  ): Promise<number | undefined> {
    const inserted = await this.db
      .insertInto('alert_deliveries')
      .values({
        key: d.key,
        dedup_key: d.dedupKey,
        transition: d.transition,
        channel: d.channel,
        state: 'claimed',
        claimed_by: me,
        lease_until: now + leaseMs,
        attempts: 1,
        result: null,
        created_at: now,
        updated_at: now,
      })
      .onConflict((oc) => oc.column('key').doNothing())
      .returning('attempts')
      .executeTakeFirst();
    if (inserted) return 1;
    const taken = await this.db
      .updateTable('alert_deliveries')
      .set((eb) => ({
        claimed_by: me,
        state: 'claimed',
        lease_until: now + leaseMs,
        attempts: eb('attempts', '+', 1),
        updated_at: now,
      }))
      .where('key', '=', d.key)
      .where('state', 'in', ['claimed', 'failed'])
      .where('lease_until', '<', now)
      .where('attempts', '<', maxDeliveries)
      .returning('attempts')
      .executeTakeFirst();
    return taken ? Number(taken.attempts) : undefined;
  }

  /**
   * Record the outcome and every attempt. A failed delivery keeps a short lease so the next tick (of any
   * controller) retries it after `retryAfterMs`.
   */
  async finishDelivery(
    key: string,
    delivery: number,
    me: string,
    result: DeliveryResult,
    now: Millis,
    retryAfterMs: Millis,
  ): Promise<void> {
    await this.db
      .updateTable('alert_deliveries')
      .set({
        state: result.ok ? 'sent' : 'failed',
        result: JSON.stringify(result),
        lease_until: result.ok ? now : now + retryAfterMs,
        updated_at: now,
      })
      .where('key', '=', key)
      .where('claimed_by', '=', me)
      .execute();
    if (result.attempts.length > 0)
      await this.db
        .insertInto('alert_delivery_attempts')
        .values(
          result.attempts.map((a) => ({
            delivery_key: key,
            delivery,
            n: a.n,
            started_at: a.startedAt,
            duration_ms: a.durationMs,
            status: a.status ?? null,
            error: a.error ?? null,
            retry_in_ms: a.retryInMs ?? null,
            controller: me,
          })),
        )
        .onConflict((oc) => oc.columns(['delivery_key', 'delivery', 'n']).doNothing())
        .execute();
  }

  /** Give up a delivery that no longer makes sense (its alert resolved before a retry could send it). */
  async dropDelivery(key: string, reason: string, now: Millis): Promise<void> {
    await this.db
      .updateTable('alert_deliveries')
      .set({
        state: 'dropped',
        result: JSON.stringify({ ok: false, error: reason, attempts: [] }),
        updated_at: now,
      })
      .where('key', '=', key)
      .where('state', 'in', ['claimed', 'failed'])
      .execute();
  }

  /** Deliveries that failed and may be retried now (lease over, deliveries left). */
  async retryableDeliveries(now: Millis, maxDeliveries: number): Promise<DeliveryRecord[]> {
    const rows = await this.db
      .selectFrom('alert_deliveries')
      .selectAll()
      .where('state', 'in', ['claimed', 'failed'])
      .where('lease_until', '<', now)
      .where('attempts', '<', maxDeliveries)
      .execute();
    return rows.map(toDelivery);
  }

  async listDeliveries(dedupKey?: string): Promise<DeliveryRecord[]> {
    let q = this.db.selectFrom('alert_deliveries').selectAll();
    if (dedupKey !== undefined) q = q.where('dedup_key', '=', dedupKey);
    return (await q.orderBy('created_at', 'asc').execute()).map(toDelivery);
  }

  async listAttempts(deliveryKey: string): Promise<AlertDatabase['alert_delivery_attempts'][]> {
    return this.db
      .selectFrom('alert_delivery_attempts')
      .selectAll()
      .where('delivery_key', '=', deliveryKey)
      .orderBy('delivery')
      .orderBy('n')
      .execute();
  }
}

function toDelivery(r: AlertDatabase['alert_deliveries']): DeliveryRecord {
  return {
    key: r.key,
    dedupKey: r.dedup_key,
    transition: r.transition,
    channel: r.channel,
    state: r.state as DeliveryRecord['state'],
    claimedBy: r.claimed_by,
    attempts: Number(r.attempts),
    result: r.result === null ? null : (JSON.parse(r.result) as DeliveryResult),
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
}
