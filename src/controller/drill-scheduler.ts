import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance, RawServerDefault } from 'fastify';
import type { Kysely, Migration } from 'kysely';
import type { Logger } from 'pino';
import { z } from 'zod';
import { parseInput as parse } from '../core/config.js';
import {
  DRILL_SCHEDULE_NAME,
  type DrillSchedule,
  drillScheduleSchema,
  nextDue,
  pickDue,
  type ScheduleState,
} from '../core/drill-schedule.js';
import { isErrorCode, NinesError } from '../core/errors.js';
import { type DrillApi, type DrillReport, runDrill } from '../drill/drill.js';
import type { Leadership } from './leadership.js';
import type { DrillRecord, Store } from './store/types.js';

/**
 * Scheduled drills (issue 8): schedules kept in the store (`drills:` in nines.yaml through `nines apply`,
 * or `PUT /v1/drill-schedules/:name`), run by the leader only — one at a time, never while the service
 * has a deploy in flight — through the same code and API as `nines drill`, results stored like manual
 * ones (created by `schedule NAME`).
 */

export const drillSchedulesMigration: Migration = {
  // biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .createTable('drill_schedules')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('spec', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .addColumn('last_run_at', 'bigint')
      .addColumn('last_drill_id', 'text')
      .execute();
  },
  // biome-ignore lint/suspicious/noExplicitAny: see up()
  async down(db: Kysely<any>): Promise<void> {
    await db.schema.dropTable('drill_schedules').execute();
  },
};

export interface StoredSchedule extends ScheduleState {
  updatedAt: number;
  lastDrillId: string | null;
}

interface Row {
  name: string;
  spec: string;
  created_at: number | string;
  updated_at: number | string;
  last_run_at: number | string | null;
  last_drill_id: string | null;
}

export class DrillScheduleStore {
  // biome-ignore lint/suspicious/noExplicitAny: the table is this module's own (migration above)
  constructor(private readonly db: Kysely<any>) {}

  private static of(r: Row): StoredSchedule {
    return {
      name: r.name,
      spec: drillScheduleSchema.parse(JSON.parse(r.spec)),
      createdAt: Number(r.created_at),
      updatedAt: Number(r.updated_at),
      lastRunAt: r.last_run_at === null ? null : Number(r.last_run_at),
      lastDrillId: r.last_drill_id,
    };
  }

  async list(): Promise<StoredSchedule[]> {
    const rows = (await this.db.selectFrom('drill_schedules').selectAll().orderBy('name').execute()) as Row[];
    return rows.map(DrillScheduleStore.of);
  }

  async get(name: string): Promise<StoredSchedule | undefined> {
    const r = (await this.db
      .selectFrom('drill_schedules')
      .selectAll()
      .where('name', '=', name)
      .executeTakeFirst()) as Row | undefined;
    return r ? DrillScheduleStore.of(r) : undefined;
  }

  /** Creates or replaces; a changed schedule keeps its last run (an interval counts from it). */
  async put(name: string, spec: DrillSchedule, now: number): Promise<boolean> {
    const json = JSON.stringify(spec);
    const res = await this.db
      .updateTable('drill_schedules')
      .set({ spec: json, updated_at: now })
      .where('name', '=', name)
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) > 0) return false;
    await this.db
      .insertInto('drill_schedules')
      .values({ name, spec: json, created_at: now, updated_at: now, last_run_at: null, last_drill_id: null })
      .execute();
    return true;
  }

  async remove(name: string): Promise<boolean> {
    const r = await this.db.deleteFrom('drill_schedules').where('name', '=', name).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  async markRun(name: string, at: number, drillId: string | null): Promise<void> {
    await this.db
      .updateTable('drill_schedules')
      .set({ last_run_at: at, ...(drillId !== null ? { last_drill_id: drillId } : {}) })
      .where('name', '=', name)
      .execute();
  }
}

const view = (s: StoredSchedule) => ({ ...s, nextDueAt: s.spec.enabled ? (nextDue(s) ?? null) : null });

/** `GET /v1/drill-schedules`, `PUT|DELETE /v1/drill-schedules/:name` (writes are admin-only, as all). */
export function registerDrillScheduleRoutes(
  app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, Logger>,
  deps: { schedules: DrillScheduleStore; store: Store; now?: () => number },
): void {
  const now = deps.now ?? Date.now;
  const nameParam = z.object({
    name: z.string().regex(DRILL_SCHEDULE_NAME, 'lowercase a-z, 0-9 and -, starting with a letter, up to 63'),
  });
  app.get('/v1/drill-schedules', async () => ({ schedules: (await deps.schedules.list()).map(view) }));
  app.put('/v1/drill-schedules/:name', async (req, reply) => {
    const { name } = parse(nameParam, req.params, 'path');
    const spec = parse(drillScheduleSchema, req.body, 'drill schedule');
    if (!(await deps.store.getService(spec.service))) {
      throw new NinesError('NINES_E_SERVICE_NOT_FOUND', `no service named "${spec.service}"`);
    }
    const created = await deps.schedules.put(name, spec, now());
    const s = await deps.schedules.get(name);
    return reply.status(created ? 201 : 200).send({ schedule: s ? view(s) : null, created });
  });
  app.delete('/v1/drill-schedules/:name', async (req, reply) => {
    const { name } = parse(nameParam, req.params, 'path');
    if (!(await deps.schedules.remove(name))) {
      throw new NinesError('NINES_E_DRILL_NOT_FOUND', `no drill schedule named "${name}"`);
    }
    return reply.status(204).send();
  });
}

/** The controller's own API as a drill needs it, in process (`app.inject`), with a token it holds. */
export function injectedApi(
  app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, Logger>,
  token: string,
): DrillApi {
  const call = async <T>(method: 'GET' | 'POST', url: string, body?: unknown): Promise<T> => {
    const res = await app.inject({
      method,
      url,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
    });
    let json: unknown;
    try {
      json = res.body === '' ? undefined : JSON.parse(res.body);
    } catch {}
    if (res.statusCode >= 400) {
      const e = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
      throw new NinesError(isErrorCode(e?.code) ? e.code : 'NINES_E_INTERNAL', e?.message ?? res.body);
    }
    return json as T;
  };
  return { get: (p) => call('GET', p), post: (p, b) => call('POST', p, b) };
}

export interface DrillSchedulerDeps {
  schedules: DrillScheduleStore;
  store: Store;
  leadership: Leadership;
  /** The API the drills talk to (undefined until the controller holds a token). */
  api: () => DrillApi | undefined;
  logger: Logger;
  tickMs?: number;
  now?: () => number;
  /** For tests: how a drill runs. */
  run?: typeof runDrill;
}

export class DrillScheduler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private active = false;
  private readonly now: () => number;

  constructor(private readonly d: DrillSchedulerDeps) {
    this.now = d.now ?? Date.now;
    d.leadership.onLeadership(
      () => this.start(),
      () => this.stop(),
    );
  }

  private start(): void {
    this.active = true;
    const loop = () => {
      if (!this.active) return;
      this.tick()
        .catch((err: unknown) => this.d.logger.error({ err }, 'drill schedule tick failed'))
        .finally(() => {
          if (this.active) this.timer = setTimeout(loop, this.d.tickMs ?? 10_000);
        });
    };
    this.timer = setTimeout(loop, this.d.tickMs ?? 10_000);
  }

  /** Stops starting drills; one in flight finishes and is stored (it is bounded by its own timeouts). */
  private stop(): void {
    this.active = false;
    clearTimeout(this.timer);
  }

  /**
   * One scheduling decision, on the leader only; starts at most one drill (not awaited). Returns its
   * schedule's name.
   */
  async tick(): Promise<string | undefined> {
    const api = this.d.api();
    if (!this.active || api === undefined || this.running !== undefined) return undefined;
    const schedules = await this.d.schedules.list();
    if (schedules.length === 0) return undefined;
    const deploying = new Set(
      (await this.d.store.listServices()).filter((s) => s.lockedBy !== null).map((s) => s.name),
    );
    const due = pickDue(schedules, this.now(), { running: false, deploying });
    const s = due && schedules.find((x) => x.name === due.name);
    if (!s) return undefined;
    // Marked before it runs: a drill that crashes the controller is not retried in a loop.
    await this.d.schedules.markRun(s.name, this.now(), null);
    this.running = this.runOne(api, s).finally(() => {
      this.running = undefined;
    });
    return s.name;
  }

  /** Waits for the drill in flight, if any (tests, shutdown). */
  async idle(): Promise<void> {
    await this.running;
  }

  private async runOne(api: DrillApi, s: StoredSchedule): Promise<void> {
    const spec = s.spec;
    const startedAt = this.now();
    this.d.logger.info(
      { schedule: s.name, scenario: spec.scenario, service: spec.service },
      'scheduled drill',
    );
    let outcome: DrillRecord['outcome'];
    let result: Record<string, unknown>;
    try {
      const report: DrillReport = await (this.d.run ?? runDrill)(api, {
        scenario: spec.scenario,
        service: spec.service,
        proxyUrl: spec.proxy,
        rate: spec.rate,
        connections: spec.connections,
        beforeMs: spec.before,
        afterMs: spec.after,
        recoverTimeoutMs: spec.recoverTimeout,
        maxFailed: spec.maxFailed,
        ...(spec.maxP99 !== undefined ? { maxP99Ms: spec.maxP99 } : {}),
        ...(spec.outage !== undefined ? { outageMs: spec.outage } : {}),
        ...(spec.version !== undefined ? { version: spec.version } : {}),
        ...(spec.host !== undefined ? { host: spec.host } : {}),
        ...(spec.zone !== undefined ? { zone: spec.zone } : {}),
        ...(spec.dependency !== undefined ? { dependency: spec.dependency } : {}),
      });
      outcome = report.passed ? 'passed' : 'failed';
      result = { ...report, schedule: s.name };
    } catch (err) {
      const e = err as { code?: string; message?: string };
      outcome = 'error';
      result = {
        scenario: spec.scenario,
        service: spec.service,
        schedule: s.name,
        error: { code: e.code ?? 'NINES_E_INTERNAL', message: e.message ?? String(err) },
      };
      this.d.logger.warn({ err, schedule: s.name }, 'scheduled drill did not run');
    }
    const rec: DrillRecord = {
      id: `dr-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`,
      service: spec.service,
      scenario: spec.scenario,
      outcome,
      createdBy: `schedule ${s.name}`,
      startedAt,
      finishedAt: this.now(),
      result,
    };
    if (!(await this.d.store.getService(spec.service))) return;
    await this.d.store.transaction(async (tx) => {
      await tx.insertDrill(rec);
      await tx.appendEvent({
        at: rec.finishedAt,
        kind: 'drill.finished',
        subject: rec.service,
        message: `scheduled drill ${s.name} (${rec.scenario} of ${rec.service}): ${rec.outcome}`,
        data: { drill: rec.id, schedule: s.name },
      });
    });
    await this.d.schedules.markRun(s.name, startedAt, rec.id);
  }
}
