import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import {
  alertingConfigOf,
  alertingSettingsSchema,
  alertsSchema,
  channelsSchema,
  checkAlertingRefs,
  escalationsSchema,
  maintenanceWindowsSchema,
  schedulesSchema,
  sloSchema,
} from './alerting-config.js';
import { checksSchema } from './checks.js';
import { drillSchedulesSchema } from './drill-schedule.js';
import { duration } from './duration.js';
import { NinesError } from './errors.js';
import { instancesOutOfRange, placementSchema, restartPolicySchema, scalingSchema } from './fleet-config.js';

/**
 * `nines.yaml`: the one source of truth for what runs. This zod schema is the definition; the
 * configuration reference in docs/configuration.md describes it field by field.
 */

export { duration };

/** A count of instances, or a percentage of the desired count (`25%`). */
export const countOrPercent = z.union([
  z.number().int().nonnegative(),
  z.string().regex(/^\d{1,3}%$/, 'use a whole number or a percentage such as "25%"'),
]);
export type CountOrPercent = z.infer<typeof countOrPercent>;

export const healthCheckSchema = z.strictObject({
  path: z.string().startsWith('/').default('/healthz'),
  interval: duration.default(1000),
  timeout: duration.default(1000),
  rise: z.number().int().min(1).max(100).default(2),
  fall: z.number().int().min(1).max(100).default(3),
});
export type HealthCheckConfig = z.infer<typeof healthCheckSchema>;

export const rollingSchema = z
  .strictObject({
    maxSurge: countOrPercent.default(1),
    maxUnavailable: countOrPercent.default(0),
    /** Roll one zone at a time: every batch of a zone finishes before the next zone starts. */
    zoneByZone: z.boolean().optional(),
  })
  .refine((r) => !(isZero(r.maxSurge) && isZero(r.maxUnavailable)), {
    message: 'maxSurge and maxUnavailable cannot both be 0: the deploy could never make progress',
  });
export type RollingConfig = z.infer<typeof rollingSchema>;

function isZero(v: CountOrPercent): boolean {
  return v === 0 || v === '0%';
}

export const routeSchema = z.strictObject({
  /** Host names (exact) this service answers; empty means any host. */
  hosts: z.array(z.string().min(1)).default([]),
  pathPrefix: z.string().startsWith('/').default('/'),
});

/** How a new release replaces the old one (see docs/configuration.md, *Deploy strategies*). */
export const STRATEGIES = ['rolling', 'blue-green', 'canary', 'all-at-once', 'in-place'] as const;
export type StrategyName = (typeof STRATEGIES)[number];

export const blueGreenSchema = z.strictObject({
  /** The old group stays up (out of rotation) this long after the switch; `nines rollback` meanwhile is instant. */
  scaleDownDelay: duration.optional(),
  /** Hosts that reach the new group before the switch (besides the `X-Nines-Preview` header). */
  previewHosts: z.array(z.string().min(1)).optional(),
  /** Switch as soon as the new group is healthy (default); false holds until `nines deploy promote`. */
  autoPromote: z.boolean().optional(),
});

/** One canary step, named as Argo Rollouts does. */
export const canaryStepSchema = z.union([
  z.strictObject({ setWeight: z.number().int().min(0).max(100) }),
  /** `pause: {}` waits for `nines deploy promote`; `pause: {duration: 30s}` waits that long. */
  z.strictObject({ pause: z.strictObject({ duration: duration.optional() }) }),
  z.strictObject({ analysis: z.strictObject({ window: duration.optional() }) }),
]);
export type CanaryStep = z.infer<typeof canaryStepSchema>;

export const canarySchema = z.strictObject({
  steps: z.array(canaryStepSchema).min(1).optional(),
});

export const analysisSchema = z.strictObject({
  /** Longest share of 5xx answers of the new release, in percent. */
  maxErrorPercent: z.number().min(0).max(100).optional(),
  /** Highest p99 latency of the new release. */
  maxP99: duration.optional(),
  /** Also fail when the new release is this many percentage points worse than the old over the same window. */
  maxErrorPercentOverStable: z.number().min(0).max(100).optional(),
  /** Fewer requests to the new release than this in the window: inconclusive (the deploy pauses). */
  minRequests: z.number().int().min(0).optional(),
  /** Measurement window (after each rolling batch; the default for canary `analysis` steps). */
  window: duration.optional(),
  /** Analyse after each rolling batch (canaries always analyse at their `analysis` steps). */
  afterEachBatch: z.boolean().optional(),
  /**
   * Blue-green: analyse the new group for `window` right after the switch, while the old group still
   * runs; a failure switches every proxy back to it at once (Argo's post-promotion analysis).
   */
  afterSwitch: z.boolean().optional(),
});

export const hookSchema = z.strictObject({
  /** Run with `sh -c` in an unpacked copy of the release, with the service's env and NINES_* set. */
  command: z.string().min(1),
  timeout: duration.optional(),
});
export type HookConfig = z.infer<typeof hookSchema>;

export const hooksSchema = z.strictObject({
  /** Once before any instance starts (migrations); failure or timeout aborts before traffic moves. */
  preDeploy: hookSchema.optional(),
  /** Once after the deploy succeeded; a failure is reported, not reverted. */
  postDeploy: hookSchema.optional(),
  /** On the instance's host before it is drained and stopped. */
  preStop: hookSchema.optional(),
});

const SERVICE_NAME = /^[a-z][a-z0-9-]{0,62}$/;

export const serviceSchema = z.strictObject({
  /** Directory packed as the first release (`v1`) by `nines up` when the service has no release yet. */
  source: z.string().min(1).optional(),
  /** Run with `sh -c`, in the release directory, with PORT and NINES_* set. */
  command: z.string().min(1),
  /**
   * `web` (default): serves HTTP on $PORT behind the proxies. `worker`: no HTTP, no route, no PORT (a
   * queue consumer); healthy once its process stays up `health.rise` × `health.interval`; deployed
   * new-before-old and stopped with SIGTERM, SIGKILL after `drainTimeout`.
   */
  kind: z.enum(['web', 'worker']).optional(),
  instances: z.number().int().min(0).max(1000).default(1),
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string()).default({}),
  health: healthCheckSchema.default(healthCheckSchema.parse({})),
  route: routeSchema.default(routeSchema.parse({})),
  /** Time an instance gets between SIGTERM and SIGKILL, after the proxy has drained it. */
  drainTimeout: duration.default(10_000),
  /** A new instance that is not healthy within this time fails the deploy. */
  healthyDeadline: duration.default(60_000),
  rolling: rollingSchema.default(rollingSchema.parse({})),
  /** Availability objective over 30 days with burn-rate alerts (docs/alerting.md). */
  slo: sloSchema.optional(),
  /** Fleet fields (`src/core/fleet-config.ts`); absent means the defaults. */
  placement: placementSchema.optional(),
  restart: restartPolicySchema.optional(),
  scaling: scalingSchema.optional(),
  // Deploy settings: optional so specs stored before they existed read the same; defaults in
  // core/strategies.ts (`deploySettings`).
  strategy: z.enum(STRATEGIES).optional(),
  blueGreen: blueGreenSchema.optional(),
  canary: canarySchema.optional(),
  analysis: analysisSchema.optional(),
  hooks: hooksSchema.optional(),
  /** A new instance must stay healthy this long before its batch counts. */
  minHealthyTime: duration.optional(),
  /** A deploy that makes no progress (no instance becomes healthy) for this long fails. */
  progressDeadline: duration.optional(),
  /** On failure (health, analysis, deadline) revert to the last stable release. */
  autoRevert: z.boolean().optional(),
});
export type ServiceSpec = z.infer<typeof serviceSchema>;
export type ServiceSpecInput = z.input<typeof serviceSchema>;

export const configSchema = z
  .strictObject({
    version: z.literal(1).default(1),
    // Alerting (docs/alerting.md): rules, channels, on-call; cross-references checked below.
    alerts: alertsSchema.optional(),
    channels: channelsSchema.optional(),
    schedules: schedulesSchema.optional(),
    escalations: escalationsSchema.optional(),
    maintenance: maintenanceWindowsSchema.optional(),
    alerting: alertingSettingsSchema.optional(),
    services: z.record(z.string(), serviceSchema).superRefine((services, ctx) => {
      for (const name of Object.keys(services)) {
        if (!SERVICE_NAME.test(name)) {
          ctx.addIssue({
            code: 'custom',
            path: [name],
            message: `"${name}" is not a service name: lowercase a-z, 0-9 and -, starting with a letter, up to 63`,
          });
        }
        const svc = services[name];
        const range = svc && instancesOutOfRange(svc.instances, svc.scaling);
        if (range) ctx.addIssue({ code: 'custom', path: [name, 'instances'], message: range });
      }
    }),
    /** Black-box checks run from every host (src/core/checks.ts, docs/checks.md). */
    checks: checksSchema.default({}),
    /** Scheduled drills, run by the leading controller (src/core/drill-schedule.ts, docs/drills.md). */
    drills: drillSchedulesSchema.optional(),
  })
  .superRefine((c, ctx) => checkAlertingRefs(alertingConfigOf(c), ctx));
export type NinesConfig = z.infer<typeof configSchema>;

export interface ConfigIssue {
  path: string;
  message: string;
  line?: number;
}

/** Dotted path for humans: services.web.rolling.maxSurge */
export function formatPath(path: readonly PropertyKey[]): string {
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p))).join('.') || '(root)';
}

export function zodIssues(err: z.ZodError): ConfigIssue[] {
  return err.issues.map((i) => ({ path: formatPath(i.path), message: i.message }));
}

/** Validates an API payload (body, query, path): the data, or NINES_E_VALIDATION (400) naming each bad field. */
export function parseInput<T extends z.ZodType>(schema: T, value: unknown, what: string): z.infer<T> {
  const r = schema.safeParse(value);
  if (!r.success) {
    const issues = zodIssues(r.error);
    throw new NinesError(
      'NINES_E_VALIDATION',
      `invalid ${what}: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
      { issues },
    );
  }
  return r.data;
}

/** Parse and validate YAML text. Throws NINES_E_CONFIG_INVALID naming every bad field. */
export function parseConfig(text: string, source = 'nines.yaml'): NinesConfig {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    const issues = doc.errors.map((e) => ({
      path: '(yaml)',
      message: e.message,
      ...(e.linePos?.[0] ? { line: e.linePos[0].line } : {}),
    }));
    throw configError(source, issues);
  }
  const result = configSchema.safeParse(doc.toJS() ?? {});
  if (!result.success) {
    const issues = zodIssues(result.error).map((i) => {
      const node = doc.getIn(i.path === '(root)' ? [] : i.path.split('.'), true) as
        | { range?: [number, number, number] }
        | undefined;
      const line = node?.range ? lineOf(text, node.range[0]) : undefined;
      return line === undefined ? i : { ...i, line };
    });
    throw configError(source, issues);
  }
  return result.data;
}

function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

function configError(source: string, issues: ConfigIssue[]): NinesError {
  const lines = issues.map((i) => `  ${source}${i.line ? `:${i.line}` : ''} ${i.path}: ${i.message}`);
  return new NinesError('NINES_E_CONFIG_INVALID', `${source} is invalid:\n${lines.join('\n')}`, { issues });
}

export function loadConfigFile(file: string): NinesConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new NinesError('NINES_E_CONFIG_NOT_FOUND', `cannot read ${file}: ${(err as Error).message}`);
  }
  return parseConfig(text, file);
}

/** Resolve `25%` of `total` instances. Surge rounds up, unavailability rounds down (as Kubernetes). */
export function resolveCount(v: CountOrPercent, total: number, round: 'up' | 'down'): number {
  if (typeof v === 'number') return v;
  const pct = Number(v.slice(0, -1)) / 100;
  return round === 'up' ? Math.ceil(total * pct) : Math.floor(total * pct);
}
