import { z } from 'zod';

/**
 * The alerting part of `nines.yaml` (issue 6): `alerts:` (rules), per-service `slo:`, `channels:`,
 * `schedules:` (on-call rotations), `escalations:`, `maintenance:` and `alerting:` (grouping, default
 * routing, inhibition, contacts). docs/alerting.md describes every field. This module must not import
 * config.ts (config.ts imports it), so it has its own duration type, which also knows days.
 */

const SPAN_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;
const SPAN_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** A duration: milliseconds, or `500ms`, `30s`, `5m`, `4h`, `30d`. */
export const span = z
  .union([
    z.number().int().nonnegative(),
    z.string().meta({ pattern: '^\\s*\\d+(\\.\\d+)?(ms|s|m|h|d)\\s*$', examples: ['30s', '5m', '4h', '1d'] }),
  ])
  .transform((v, ctx) => {
    if (typeof v === 'number') return v;
    const m = SPAN_RE.exec(v.trim());
    if (!m) {
      ctx.addIssue({ code: 'custom', message: `"${v}" is not a duration (use e.g. 30s, 5m, 4h, 1d)` });
      return z.NEVER;
    }
    return Math.round(Number(m[1]) * SPAN_MS[m[2] as keyof typeof SPAN_MS]);
  });

const NAME = /^[a-zA-Z][a-zA-Z0-9_-]{0,62}$/;
const nameMsg = 'letters, digits, _ and -, starting with a letter, up to 63';
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const labels = z.record(z.string().regex(LABEL_NAME, 'label names are [a-zA-Z_][a-zA-Z0-9_]*'), z.string());

function named<T extends z.ZodType>(what: string, value: T) {
  return z.record(z.string(), value).superRefine((rec, ctx) => {
    for (const k of Object.keys(rec))
      if (!NAME.test(k))
        ctx.addIssue({ code: 'custom', path: [k], message: `"${k}" is not a ${what} name: ${nameMsg}` });
  });
}

const CONDITION_RE = /^\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)\s*$/;

/** `< 1`, `>= 0.05`, `== 0`: the comparison of the signal's value with a number. */
const comparator = z.enum(['>', '>=', '<', '<=', '==', '!=']);
const conditionObject = z.strictObject({ op: comparator, threshold: z.number() });
// A parsed condition is accepted too, so a parsed config (as `nines up` sends it) parses to itself.
export const condition = z
  .union([
    z.string().meta({ pattern: '^\\s*(>=|<=|==|!=|>|<)\\s*-?\\d', examples: ['< 1', '>= 0.05', '== 0'] }),
    conditionObject,
  ])
  .transform((v, ctx) => {
    if (typeof v !== 'string') return v;
    const m = CONDITION_RE.exec(v);
    if (!m) {
      ctx.addIssue({
        code: 'custom',
        message: `"${v}" is not a condition: use an operator (> >= < <= == !=) and a number, e.g. "< 1"`,
      });
      return z.NEVER;
    }
    return { op: m[1] as z.infer<typeof comparator>, threshold: Number(m[2]) };
  });

export const severitySchema = z.enum(['critical', 'error', 'warning', 'info']);

const channelRefs = z.array(z.string().min(1));

export const alertRuleSchema = z.strictObject({
  /** Signal name: instance_healthy, instance_failed, instance_restarts_10m, host_up, service_error_ratio_5m … */
  signal: z
    .string()
    .regex(/^[a-z_][a-z0-9_]*$/, 'signal names are lowercase snake_case, e.g. instance_healthy'),
  /** Label equality the series must match, e.g. `{ service: web }`. */
  where: labels.default({}),
  condition,
  for: span.default(0),
  severity: severitySchema.default('warning'),
  labels: labels.default({}),
  /** Summary line; `{{label}}` and `{{value}}` are filled in. */
  summary: z.string().min(1).max(1024).optional(),
  /** Channels notified on firing/resolved (default: alerting.notify). */
  notify: channelRefs.optional(),
  /** Escalation policy (default: alerting.escalation). */
  escalation: z.string().min(1).optional(),
});
export type AlertRuleConfig = z.infer<typeof alertRuleSchema>;

/** An availability objective: 0.999 or "99.9%". */
const objective = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const n =
    typeof v === 'number'
      ? v
      : /^\s*\d+(\.\d+)?\s*%\s*$/.test(v)
        ? Number((Number(v.trim().slice(0, -1).trim()) / 100).toPrecision(12))
        : Number.NaN;
  if (!(n > 0 && n < 1)) {
    ctx.addIssue({
      code: 'custom',
      message: `objective ${JSON.stringify(v)} must be between 0 and 1 exclusive (e.g. 0.999) or a percentage ("99.9%")`,
    });
    return z.NEVER;
  }
  return n;
});

/** Per-service SLO: availability over 30 days, with the SRE workbook's multi-window burn-rate alerts. */
export const sloSchema = z.strictObject({
  objective,
  /** Channels for page-level burns (14.4× 1 h / 5 min, 6× 6 h / 30 min); default alerting.notify. */
  page: channelRefs.optional(),
  /** Channels for ticket-level burns (1× 3 d / 6 h); default the page channels. */
  ticket: channelRefs.optional(),
  escalation: z.string().min(1).optional(),
});
export type SloConfig = z.infer<typeof sloSchema>;

const retry = z.strictObject({
  maxAttempts: z.number().int().min(1).max(20).default(5),
  baseDelay: span.default(500),
  maxDelay: span.default(30_000),
  maxRetryAfter: span.default(120_000),
});

const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' });

export const channelSchema = z.discriminatedUnion(
  'kind',
  [
    z.strictObject({
      kind: z.literal('webhook'),
      url: httpUrl,
      /** HMAC-SHA256 key: requests carry `x-nines-signature: t=…,v1=…`. */
      secret: z.string().min(16, 'a webhook secret needs at least 16 characters').optional(),
      timeout: span.default(10_000),
      retry: retry.optional(),
    }),
    z.strictObject({
      kind: z.literal('slack'),
      url: httpUrl,
      timeout: span.default(10_000),
      retry: retry.optional(),
    }),
    z.strictObject({
      kind: z.literal('pagerduty'),
      routingKey: z.string().min(1),
      url: httpUrl.optional(),
      timeout: span.default(10_000),
      retry: retry.optional(),
    }),
    z.strictObject({
      kind: z.literal('email'),
      host: z.string().min(1),
      port: z.number().int().min(1).max(65535).default(587),
      secure: z.boolean().default(false),
      requireTLS: z.boolean().default(false),
      auth: z.strictObject({ user: z.string(), pass: z.string() }).optional(),
      from: z.string().min(3),
      to: z.array(z.email()).min(1, 'an email channel needs at least one recipient'),
      timeout: span.default(10_000),
      retry: retry.optional(),
    }),
  ],
  { error: 'kind must be one of webhook, slack, pagerduty, email' },
);
export type ChannelConfig = z.infer<typeof channelSchema>;

const isoTime = z.iso.datetime({ offset: true, error: 'use an ISO 8601 time, e.g. 2026-01-05T09:00:00Z' });

export const scheduleSchema = z.strictObject({
  rotations: z
    .array(
      z.strictObject({
        users: z.array(z.string().min(1)).min(1, 'a rotation needs at least one user'),
        /** One handoff time; fixes the phase of the rotation. */
        handoff: isoTime,
        shift: span.default(7 * 86_400_000),
        until: isoTime.optional(),
      }),
    )
    .min(1, 'a schedule needs at least one rotation'),
  overrides: z.array(z.strictObject({ user: z.string().min(1), start: isoTime, end: isoTime })).default([]),
});
export type ScheduleConfig = z.infer<typeof scheduleSchema>;

const TARGET_RE = /^(channel|schedule|user):([a-zA-Z][a-zA-Z0-9_.@-]*)$/;
const target = z
  .union([
    z.string(),
    z.strictObject({ kind: z.enum(['channel', 'schedule', 'user']), id: z.string().min(1) }),
  ])
  .transform((v, ctx) => {
    if (typeof v !== 'string') return v;
    const m = TARGET_RE.exec(v);
    if (!m) {
      ctx.addIssue({
        code: 'custom',
        message: `"${v}" is not a target: use channel:NAME, schedule:NAME or user:NAME`,
      });
      return z.NEVER;
    }
    return { kind: m[1] as 'channel' | 'schedule' | 'user', id: m[2] as string };
  });

export const escalationSchema = z.strictObject({
  levels: z
    .array(
      z.strictObject({
        notify: z.array(target).min(1, 'a level needs at least one target'),
        /** Escalate to the next level after this long without acknowledgement. */
        after: span.default(15 * 60_000),
      }),
    )
    .min(1, 'an escalation policy needs at least one level'),
  /** Run through all levels again this many times after the last one. */
  repeat: z.number().int().min(0).max(100).default(0),
});
export type EscalationConfig = z.infer<typeof escalationSchema>;

const MATCHER_RE = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$/;
const matcher = z
  .string()
  .regex(MATCHER_RE, 'a matcher is name=value, name!=value, name=~regex or name!~regex');

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
export const maintenanceSchema = z
  .strictObject({
    matchers: z.array(matcher).min(1, 'a maintenance window needs at least one matcher (e.g. service=web)'),
    start: isoTime.optional(),
    end: isoTime.optional(),
    weekly: z
      .strictObject({
        days: z.array(z.enum(DAYS)).min(1),
        at: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'use HH:MM (UTC)'),
        duration: span,
      })
      .optional(),
  })
  .superRefine((w, ctx) => {
    const once = w.start !== undefined || w.end !== undefined;
    if (once === (w.weekly !== undefined))
      ctx.addIssue({ code: 'custom', message: 'give either start and end (one-off) or weekly (recurring)' });
    if (once && (w.start === undefined || w.end === undefined))
      ctx.addIssue({ code: 'custom', message: 'a one-off window needs both start and end' });
    if (w.start && w.end && Date.parse(w.end) <= Date.parse(w.start))
      ctx.addIssue({ code: 'custom', path: ['end'], message: 'end must be after start' });
  });
export type MaintenanceConfig = z.infer<typeof maintenanceSchema>;
export const WEEKDAYS = DAYS;

export const alertingSettingsSchema = z.strictObject({
  groupBy: z.array(z.string().regex(LABEL_NAME)).default(['alertname', 'service']),
  groupWait: span.default(30_000),
  groupInterval: span.default(5 * 60_000),
  repeatInterval: span.default(4 * 3_600_000),
  /** Default channels of every rule and SLO. */
  notify: channelRefs.default([]),
  /** Default escalation policy. */
  escalation: z.string().min(1).optional(),
  /** How each person is reached when an escalation targets them (directly or via a schedule). */
  users: z.record(z.string(), z.strictObject({ notify: channelRefs.min(1) })).default({}),
  /** Extra inhibition rules (a down host always inhibits its instances' alerts). */
  inhibit: z
    .array(
      z.strictObject({
        source: z.array(matcher).min(1),
        target: z.array(matcher).min(1),
        equal: z.array(z.string()).default([]),
      }),
    )
    .default([]),
  /** How long after a deploy ends the instances it started or stopped stay silenced. */
  deployGrace: span.default(60_000),
  /** Lifetime of the signed acknowledge links in notifications. */
  ackLinkTtl: span.default(24 * 3_600_000),
  /** The controller's address as the people paged reach it (for ack links); default its own URL. */
  publicUrl: httpUrl.optional(),
});
export type AlertingSettings = z.infer<typeof alertingSettingsSchema>;

export const alertsSchema = named('alert', alertRuleSchema);
export const channelsSchema = named('channel', channelSchema);
export const schedulesSchema = named('schedule', scheduleSchema);
export const escalationsSchema = named('escalation', escalationSchema);
export const maintenanceWindowsSchema = named('maintenance window', maintenanceSchema);

/** What the controller needs to alert: the alerting keys of nines.yaml plus each service's SLO. */
export const alertingConfigSchema = z.strictObject({
  alerts: alertsSchema.default({}),
  channels: channelsSchema.default({}),
  schedules: schedulesSchema.default({}),
  escalations: escalationsSchema.default({}),
  maintenance: maintenanceWindowsSchema.default({}),
  alerting: alertingSettingsSchema.default(alertingSettingsSchema.parse({})),
  slos: z.record(z.string(), sloSchema).default({}),
});
export type AlertingConfig = z.infer<typeof alertingConfigSchema>;
export type AlertingConfigInput = z.input<typeof alertingConfigSchema>;

interface IssueSink {
  addIssue(i: { code: 'custom'; path: PropertyKey[]; message: string }): void;
}

/** Cross-references: every channel, schedule, escalation policy and user named must exist. */
export function checkAlertingRefs(c: AlertingConfig, ctx: IssueSink, prefix: PropertyKey[] = []): void {
  const ch = (names: readonly string[] | undefined, path: PropertyKey[]) => {
    for (const [i, n] of (names ?? []).entries())
      if (!(n in c.channels))
        ctx.addIssue({
          code: 'custom',
          path: [...prefix, ...path, i],
          message: `no channel named "${n}" (channels: ${Object.keys(c.channels).join(', ') || 'none'})`,
        });
  };
  const esc = (name: string | undefined, path: PropertyKey[]) => {
    if (name !== undefined && !(name in c.escalations))
      ctx.addIssue({
        code: 'custom',
        path: [...prefix, ...path],
        message: `no escalation policy named "${name}"`,
      });
  };
  ch(c.alerting.notify, ['alerting', 'notify']);
  esc(c.alerting.escalation, ['alerting', 'escalation']);
  for (const [u, v] of Object.entries(c.alerting.users)) ch(v.notify, ['alerting', 'users', u, 'notify']);
  for (const [name, r] of Object.entries(c.alerts)) {
    ch(r.notify, ['alerts', name, 'notify']);
    esc(r.escalation, ['alerts', name, 'escalation']);
  }
  for (const [svc, s] of Object.entries(c.slos)) {
    ch(s.page, ['services', svc, 'slo', 'page']);
    ch(s.ticket, ['services', svc, 'slo', 'ticket']);
    esc(s.escalation, ['services', svc, 'slo', 'escalation']);
  }
  for (const [name, p] of Object.entries(c.escalations))
    for (const [li, l] of p.levels.entries())
      for (const [ti, t] of l.notify.entries()) {
        const path = [...prefix, 'escalations', name, 'levels', li, 'notify', ti];
        if (t.kind === 'channel' && !(t.id in c.channels))
          ctx.addIssue({ code: 'custom', path, message: `no channel named "${t.id}"` });
        if (t.kind === 'schedule' && !(t.id in c.schedules))
          ctx.addIssue({ code: 'custom', path, message: `no schedule named "${t.id}"` });
        if (t.kind === 'user' && !(t.id in c.alerting.users))
          ctx.addIssue({ code: 'custom', path, message: `user "${t.id}" has no contact in alerting.users` });
      }
  for (const [name, s] of Object.entries(c.schedules))
    for (const [ri, r] of s.rotations.entries())
      for (const u of r.users)
        if (!(u in c.alerting.users))
          ctx.addIssue({
            code: 'custom',
            path: [...prefix, 'schedules', name, 'rotations', ri, 'users'],
            message: `user "${u}" has no contact in alerting.users (how would they be paged?)`,
          });
}

/** The alerting part of a parsed nines.yaml (what `nines up` sends to PUT /v1/alerting/config). */
export function alertingConfigOf(c: {
  services: Record<string, { slo?: SloConfig | undefined }>;
  alerts?: AlertingConfig['alerts'] | undefined;
  channels?: AlertingConfig['channels'] | undefined;
  schedules?: AlertingConfig['schedules'] | undefined;
  escalations?: AlertingConfig['escalations'] | undefined;
  maintenance?: AlertingConfig['maintenance'] | undefined;
  alerting?: AlertingSettings | undefined;
}): AlertingConfig {
  const slos: Record<string, SloConfig> = {};
  for (const [name, s] of Object.entries(c.services)) if (s.slo) slos[name] = s.slo;
  return {
    alerts: c.alerts ?? {},
    channels: c.channels ?? {},
    schedules: c.schedules ?? {},
    escalations: c.escalations ?? {},
    maintenance: c.maintenance ?? {},
    alerting: c.alerting ?? alertingSettingsSchema.parse({}),
    slos,
  };
}
