import { request } from 'undici';
import { NinesError } from '../core/errors.js';
import { type LoadResult, startLoad } from './loadgen.js';

/**
 * `nines drill SCENARIO --service S`: put bounded synthetic load on the service's own proxy route,
 * inject a fault through the controller and its agents, let the platform recover, and report what the
 * load saw before, during and after, how long the platform took to notice and to recover, and whether
 * that meets the service's objective. The result is stored by the controller (`POST /v1/drills`).
 *
 * Scenarios:
 *  - `instance-kill`: one routed instance's process gets SIGKILL from its agent (a crash). Detected when
 *    the controller sees it down, recovered when it runs healthy and routed again and the service has
 *    its instances back.
 *  - `host-loss`: the agent of a host running the service kills every instance process on it and falls
 *    silent for `--outage` (default 30 s), then comes back like a rebooted host. Detected when the
 *    controller declares the host down, recovered when the service has its instances back (replaced on
 *    the other hosts, or the host returned); the drill waits for the host to report again.
 *  - `zone-outage`: the same for every live host of a zone (`--zone`, default: one running the service).
 *  - `deploy`: a rolling deploy to `--version` (default: the newest other stable release) and back
 *    to the current one — the platform's most frequent "fault". Recovered when both finished.
 *  - `controller-loss`: agents and proxies cannot reach the controller for `--outage` (the controller
 *    refuses them); the data plane must keep serving from its snapshot. Recovered when every host
 *    reports again.
 *  - `dependency-down`: the host:port of a declared dependency check (`--dependency`) is unreachable for
 *    `--outage` (default 10 s) from the service's processes and the agents' probes (src/agent/netblock.ts).
 *    Detected when the dependency check leaves `up`; recovered when it is `up` again after the outage
 *    and the service serves at full strength. The report keeps the service's error rate meanwhile.
 *
 * Every report lists the alerts that fired between the fault and the end of the drill.
 */

export const SCENARIOS = [
  'instance-kill',
  'host-loss',
  'zone-outage',
  'deploy',
  'controller-loss',
  'dependency-down',
] as const;
export type Scenario = (typeof SCENARIOS)[number];

/** The controller API as the drill needs it (src/cli/client.ts `Client` fits). */
export interface DrillApi {
  get<T>(path: string): Promise<T>;
  post<T>(path: string, body?: unknown): Promise<T>;
}

export interface DrillOptions {
  scenario: Scenario;
  service: string;
  /** Base URL of a nines proxy, e.g. `http://127.0.0.1:8080`; the drill adds the service's path prefix. */
  proxyUrl: string;
  /** Load: requests per second (1..2000) and keep-alive connections (1..256). */
  rate: number;
  connections: number;
  beforeMs: number;
  afterMs: number;
  /** Longest the fault phase may last before the drill gives up waiting for recovery. */
  recoverTimeoutMs: number;
  /** Pass only if at most this many requests failed (all phases). */
  maxFailed: number;
  /** Pass only if the p99 latency of every phase is at most this (ms), when given. */
  maxP99Ms?: number;
  /** `deploy`: the version to deploy (and come back from). */
  version?: string;
  /** `controller-loss`, `host-loss`: how long the controller / the host is gone. */
  outageMs?: number;
  /** `host-loss`: which host (id or name); default: one running the service. */
  host?: string;
  /** `zone-outage`: which zone; default: the zone of a host running the service. */
  zone?: string;
  /** `dependency-down`: the dependency check (declared with `dependency: true`) to take down. */
  dependency?: string;
  /** Progress lines for people (never in --json). */
  progress?: (line: string) => void;
}

export interface PhaseStats {
  sent: number;
  ok: number;
  failed: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  durationMs: number;
  errors: Record<string, number>;
  byStatus: Record<string, number>;
  /** The first failed requests of the phase (ms since the phase started), for diagnosis. */
  firstFailures: LoadResult['firstFailures'];
}

export interface DrillReport {
  scenario: Scenario;
  service: string;
  target: string;
  load: { rate: number; connections: number };
  startedAt: number;
  finishedAt: number;
  phases: { before: PhaseStats; during: PhaseStats; after: PhaseStats };
  sent: number;
  failed: number;
  /** From the fault to the controller noticing it; null when the scenario has no detection step. */
  timeToDetectMs: number | null;
  /** From the fault to the service fully back (null: it did not recover within the timeout). */
  timeToRecoverMs: number | null;
  fault: Record<string, unknown>;
  /** Share of the requests that failed while the fault lasted (0–1). */
  errorRateDuring?: number;
  /** Alerts that fired between the fault and the end of the drill (null: the alerts could not be read). */
  alerts?: RaisedAlert[] | null;
  objective: { maxFailed: number; maxP99Ms: number | null };
  passed: boolean;
  reasons: string[];
}

export interface RaisedAlert {
  id: string;
  name: string;
  severity: string;
  summary: string;
  firedAt: number;
  /** null: still firing when the drill ended. */
  resolvedAt: number | null;
}

/** The stored alert fields a drill reads (`GET /v1/alerts?all=1`). */
export interface AlertLike {
  dedupKey: string;
  labels: Record<string, string>;
  severity: string;
  summary: string;
  state: string;
  firedAt?: number;
  resolvedAt?: number;
}

/** Alerts that fired from `from` to `to`, oldest first. Pure. */
export function alertsRaised(alerts: readonly AlertLike[], from: number, to: number): RaisedAlert[] {
  return alerts
    .filter((a) => a.firedAt !== undefined && a.firedAt >= from && a.firedAt <= to)
    .sort((a, b) => (a.firedAt ?? 0) - (b.firedAt ?? 0))
    .map((a) => ({
      id: a.dedupKey,
      name: a.labels.alertname ?? a.dedupKey,
      severity: a.severity,
      summary: a.summary,
      firedAt: a.firedAt as number,
      resolvedAt:
        a.resolvedAt !== undefined && a.resolvedAt >= (a.firedAt as number) && a.resolvedAt <= to
          ? a.resolvedAt
          : null,
    }));
}

export const LIMITS = {
  rate: { min: 1, max: 2000 },
  connections: { min: 1, max: 256 },
  phaseMs: { min: 0, max: 600_000 },
  recoverTimeoutMs: { min: 1000, max: 600_000 },
  outageMs: { min: 100, max: 120_000 },
} as const;

/** Bounds the load and the fault, so a drill can never become a load test or an outage. */
export function validateOptions(o: DrillOptions): void {
  const bad = (m: string) => {
    throw new NinesError('NINES_E_VALIDATION', m);
  };
  if (!SCENARIOS.includes(o.scenario))
    bad(`unknown scenario "${o.scenario}": one of ${SCENARIOS.join(', ')}`);
  const within = (name: string, v: number | undefined, l: { min: number; max: number }) => {
    if (v === undefined) return;
    if (!Number.isFinite(v) || v < l.min || v > l.max) bad(`${name} must be from ${l.min} to ${l.max}`);
  };
  within('--rate', o.rate, LIMITS.rate);
  within('--connections', o.connections, LIMITS.connections);
  within('--before', o.beforeMs, LIMITS.phaseMs);
  within('--after', o.afterMs, LIMITS.phaseMs);
  within('--recover-timeout', o.recoverTimeoutMs, LIMITS.recoverTimeoutMs);
  within('--outage', o.outageMs, LIMITS.outageMs);
  if (o.scenario === 'dependency-down' && (o.dependency === undefined || o.dependency === '')) {
    bad('dependency-down needs --dependency CHECK (a check declared with dependency: true)');
  }
  if (!Number.isInteger(o.maxFailed) || o.maxFailed < 0) bad('--max-failed must be a whole number ≥ 0');
  let u: URL;
  try {
    u = new URL(o.proxyUrl);
  } catch {
    throw new NinesError('NINES_E_VALIDATION', `--proxy ${o.proxyUrl}: not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') bad('--proxy must be an http(s) URL');
  if (u.pathname !== '/' || u.search !== '' || u.hash !== '') {
    bad('--proxy is the proxy base URL only; the drill adds the service path itself');
  }
}

export function phaseStats(r: LoadResult): PhaseStats {
  return {
    sent: r.sent,
    ok: r.ok,
    failed: r.failed,
    p50Ms: round(r.latencyMs.p50),
    p99Ms: round(r.latencyMs.p99),
    maxMs: round(r.latencyMs.max),
    durationMs: Math.round(r.durationMs),
    errors: r.errors,
    byStatus: r.byStatus,
    firstFailures: r.firstFailures.slice(0, 5),
  };
}

/** Pass/fail against the objective. Pure. */
export function evaluate(
  phases: DrillReport['phases'],
  timeToRecoverMs: number | null,
  objective: DrillReport['objective'],
  faultError: string | null,
): { passed: boolean; reasons: string[] } {
  const reasons: string[] = [];
  if (faultError !== null) reasons.push(faultError);
  const failed = phases.before.failed + phases.during.failed + phases.after.failed;
  if (failed > objective.maxFailed) {
    reasons.push(`${failed} request(s) failed; the objective allows ${objective.maxFailed}`);
  }
  if (timeToRecoverMs === null) reasons.push('the service did not recover within the timeout');
  if (objective.maxP99Ms !== null) {
    for (const [name, p] of Object.entries(phases)) {
      if (p.sent > 0 && p.p99Ms > objective.maxP99Ms) {
        reasons.push(`p99 ${name} was ${p.p99Ms} ms; the objective is ${objective.maxP99Ms} ms`);
      }
    }
  }
  if (phases.before.sent + phases.during.sent + phases.after.sent === 0) reasons.push('no request was sent');
  return { passed: reasons.length === 0, reasons };
}

interface ServiceRec {
  name: string;
  currentRelease: string | null;
  lockedBy: string | null;
  spec: { route?: { hosts?: string[]; pathPrefix?: string }; instances?: number };
}
interface StatusInstance {
  id: string;
  service: string;
  version: string;
  host: string;
  desired: string;
  route: string;
  state: string;
  healthy: boolean;
  /** Every live proxy has it up. */
  proxyUp: boolean;
  restarts: number;
}
interface StatusView {
  services: Array<{
    name: string;
    desiredInstances: number;
    releases: Array<{ version: string; stable: boolean; createdAt: number }>;
  }>;
  instances: StatusInstance[];
}
interface HostRec {
  id: string;
  name: string;
  lastSeenAt: number;
  revokedAt: number | null;
  up?: boolean;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const round = (v: number) => Math.round(v * 100) / 100;

/** Waits until `check` returns a value, polling; undefined after `ms`. */
async function until<T>(ms: number, check: () => Promise<T | undefined>, every = 50): Promise<T | undefined> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() >= end) return undefined;
    await sleep(every);
  }
}

function serving(s: StatusView, service: string): StatusInstance[] {
  return s.instances.filter(
    (i) =>
      i.service === service &&
      i.desired === 'running' &&
      i.route === 'ready' &&
      i.healthy &&
      i.proxyUp &&
      i.state === 'running',
  );
}

/**
 * Refuses anything outside the fleet this controller manages: an unknown service, one whose deploy is
 * in flight (a drill must not race a deploy), a target that is not a nines proxy route of the service.
 */
async function preflight(
  api: DrillApi,
  o: DrillOptions,
): Promise<{ svc: ServiceRec; url: string; headers: Record<string, string> }> {
  let svc: ServiceRec;
  try {
    svc = (await api.get<{ service: ServiceRec }>(`/v1/services/${encodeURIComponent(o.service)}`)).service;
  } catch (err) {
    if ((err as { code?: string }).code === 'NINES_E_SERVICE_NOT_FOUND') {
      throw new NinesError(
        'NINES_E_DRILL_REFUSED',
        `no service named "${o.service}" is managed by this controller`,
      );
    }
    throw err;
  }
  if (svc.lockedBy !== null) {
    throw new NinesError(
      'NINES_E_DRILL_REFUSED',
      `${o.service} has a deploy in flight (${svc.lockedBy}); drill after it`,
    );
  }
  const status = await api.get<StatusView>('/v1/status');
  if (serving(status, o.service).length === 0) {
    throw new NinesError('NINES_E_DRILL_REFUSED', `${o.service} has no healthy routed instance to drill on`);
  }
  const prefix = svc.spec.route?.pathPrefix ?? '/';
  const url = new URL(prefix, o.proxyUrl).toString();
  const host = svc.spec.route?.hosts?.[0];
  const headers: Record<string, string> = host !== undefined ? { host } : {};
  // The route must answer through a nines proxy (which stamps x-request-id on every answer it relays)
  // with one of the service's own answers — not a 404 of some other server.
  let res: Awaited<ReturnType<typeof request>>;
  try {
    res = await request(url, { headers, headersTimeout: 5000, bodyTimeout: 5000 });
    await res.body.dump();
  } catch (err) {
    throw new NinesError(
      'NINES_E_DRILL_REFUSED',
      `the proxy route ${url} does not answer: ${(err as Error).message}`,
    );
  }
  if (res.headers['x-request-id'] === undefined || res.statusCode >= 400) {
    throw new NinesError(
      'NINES_E_DRILL_REFUSED',
      `${url} is not a nines proxy route of ${o.service} (HTTP ${res.statusCode}${
        res.headers['x-request-id'] === undefined ? ', no x-request-id' : ''
      })`,
    );
  }
  return { svc, url, headers };
}

interface FaultOutcome {
  fault: Record<string, unknown>;
  detectedAt: number | null;
  recoveredAt: number | null;
  injectedAt: number;
  error: string | null;
}

/** The agent could not inject the fault: nothing to detect or recover. */
function notInjected(
  r: { result: { message: string } } & Record<string, unknown>,
  injectedAt: number,
): FaultOutcome {
  return {
    fault: r,
    detectedAt: null,
    recoveredAt: null,
    injectedAt,
    error: `fault not injected: ${r.result.message}`,
  };
}

async function instanceKill(api: DrillApi, o: DrillOptions, svc: ServiceRec): Promise<FaultOutcome> {
  const before = await api.get<StatusView>('/v1/status');
  const want = Math.max(serving(before, o.service).length, 1);
  const r = await api.post<{
    fault: Record<string, unknown>;
    instance: string;
    hostId: string;
    sentAt: number;
    result: { ok: boolean; message: string; at: number; pid?: number };
  }>('/v1/drills/faults', { kind: 'kill-instance', service: svc.name });
  const injectedAt = r.result.at;
  o.progress?.(`fault: ${r.result.message}`);
  if (!r.result.ok) return notInjected(r, injectedAt);
  const restartsBefore = before.instances.find((i) => i.id === r.instance)?.restarts ?? 0;
  const detectedAt =
    (await until(o.recoverTimeoutMs, async () => {
      const s = await api.get<StatusView>('/v1/status');
      const i = s.instances.find((x) => x.id === r.instance);
      return i === undefined || i.state !== 'running' || !i.healthy || i.restarts > restartsBefore
        ? Date.now()
        : undefined;
    })) ?? null;
  if (detectedAt !== null) o.progress?.(`detected after ${detectedAt - injectedAt} ms`);
  const recoveredAt =
    detectedAt === null
      ? null
      : ((await until(o.recoverTimeoutMs - (Date.now() - injectedAt), async () => {
          const s = await api.get<StatusView>('/v1/status');
          return serving(s, o.service).length >= want ? Date.now() : undefined;
        })) ?? null);
  return { fault: r, detectedAt, recoveredAt, injectedAt, error: null };
}

/** `host-loss` and `zone-outage`: the agents of the lost hosts kill their instances and fall silent. */
async function hostLoss(api: DrillApi, o: DrillOptions, svc: ServiceRec): Promise<FaultOutcome> {
  const outage = o.outageMs ?? 30_000;
  const before = await api.get<StatusView>('/v1/status');
  const want = Math.max(serving(before, o.service).length, 1);
  const r = await api.post<{
    hosts: Array<{ hostId: string; host: string }>;
    instances: string[];
    result: { ok: boolean; message: string; at: number };
  }>('/v1/drills/faults', {
    kind: o.scenario,
    service: svc.name,
    durationMs: outage,
    ...(o.scenario === 'host-loss' && o.host !== undefined ? { host: o.host } : {}),
    ...(o.scenario === 'zone-outage' && o.zone !== undefined ? { zone: o.zone } : {}),
  });
  const injectedAt = r.result.at;
  const names = r.hosts.map((h) => h.host).join(', ');
  o.progress?.(`fault: ${r.result.message}`);
  if (!r.result.ok) return notInjected(r, injectedAt);
  const lostHosts = async () => {
    const { hosts } = await api.get<{ hosts: HostRec[] }>('/v1/hosts');
    return r.hosts.map((l) => hosts.find((h) => h.id === l.hostId));
  };
  const allBack = (hs: Array<HostRec | undefined>) =>
    hs.every((h) => h !== undefined && h.lastSeenAt > injectedAt + outage);
  let detectedAt: number | null = null;
  const recoveredAt =
    (await until(
      o.recoverTimeoutMs,
      async () => {
        const hs = await lostHosts();
        if (detectedAt === null && hs.every((h) => h?.up === false)) {
          detectedAt = Date.now();
          o.progress?.(`detected: ${names} down after ${detectedAt - injectedAt} ms`);
        }
        // Recovered: the loss was noticed (or the hosts are back) and the service serves at full strength.
        if (detectedAt === null && !allBack(hs)) return undefined;
        return serving(await api.get<StatusView>('/v1/status'), o.service).length >= want
          ? Date.now()
          : undefined;
      },
      100,
    )) ?? null;
  // Restore: the hosts are back (they report again) before the after phase.
  await until(
    Math.max(0, injectedAt + outage - Date.now()) + 30_000,
    async () => (allBack(await lostHosts()) ? true : undefined),
    200,
  );
  return { fault: r, detectedAt, recoveredAt, injectedAt, error: null };
}

async function deployAndBack(api: DrillApi, o: DrillOptions, svc: ServiceRec): Promise<FaultOutcome> {
  const original = svc.currentRelease;
  if (original === null) throw new NinesError('NINES_E_DRILL_REFUSED', `${svc.name} has no current release`);
  let version = o.version;
  if (version === undefined) {
    const status = await api.get<StatusView>('/v1/status');
    const other = status.services
      .find((s) => s.name === svc.name)
      ?.releases.filter((r) => r.stable && r.version !== original)
      .sort((a, b) => b.createdAt - a.createdAt)[0];
    if (other === undefined) {
      throw new NinesError(
        'NINES_E_DRILL_REFUSED',
        `${svc.name} has no other stable release to deploy and come back from; give --version`,
      );
    }
    version = other.version;
  }
  if (version === original)
    throw new NinesError('NINES_E_VALIDATION', `--version ${version} is already deployed`);
  const injectedAt = Date.now();
  const deploys: Array<Record<string, unknown>> = [];
  let error: string | null = null;
  for (const to of [version, original]) {
    o.progress?.(`deploy ${svc.name} → ${to}`);
    const d = await api.post<{ deploy: { id: string } }>(
      `/v1/services/${encodeURIComponent(svc.name)}/deploys`,
      {
        version: to,
      },
    );
    const id = d.deploy.id;
    const done = await until(
      o.recoverTimeoutMs,
      async () => {
        const r = await api.get<{
          deploy: {
            state: string;
            reason: string | null;
            startedAt: number | null;
            finishedAt: number | null;
          };
        }>(`/v1/deploys/${id}`);
        return r.deploy.state === 'succeeded' || r.deploy.state === 'failed' ? r.deploy : undefined;
      },
      100,
    );
    deploys.push({ id, to, state: done?.state ?? 'timeout', reason: done?.reason ?? null });
    if (done?.state !== 'succeeded') {
      error = `deploy ${id} to ${to} ${done === undefined ? 'did not finish in time' : `failed: ${done.reason}`}`;
      break;
    }
  }
  return {
    fault: { deploys },
    detectedAt: null,
    recoveredAt: error === null ? Date.now() : null,
    injectedAt,
    error,
  };
}

async function controllerLoss(api: DrillApi, o: DrillOptions): Promise<FaultOutcome> {
  const outage = o.outageMs ?? 5000;
  const r = await api.post<{ from: number; until: number }>('/v1/drills/controller-loss', {
    durationMs: outage,
  });
  o.progress?.(`controller unreachable for agents and proxies until ${new Date(r.until).toISOString()}`);
  const hostsBefore = (await api.get<{ hosts: HostRec[] }>('/v1/hosts')).hosts.filter(
    (h) => h.revokedAt === null && h.lastSeenAt >= r.from - 10_000,
  );
  await sleep(Math.max(0, r.until - Date.now()));
  const recoveredAt =
    (await until(o.recoverTimeoutMs, async () => {
      const { hosts } = await api.get<{ hosts: HostRec[] }>('/v1/hosts');
      const back = hostsBefore.every((b) => (hosts.find((h) => h.id === b.id)?.lastSeenAt ?? 0) > r.until);
      return back ? Date.now() : undefined;
    })) ?? null;
  return {
    fault: { ...r, hosts: hostsBefore.map((h) => h.name) },
    detectedAt: null,
    recoveredAt,
    injectedAt: r.from,
    error: null,
  };
}

/** `dependency-down`: the agents cut the service (and their probes) off from the dependency. */
async function dependencyDown(api: DrillApi, o: DrillOptions, svc: ServiceRec): Promise<FaultOutcome> {
  const outage = o.outageMs ?? 10_000;
  const check = o.dependency as string;
  const before = await api.get<StatusView>('/v1/status');
  const want = Math.max(serving(before, o.service).length, 1);
  const r = await api.post<{ result: { ok: boolean; message: string; at: number } }>('/v1/drills/faults', {
    kind: 'dependency-down',
    service: svc.name,
    check,
    durationMs: outage,
  });
  const injectedAt = r.result.at;
  o.progress?.(`fault: ${r.result.message}`);
  if (!r.result.ok) return notInjected(r, injectedAt);
  const states: Array<{ at: number; state: string; message: string }> = [];
  const checkState = async () => {
    const { check: c } = await api.get<{ check: { state: string; message: string } }>(
      `/v1/checks/${encodeURIComponent(check)}`,
    );
    if (states.at(-1)?.state !== c.state) states.push({ at: Date.now(), state: c.state, message: c.message });
    return c.state;
  };
  let detectedAt: number | null = null;
  await until(
    Math.max(0, injectedAt + outage - Date.now()),
    async () => {
      if ((await checkState()) !== 'up' && detectedAt === null) {
        detectedAt = Date.now();
        o.progress?.(`detected: check ${check} ${states.at(-1)?.state} after ${detectedAt - injectedAt} ms`);
      }
      return undefined;
    },
    200,
  );
  const recoveredAt =
    (await until(
      Math.max(1000, o.recoverTimeoutMs - (Date.now() - injectedAt)),
      async () =>
        (await checkState()) === 'up' &&
        serving(await api.get<StatusView>('/v1/status'), o.service).length >= want
          ? Date.now()
          : undefined,
      200,
    )) ?? null;
  return { fault: { ...r, checkStates: states }, detectedAt, recoveredAt, injectedAt, error: null };
}

export async function runDrill(api: DrillApi, o: DrillOptions): Promise<DrillReport> {
  validateOptions(o);
  const { svc, url, headers } = await preflight(api, o);
  const load = (durationMs: number) =>
    startLoad({ url, rate: o.rate, connections: o.connections, durationMs, timeoutMs: 10_000, headers });
  const startedAt = Date.now();
  o.progress?.(`drill ${o.scenario} of ${o.service}: ${o.rate} req/s on ${url}`);
  const before = o.beforeMs > 0 ? await load(o.beforeMs).done : undefined;
  const during = load(o.recoverTimeoutMs + 60_000);
  let outcome: FaultOutcome;
  try {
    if (o.scenario === 'instance-kill') outcome = await instanceKill(api, o, svc);
    else if (o.scenario === 'host-loss' || o.scenario === 'zone-outage')
      outcome = await hostLoss(api, o, svc);
    else if (o.scenario === 'deploy') outcome = await deployAndBack(api, o, svc);
    else if (o.scenario === 'dependency-down') outcome = await dependencyDown(api, o, svc);
    else outcome = await controllerLoss(api, o);
  } catch (err) {
    await during.stop();
    throw err;
  }
  const duringResult = await during.stop();
  const after = o.afterMs > 0 ? await load(o.afterMs).done : undefined;
  const empty: PhaseStats = {
    sent: 0,
    ok: 0,
    failed: 0,
    p50Ms: 0,
    p99Ms: 0,
    maxMs: 0,
    durationMs: 0,
    errors: {},
    byStatus: {},
    firstFailures: [],
  };
  const phases = {
    before: before ? phaseStats(before) : empty,
    during: phaseStats(duringResult),
    after: after ? phaseStats(after) : empty,
  };
  const timeToDetectMs = outcome.detectedAt === null ? null : outcome.detectedAt - outcome.injectedAt;
  const timeToRecoverMs = outcome.recoveredAt === null ? null : outcome.recoveredAt - outcome.injectedAt;
  const objective = { maxFailed: o.maxFailed, maxP99Ms: o.maxP99Ms ?? null };
  const verdict = evaluate(phases, timeToRecoverMs, objective, outcome.error);
  const finishedAt = Date.now();
  const alerts = await api
    .get<{ alerts: AlertLike[] }>('/v1/alerts?all=1')
    .then((a) => alertsRaised(a.alerts, outcome.injectedAt, finishedAt))
    .catch(() => null);
  return {
    scenario: o.scenario,
    service: o.service,
    target: url,
    load: { rate: o.rate, connections: o.connections },
    startedAt,
    finishedAt,
    phases,
    sent: phases.before.sent + phases.during.sent + phases.after.sent,
    failed: phases.before.failed + phases.during.failed + phases.after.failed,
    timeToDetectMs,
    timeToRecoverMs,
    fault: outcome.fault,
    errorRateDuring: phases.during.sent === 0 ? 0 : round(phases.during.failed / phases.during.sent),
    alerts,
    objective,
    ...verdict,
  };
}

export function renderReport(r: DrillReport, id?: string): string {
  const ms = (v: number | null) => (v === null ? '—' : `${v} ms`);
  const rows = (['before', 'during', 'after'] as const).map((k) => {
    const p = r.phases[k];
    return `  ${k.padEnd(7)} ${String(p.sent).padStart(7)} ${String(p.failed).padStart(7)} ${`${p.p50Ms}`.padStart(9)} ${`${p.p99Ms}`.padStart(9)}`;
  });
  return [
    `drill ${r.scenario} of ${r.service}${id ? ` (${id})` : ''}: ${r.passed ? 'PASSED' : 'FAILED'}`,
    `  phase      sent  failed  p50 (ms)  p99 (ms)`,
    ...rows,
    `  total ${r.sent} sent, ${r.failed} failed · detect ${ms(r.timeToDetectMs)} · recover ${ms(r.timeToRecoverMs)}`,
    ...(r.errorRateDuring !== undefined && r.errorRateDuring > 0
      ? [`  error rate during the fault: ${(r.errorRateDuring * 100).toFixed(1)} %`]
      : []),
    ...renderAlerts(r.alerts, r.startedAt),
    ...r.reasons.map((x) => `  ✗ ${x}`),
  ].join('\n');
}

function renderAlerts(alerts: RaisedAlert[] | null | undefined, start: number): string[] {
  // Reports stored before alerts were recorded have no field at all.
  if (alerts === undefined) return [];
  if (alerts === null) return ['  alerts raised: (could not be read)'];
  if (alerts.length === 0) return ['  alerts raised: none'];
  const t = (v: number) => `+${((v - start) / 1000).toFixed(1)} s`;
  return [
    `  alerts raised: ${alerts.length}`,
    ...alerts.map(
      (a) =>
        `    ${a.severity.padEnd(8)} ${a.name} fired ${t(a.firedAt)}${a.resolvedAt === null ? ', still firing' : `, resolved ${t(a.resolvedAt)}`} — ${a.summary}`,
    ),
  ];
}
