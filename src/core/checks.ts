import { z } from 'zod';
import { duration } from './duration.js';
import type { Lifecycle } from './lifecycle.js';

/**
 * Black-box checks (`checks:` in nines.yaml): HTTP, TCP and DNS probes that every agent runs, so every
 * host is a probe location. A check is `down` only when at least `quorum` locations see it fail, and
 * `degraded` when some do but fewer (one location's network trouble is not an outage). Third-party
 * dependencies the apps call are checks of their own (`dependency: true`).
 *
 * This file holds the config schema, the spec the agents get, and the pure judgement of a probe's
 * outcome; the probes themselves are in src/agent/checks.ts, the quorum in src/controller/checks/.
 */

const CHECK_NAME = /^[a-z][a-z0-9-]{0,62}$/;

const common = {
  interval: duration.default(30_000),
  timeout: duration.default(5_000),
  /**
   * Locations that must see a failure for the check to be down; fewer make it degraded. Default: a
   * majority of the locations reporting.
   */
  quorum: z.number().int().min(1).max(1000).optional(),
  /**
   * Failures in a row a location needs before it counts as failing (default 1: its last result). One
   * blip from one location then neither degrades nor downs the check.
   */
  consecutiveFailures: z.number().int().min(1).max(100).optional(),
  /** A third-party dependency (shown apart on the status page, not counted in a service's uptime). */
  dependency: z.boolean().default(false),
  /** The service whose availability this check is part of (series composition in `nines availability`). */
  service: z.string().optional(),
  description: z.string().max(500).optional(),
  /** Public: shown on /status. */
  public: z.boolean().default(true),
};

export const httpCheckSchema = z.strictObject({
  type: z.literal('http'),
  url: z.url({ protocol: /^https?$/ }),
  method: z.enum(['GET', 'HEAD', 'POST']).default('GET'),
  headers: z.record(z.string(), z.string()).default({}),
  body: z.string().max(65_536).optional(),
  /** Accepted status codes; default any 2xx or 3xx. */
  status: z.array(z.number().int().min(100).max(599)).optional(),
  /** The body must contain this text. */
  bodyContains: z.string().min(1).optional(),
  /** The body is JSON and the value at `path` (`$.a.b[0].c`) equals `equals` (compared as strings). */
  json: z
    .strictObject({ path: z.string().min(1), equals: z.union([z.string(), z.number(), z.boolean()]) })
    .optional(),
  /** Slower answers fail. */
  maxResponseTime: duration.optional(),
  /** HTTPS: a certificate expiring in fewer days fails the check (default 14; 0 off). */
  certDaysLeft: z.number().int().min(0).max(3650).default(14),
  /** HTTPS: accept a certificate that does not verify (self-signed test servers). */
  insecure: z.boolean().default(false),
  ...common,
});

export const tcpCheckSchema = z.strictObject({
  type: z.literal('tcp'),
  host: z.string().min(1),
  port: z.number().int().min(1).max(65_535),
  ...common,
});

export const dnsCheckSchema = z.strictObject({
  type: z.literal('dns'),
  /** The name to resolve (not `name`: that is the check's own name on the wire). */
  query: z.string().min(1).max(253),
  record: z.enum(['A', 'AAAA', 'CNAME', 'MX', 'TXT', 'NS']).default('A'),
  /** One answer must contain this text (e.g. the expected address). */
  expect: z.string().min(1).optional(),
  /** Resolver to ask (`ip` or `ip:port`); default the host's. */
  server: z.string().min(1).optional(),
  ...common,
});

export const checkSchema = z.discriminatedUnion('type', [httpCheckSchema, tcpCheckSchema, dnsCheckSchema]);
export type CheckConfig = z.infer<typeof checkSchema>;
export type CheckConfigInput = z.input<typeof checkSchema>;

export const checksSchema = z.record(z.string(), checkSchema).superRefine((checks, ctx) => {
  for (const name of Object.keys(checks)) {
    if (!CHECK_NAME.test(name)) {
      ctx.addIssue({
        code: 'custom',
        path: [name],
        message: `"${name}" is not a check name: lowercase a-z, 0-9 and -, starting with a letter, up to 63`,
      });
    }
  }
});

export function isCheckName(name: string): boolean {
  return CHECK_NAME.test(name);
}

/** A check as the agents get it (`GET /v1/agent/checks`). */
export type CheckSpec = CheckConfig & { name: string };

export interface AgentChecks {
  /** Increases with every change of the set of checks. */
  version: number;
  checks: CheckSpec[];
}

/** One probe from one location. */
export interface CheckResult {
  check: string;
  /** When the probe started (epoch ms). */
  at: number;
  ok: boolean;
  /** Time to the answer (HTTP: the whole body), connect (TCP) or resolution (DNS). */
  latencyMs: number;
  /** Why it failed, or a short note of what was seen. */
  message: string;
  status?: number;
  certDaysLeft?: number;
}

export interface AgentCheckResults {
  hostId: string;
  results: CheckResult[];
}

export const checkResultSchema = z.strictObject({
  check: z.string().min(1).max(63),
  at: z.number().int().nonnegative(),
  ok: z.boolean(),
  latencyMs: z.number().nonnegative().max(86_400_000),
  message: z.string().max(1000),
  status: z.number().int().min(0).max(999).optional(),
  certDaysLeft: z.number().optional(),
});

export const agentCheckResultsSchema = z.strictObject({
  hostId: z.string().min(1),
  results: z.array(checkResultSchema).max(10_000),
});

// ---- judgement (pure) ---------------------------------------------------------------------------

/**
 * The value at a JSON path: `$`, `.key`, `["key"]`, `[0]`. Returns undefined when the path does not
 * exist (a missing field fails the check rather than throwing).
 */
export function jsonPathGet(doc: unknown, path: string): unknown {
  const p = path.trim();
  if (!p.startsWith('$')) return undefined;
  const re = /\.([A-Za-z_$][\w$-]*)|\[(\d+)\]|\["([^"]*)"\]|\['([^']*)'\]/y;
  let cur: unknown = doc;
  re.lastIndex = 1;
  while (re.lastIndex < p.length) {
    const start = re.lastIndex;
    const m = re.exec(p);
    if (!m || m.index !== start) return undefined;
    const key = m[1] ?? m[3] ?? m[4];
    if (key !== undefined) {
      if (typeof cur !== 'object' || cur === null || Array.isArray(cur) || !Object.hasOwn(cur, key))
        return undefined;
      cur = (cur as Record<string, unknown>)[key];
    } else {
      const i = Number(m[2]);
      if (!Array.isArray(cur) || i >= cur.length) return undefined;
      cur = cur[i];
    }
  }
  return cur;
}

export interface HttpOutcome {
  status: number;
  body: string;
  latencyMs: number;
  /** Days until the server certificate's notAfter (HTTPS only). */
  certDaysLeft?: number;
}

/** Does an HTTP answer pass the check? The first failing expectation is the message. */
export function judgeHttp(
  spec: z.infer<typeof httpCheckSchema>,
  o: HttpOutcome,
): { ok: boolean; message: string } {
  const statusOk = spec.status ? spec.status.includes(o.status) : o.status >= 200 && o.status < 400;
  if (!statusOk) {
    return {
      ok: false,
      message: `status ${o.status}, expected ${spec.status ? spec.status.join('/') : '2xx/3xx'}`,
    };
  }
  if (spec.bodyContains !== undefined && !o.body.includes(spec.bodyContains)) {
    return { ok: false, message: `body does not contain ${JSON.stringify(spec.bodyContains)}` };
  }
  if (spec.json) {
    let doc: unknown;
    try {
      doc = JSON.parse(o.body);
    } catch {
      return { ok: false, message: 'body is not JSON' };
    }
    const v = jsonPathGet(doc, spec.json.path);
    if (v === undefined) return { ok: false, message: `${spec.json.path} is missing` };
    if (String(v) !== String(spec.json.equals)) {
      return {
        ok: false,
        message: `${spec.json.path} is ${JSON.stringify(v)}, expected ${JSON.stringify(spec.json.equals)}`,
      };
    }
  }
  if (spec.maxResponseTime !== undefined && o.latencyMs > spec.maxResponseTime) {
    return {
      ok: false,
      message: `answered in ${Math.round(o.latencyMs)} ms, limit ${spec.maxResponseTime} ms`,
    };
  }
  if (o.certDaysLeft !== undefined && spec.certDaysLeft > 0 && o.certDaysLeft < spec.certDaysLeft) {
    return {
      ok: false,
      message: `certificate expires in ${Math.floor(o.certDaysLeft)} days (limit ${spec.certDaysLeft})`,
    };
  }
  return { ok: true, message: `status ${o.status}` };
}

// ---- state ----------------------------------------------------------------------------------------

/**
 * A check's state across locations. `unknown` until a location reports (and again when every
 * location's last result is stale); `up`, `degraded` (some locations fail, fewer than the quorum),
 * `down` (at least quorum locations fail).
 */
export type CheckState = 'unknown' | 'up' | 'degraded' | 'down';

export const checkLifecycle: Lifecycle<CheckState> = {
  name: 'check',
  allowed: {
    unknown: ['up', 'degraded', 'down'],
    up: ['degraded', 'down', 'unknown'],
    degraded: ['up', 'down', 'unknown'],
    down: ['up', 'degraded', 'unknown'],
  },
  terminal: [],
};
