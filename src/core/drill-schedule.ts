import { z } from 'zod';
import { span } from './alerting-config.js';
import { duration } from './duration.js';

/**
 * Scheduled drills (`drills:` in nines.yaml, `PUT /v1/drill-schedules/:name`): a drill run by the
 * leading controller on an interval (`every: 24h`) or a cron schedule (`cron: "0 3 * * 1-5"`, UTC).
 * This file holds the schema and the pure scheduling decision; src/controller/drill-scheduler.ts runs it.
 */

export const DRILL_SCHEDULE_NAME = /^[a-z][a-z0-9-]{0,62}$/;
const SCHEDULED_SCENARIOS = [
  'instance-kill',
  'host-loss',
  'zone-outage',
  'deploy',
  'controller-loss',
  'dependency-down',
] as const;

const FIELDS = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12 },
  { name: 'day of week', min: 0, max: 7 },
] as const;

export interface Cron {
  minute: Set<number>;
  hour: Set<number>;
  dom: Set<number>;
  month: Set<number>;
  dow: Set<number>;
  /** Day of month / of week restricted (not `*`): with both, either matches (as in cron). */
  domAny: boolean;
  dowAny: boolean;
}

/** Five fields (minute hour day-of-month month day-of-week), each `*`, `n`, `a-b`, `*\/s`, `a-b/s`, lists. */
export function parseCron(expr: string): Cron {
  const parts = expr.trim().split(/\s+/);
  if (parts.length !== 5)
    throw new Error(`"${expr}": a cron schedule has 5 fields (minute hour dom month dow)`);
  const sets = parts.map((p, i) => {
    const f = FIELDS[i] as (typeof FIELDS)[number];
    const out = new Set<number>();
    for (const item of p.split(',')) {
      const m = /^(\*|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/.exec(item);
      if (!m) throw new Error(`"${item}" is not a valid ${f.name} field`);
      const lo = m[1] === '*' ? f.min : Number(m[2]);
      const hi = m[1] === '*' ? f.max : m[3] !== undefined ? Number(m[3]) : m[4] !== undefined ? f.max : lo;
      const step = m[4] !== undefined ? Number(m[4]) : 1;
      if (lo < f.min || hi > f.max || lo > hi || step < 1) {
        throw new Error(`"${item}": ${f.name} is from ${f.min} to ${f.max}`);
      }
      for (let v = lo; v <= hi; v += step) out.add(i === 4 && v === 7 ? 0 : v);
    }
    return out;
  });
  const [minute, hour, dom, month, dow] = sets as [
    Set<number>,
    Set<number>,
    Set<number>,
    Set<number>,
    Set<number>,
  ];
  return { minute, hour, dom, month, dow, domAny: parts[2] === '*', dowAny: parts[4] === '*' };
}

const MIN = 60_000;

/** The first whole minute strictly after `after` (epoch ms) that the schedule names, UTC; within ~4 years. */
export function nextCron(c: Cron, after: number): number | undefined {
  let t = Math.floor(after / MIN) * MIN + MIN;
  const end = after + 4 * 366 * 24 * 60 * MIN;
  while (t <= end) {
    const d = new Date(t);
    const dayOk = (() => {
      const dm = c.dom.has(d.getUTCDate());
      const dw = c.dow.has(d.getUTCDay());
      if (c.domAny && c.dowAny) return true;
      if (c.domAny) return dw;
      if (c.dowAny) return dm;
      return dm || dw;
    })();
    if (!c.month.has(d.getUTCMonth() + 1) || !dayOk) {
      t = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1);
      continue;
    }
    if (!c.hour.has(d.getUTCHours())) {
      t = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), d.getUTCHours() + 1);
      continue;
    }
    if (c.minute.has(d.getUTCMinutes())) return t;
    t += MIN;
  }
  return undefined;
}

export const drillScheduleSchema = z
  .strictObject({
    scenario: z.enum(SCHEDULED_SCENARIOS),
    service: z.string().min(1).max(200),
    /** Run every this long (at least 1 minute; `30m`, `6h`, `7d`)… */
    every: span.refine((v) => v >= 60_000, 'every: at least 1m').optional(),
    /** …or on this cron schedule (UTC). */
    cron: z
      .string()
      .refine((v) => {
        try {
          parseCron(v);
          return true;
        } catch {
          return false;
        }
      }, 'not a cron schedule: 5 fields, minute hour day-of-month month day-of-week (UTC)')
      .optional(),
    /** The nines proxy the load goes through (base URL); the drill adds the service's route. */
    proxy: z.url({ protocol: /^https?$/ }),
    rate: z.number().int().min(1).max(2000).default(20),
    connections: z.number().int().min(1).max(256).default(4),
    before: duration.default(3000),
    after: duration.default(3000),
    recoverTimeout: duration.default(60_000),
    maxFailed: z.number().int().min(0).default(0),
    maxP99: duration.optional(),
    outage: duration.optional(),
    version: z.string().min(1).optional(),
    host: z.string().min(1).optional(),
    zone: z.string().min(1).optional(),
    dependency: z.string().min(1).optional(),
    /** Paused schedules are kept but not run. */
    enabled: z.boolean().default(true),
  })
  .superRefine((s, ctx) => {
    if ((s.every === undefined) === (s.cron === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['every'], message: 'give exactly one of every or cron' });
    }
    if (s.scenario === 'dependency-down' && s.dependency === undefined) {
      ctx.addIssue({ code: 'custom', path: ['dependency'], message: 'dependency-down needs dependency' });
    }
  });
export type DrillSchedule = z.infer<typeof drillScheduleSchema>;

export const drillSchedulesSchema = z.record(z.string(), drillScheduleSchema).superRefine((m, ctx) => {
  for (const name of Object.keys(m)) {
    if (!DRILL_SCHEDULE_NAME.test(name)) {
      ctx.addIssue({
        code: 'custom',
        path: [name],
        message: `"${name}" is not a drill name: lowercase a-z, 0-9 and -, starting with a letter, up to 63`,
      });
    }
  }
});

export interface ScheduleState {
  name: string;
  spec: DrillSchedule;
  createdAt: number;
  /** When it last started (null: never). */
  lastRunAt: number | null;
}

/** When a schedule is next due: the interval after its last run (or its creation), or the next cron minute. */
export function nextDue(s: ScheduleState): number | undefined {
  const from = s.lastRunAt ?? s.createdAt;
  if (s.spec.every !== undefined) return from + s.spec.every;
  if (s.spec.cron !== undefined) return nextCron(parseCron(s.spec.cron), from);
  return undefined;
}

/**
 * Which scheduled drill to start now, if any — one at a time, never while a drill runs, never while the
 * service has a deploy in flight (it waits for the next tick), the longest overdue first. Runs missed
 * while no controller led collapse into one. Pure.
 */
export function pickDue(
  schedules: readonly ScheduleState[],
  now: number,
  busy: { running: boolean; deploying: ReadonlySet<string> },
): { name: string; dueAt: number } | undefined {
  if (busy.running) return undefined;
  let best: { name: string; dueAt: number } | undefined;
  for (const s of schedules) {
    if (!s.spec.enabled || busy.deploying.has(s.spec.service)) continue;
    const due = nextDue(s);
    if (due === undefined || due > now) continue;
    if (best === undefined || due < best.dueAt) best = { name: s.name, dueAt: due };
  }
  return best;
}
