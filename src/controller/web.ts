import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest, RawServerDefault } from 'fastify';
import type { Logger } from 'pino';
import { type ServiceSpec, STRATEGIES, type StrategyName } from '../core/config.js';
import { NinesError } from '../core/errors.js';
import { deploySettings, maintenanceEstimate, planCanary } from '../core/strategies.js';
import { measuredTimes } from './engine/allatonce.js';
import { nextRollingStep, type RollingStep, resolveRolling } from './engine/plan.js';
import type { Hub } from './hub.js';
import { type RatePoint, serviceRates } from './signals/rates.js';
import type { Signals } from './signals/signals.js';
import { statusView } from './status.js';
import type { DeployEventRecord, DeployRecord, EventRecord, Store } from './store/types.js';

/**
 * The dashboard's server side: the Vite build of `web/` (static files, served without a token — they
 * hold no data) and the endpoints only the dashboard needs. Every data call still authenticates in the
 * API's onRequest hook; `isPublicWebPath` is the one exception list that hook consults.
 *
 * Live updates: `GET /v1/stream` is Server-Sent Events read with `fetch` (so the token travels in the
 * `authorization` header as everywhere else, never in a URL). One shared poller per controller looks at
 * the store and the hub every `pollMs` while someone listens, and pushes what changed:
 *   status         the statusView JSON (when it changed, and at least every `statusEveryMs`)
 *   deploys        the latest deploys (when any changed)
 *   events         entries of the event log, oldest first: the newest 200 on connect, then new ones
 *   deploy-events  new step events of running (and just finished) deploys: { deployId, events }
 *   alerts         pending and firing alerts plus the newest others (when any changed): { alerts }
 * A comment line every `heartbeatMs` keeps proxies and the client's stall detector happy.
 */

export interface WebDeps {
  store: Store;
  hub: Hub;
  /** Directory of the built dashboard; defaults to `../web` next to this compiled file (dist/web). */
  webRoot?: string;
  pollMs?: number;
  heartbeatMs?: number;
  statusEveryMs?: number;
  /** The controller's signals: `GET /v1/signals/services` (the Services page's charts). */
  signals?: Signals;
  /** The alert store's list (newest change first): the stream's `alerts` event. */
  listAlerts?: () => Promise<ReadonlyArray<{ state: string }>>;
}

export const defaultWebRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'web');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.map': 'application/json',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/** GET/HEAD of the dashboard's static files: the API's auth hook lets these through without a token. */
export function isPublicWebPath(method: string, url: string): boolean {
  if (method !== 'GET' && method !== 'HEAD') return false;
  const path = url.split('?')[0] ?? '';
  if (path === '/' || path === '/index.html') return true;
  return /^\/assets\/[A-Za-z0-9._-]+$/.test(path);
}

const SECURITY_HEADERS: Record<string, string> = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'content-security-policy':
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
};

/** The API's Fastify instance (its logger is pino's, as in api.ts). */
export type WebApp = FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, Logger>;

export function registerWeb(app: WebApp, deps: WebDeps): void {
  const root = resolve(deps.webRoot ?? defaultWebRoot);
  const feed = new Feed(deps);

  const sendFile = async (reply: FastifyReply, rel: string, cache: string) => {
    const file = resolve(root, rel);
    if (file !== root && !file.startsWith(root + sep)) {
      throw new NinesError('NINES_E_NOT_FOUND', `no file ${rel}`);
    }
    const st = await stat(file).catch(() => undefined);
    if (!st?.isFile()) return undefined;
    return reply
      .headers(SECURITY_HEADERS)
      .header('content-type', TYPES[extname(file)] ?? 'application/octet-stream')
      .header('content-length', st.size)
      .header('cache-control', cache)
      .send(createReadStream(file));
  };

  const index = async (_req: FastifyRequest, reply: FastifyReply) => {
    const sent = await sendFile(reply, 'index.html', 'no-cache');
    if (sent) return sent;
    return reply
      .status(503)
      .headers(SECURITY_HEADERS)
      .header('content-type', 'text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .send(missingBuildPage(root));
  };
  app.get('/', index);
  app.get('/index.html', index);

  app.get('/assets/:file', async (req, reply) => {
    const { file } = req.params as { file: string };
    if (!/^[A-Za-z0-9._-]+$/.test(file) || file.startsWith('.')) {
      throw new NinesError('NINES_E_NOT_FOUND', `no asset ${file}`);
    }
    // Vite puts a content hash in every asset name: they never change, cache them for a year.
    const sent = await sendFile(reply, join('assets', file), 'public, max-age=31536000, immutable');
    if (sent) return sent;
    throw new NinesError('NINES_E_NOT_FOUND', `no asset ${file} (rebuild the dashboard: npm run build:web)`);
  });

  /** Who the caller is, so the dashboard can disable what the token may not do. */
  app.get('/v1/whoami', async (req) => {
    const p = req.principal;
    return { name: p?.name ?? 'anonymous', role: p?.role ?? null };
  });

  /** What a deploy to `version` would do now, step by step, without doing it (`strategy`: override). */
  app.get('/v1/services/:name/deploy-plan', async (req) => {
    const { name } = req.params as { name: string };
    const { version, strategy } = req.query as { version?: unknown; strategy?: unknown };
    if (typeof version !== 'string' || version === '') {
      throw new NinesError('NINES_E_VALIDATION', 'invalid query: version: required');
    }
    if (strategy !== undefined && !STRATEGIES.includes(strategy as StrategyName)) {
      throw new NinesError('NINES_E_VALIDATION', `invalid query: strategy: one of ${STRATEGIES.join(', ')}`);
    }
    return deployPlan(deps.store, name, version, strategy as StrategyName | undefined);
  });

  /** Per-service request rate, 5xx share and p99 over the last `minutes` (default 15, at most 360). */
  app.get('/v1/signals/services', async (req) => {
    const q = req.query as { minutes?: unknown; stepSeconds?: unknown };
    const minutes = q.minutes === undefined ? 15 : Number(q.minutes);
    const step = q.stepSeconds === undefined ? 10 : Number(q.stepSeconds);
    if (!Number.isFinite(minutes) || minutes <= 0 || minutes > 360) {
      throw new NinesError('NINES_E_VALIDATION', 'invalid query: minutes: a number in (0, 360]');
    }
    if (!Number.isFinite(step) || step < 1 || step > 3600) {
      throw new NinesError('NINES_E_VALIDATION', 'invalid query: stepSeconds: a number in [1, 3600]');
    }
    const now = Date.now();
    const names = new Set([
      ...(await deps.store.listServices()).map((s) => s.name),
      ...(deps.signals?.serviceNames() ?? []),
    ]);
    const services: Array<{ service: string; points: RatePoint[] }> = [...names].sort().map((service) => {
      const h = deps.signals?.serviceHistory(service) ?? { le: undefined, points: [] };
      return { service, points: serviceRates(h.le, h.points, now - minutes * 60_000, step * 1000) };
    });
    return { now, minutes, stepSeconds: step, services };
  });

  app.get('/v1/stream', async (req, reply) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();
    const client: StreamClient = {
      send: (event, data) => {
        if (!res.writableEnded) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      },
      comment: (text) => {
        if (!res.writableEnded) res.write(`: ${text}\n\n`);
      },
      end: () => {
        if (!res.writableEnded) res.end();
      },
    };
    client.send('hello', { retryMs: 2000, now: Date.now() });
    const off = feed.subscribe(client);
    req.raw.once('close', off);
    res.once('close', off);
    res.once('error', off);
  });

  // Open streams would keep server.close() waiting forever: end them before the server closes.
  app.addHook('preClose', async () => {
    feed.close();
  });
}

function missingBuildPage(root: string): string {
  const esc = root.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>nines: dashboard not built</title></head>
<body style="font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#111">
<h1>The dashboard is not built</h1>
<p>This controller found no dashboard files in <code>${esc}</code>.</p>
<p>Build them with <code>npm run build:web</code> (or <code>npm run build</code>) and reload this page.</p>
<p>The API works without them: <code>npx nines status</code>.</p>
</body></html>
`;
}

// ---- deploy plan --------------------------------------------------------------------------------------

export interface DeployPlan {
  service: string;
  from: string | null;
  to: string;
  strategy: StrategyName;
  desired: number;
  maxSurge: number;
  maxUnavailable: number;
  /** Instances of other releases that serve now and will be replaced. */
  old: number;
  /** Instances already on the target release. */
  fresh: number;
  /** Rolling: the batches. */
  steps: RollingStep[];
  /** Other strategies: what happens, in order (canary steps, the blue-green switch, the maintenance window). */
  lines: string[];
  /** Every instance already runs `to`: nothing to do. */
  nothing: boolean;
  text: string;
  /** Reasons the deploy would be refused or pointless right now (empty when it can start). */
  warnings: string[];
}

export async function deployPlan(
  store: Store,
  service: string,
  version: string,
  strategyOverride?: StrategyName,
): Promise<DeployPlan> {
  const svc = await store.getService(service);
  if (!svc) throw new NinesError('NINES_E_SERVICE_NOT_FOUND', `no service named "${service}"`);
  const release = await store.getRelease(service, version);
  if (!release) {
    throw new NinesError('NINES_E_RELEASE_NOT_FOUND', `service "${service}" has no release "${version}"`);
  }
  // The same counting as the engine: the release's own spec decides count and rolling parameters.
  const params = resolveRolling(release.spec.rolling, release.spec.instances);
  const live = (await store.listInstances({ service })).filter(
    (i) => i.desired === 'running' && i.route === 'ready',
  );
  const old = live.filter((i) => i.releaseVersion !== version).length;
  const fresh = Math.min(live.length - old, params.desired);
  const surplus = live.length - old - fresh;
  const steps: RollingStep[] = [];
  const s = { oldReady: old + surplus, newReady: fresh, newPending: 0 };
  for (let k = 0; k < 10_000; k++) {
    const step = nextRollingStep(params, s);
    if (step.done || (step.start === 0 && step.stop === 0)) break;
    steps.push(step);
    s.newReady += step.start;
    s.oldReady -= step.stop;
  }
  const warnings: string[] = [];
  if (svc.lockedBy) warnings.push(`a deploy is in progress (${svc.lockedBy}); a new one would be refused`);
  if (svc.currentRelease === version && old === 0) warnings.push(`${service} already runs ${version}`);
  const settings = deploySettings(release.spec, strategyOverride);
  const strategy = settings.strategy;
  const nothing = steps.length === 0;
  // The first deploy of a service has nothing to protect: the engine starts it whatever the strategy.
  const lines =
    strategy === 'rolling' || old + surplus === 0
      ? []
      : await strategyLines(store, service, version, release.spec, settings, old + surplus);
  const text =
    strategy === 'rolling' || old + surplus === 0
      ? `rolling, maxSurge ${params.maxSurge}, maxUnavailable ${params.maxUnavailable}: ` +
        `${old + surplus} old → ${params.desired} new` +
        (fresh ? ` (${fresh} already on ${version})` : '') +
        `, ${steps.length} step${steps.length === 1 ? '' : 's'}`
      : `${strategy}: ${old + surplus} old → ${params.desired} new`;
  return {
    service,
    from: svc.currentRelease,
    to: version,
    strategy,
    lines,
    nothing,
    desired: params.desired,
    maxSurge: params.maxSurge,
    maxUnavailable: params.maxUnavailable,
    old: old + surplus,
    fresh,
    steps: lines.length === 0 ? steps : [],
    text,
    warnings,
  };
}

// ---- the live feed ----------------------------------------------------------------------------------

interface StreamClient {
  send(event: string, data: unknown): void;
  comment(text: string): void;
  end(): void;
}

const ACTIVE = new Set(['pending', 'running']);
/** Keep following a finished deploy this long, so its last step events reach the dashboard. */
const FOLLOW_AFTER_FINISH_MS = 5000;
const RECENT_EVENTS = 200;
/** Resolved (and inactive) alerts the stream carries besides every pending and firing one. */
const RECENT_ALERTS = 50;

/** One poller for every open stream; it runs only while at least one client listens. */
class Feed {
  private readonly store: Store;
  private readonly hub: Hub;
  private readonly pollMs: number;
  private readonly heartbeatMs: number;
  private readonly statusEveryMs: number;
  private readonly listAlerts: WebDeps['listAlerts'];
  private alertsJson = '';
  private alerts: unknown[] = [];
  private readonly clients = new Set<StreamClient>();
  private timer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private ticking = false;
  private closed = false;
  private statusJson = '';
  private statusKey = '';
  private statusAt = 0;
  private deploysJson = '';
  private deploys: DeployRecord[] = [];
  private lastEventId = 0;
  /** The newest RECENT_EVENTS entries of the event log, oldest first: a newcomer's backlog. */
  private recentEvents: EventRecord[] = [];
  /** deployId → last seq sent. */
  private readonly followed = new Map<string, number>();

  constructor(deps: WebDeps) {
    this.store = deps.store;
    this.hub = deps.hub;
    this.pollMs = deps.pollMs ?? 500;
    this.heartbeatMs = deps.heartbeatMs ?? 15_000;
    this.statusEveryMs = deps.statusEveryMs ?? 5000;
    this.listAlerts = deps.listAlerts;
  }

  subscribe(client: StreamClient): () => void {
    if (this.closed) {
      client.end();
      return () => {};
    }
    this.clients.add(client);
    // A newcomer gets the current picture at once (the poller's last one, or a fresh tick).
    if (this.statusJson) {
      client.send('status', JSON.parse(this.statusJson));
      client.send('deploys', { deploys: this.deploys });
      if (this.recentEvents.length > 0) client.send('events', { events: this.recentEvents });
      if (this.alertsJson) client.send('alerts', { alerts: this.alerts });
    }
    if (!this.timer) {
      this.timer = setInterval(() => void this.tick(), this.pollMs);
      this.heartbeat = setInterval(() => {
        for (const c of this.clients) c.comment(`ping ${Date.now()}`);
      }, this.heartbeatMs);
      void this.tick();
    }
    let gone = false;
    return () => {
      if (gone) return;
      gone = true;
      this.clients.delete(client);
      client.end();
      if (this.clients.size === 0) this.stop();
    };
  }

  close(): void {
    this.closed = true;
    for (const c of this.clients) c.end();
    this.clients.clear();
    this.stop();
  }

  private stop(): void {
    clearInterval(this.timer);
    clearInterval(this.heartbeat);
    this.timer = undefined;
    this.heartbeat = undefined;
    // Forget the cursors: the next first subscriber starts from a fresh picture.
    this.statusJson = '';
    this.deploysJson = '';
    this.alertsJson = '';
    this.lastEventId = 0;
    this.recentEvents = [];
    this.followed.clear();
  }

  private broadcast(event: string, data: unknown): void {
    for (const c of this.clients) c.send(event, data);
  }

  private async tick(): Promise<void> {
    if (this.ticking || this.clients.size === 0) return;
    this.ticking = true;
    try {
      await this.pollStatus();
      await this.pollDeploys();
      await this.pollEvents();
      await this.pollAlerts();
    } catch {
      // A store hiccup (e.g. closing): the next tick tries again; clients keep their last picture.
    } finally {
      this.ticking = false;
    }
  }

  private async pollStatus(): Promise<void> {
    const view = await statusView(this.store, this.hub);
    const now = Date.now();
    // Reports refresh timestamps every second; push those only every statusEveryMs, real changes at once.
    const key = JSON.stringify({
      ...view,
      hosts: view.hosts.map((h) => ({ ...h, lastSeenAt: 0 })),
      proxies: view.proxies.map((p) => ({ ...p, at: 0 })),
    });
    if (key === this.statusKey && now - this.statusAt < this.statusEveryMs) return;
    this.statusKey = key;
    this.statusAt = now;
    const payload = { ...view, now };
    this.statusJson = JSON.stringify(payload);
    this.broadcast('status', payload);
  }

  private async pollDeploys(): Promise<void> {
    const deploys = await this.store.listDeploys(undefined, 50);
    const json = JSON.stringify(deploys);
    if (json !== this.deploysJson) {
      this.deploysJson = json;
      this.deploys = deploys;
      this.broadcast('deploys', { deploys });
    }
    const now = Date.now();
    for (const d of deploys) {
      const recent = d.finishedAt !== null && now - d.finishedAt < FOLLOW_AFTER_FINISH_MS;
      if (ACTIVE.has(d.state) || recent || this.followed.has(d.id)) {
        if (!this.followed.has(d.id)) this.followed.set(d.id, 0);
      }
    }
    for (const [id, after] of this.followed) {
      const d = deploys.find((x) => x.id === id);
      const events: DeployEventRecord[] = await this.store.listDeployEvents(id, after);
      if (events.length > 0) {
        this.followed.set(id, events[events.length - 1]!.seq);
        this.broadcast('deploy-events', { deployId: id, events });
      }
      const over = !d || (!ACTIVE.has(d.state) && (d.finishedAt ?? 0) < now - FOLLOW_AFTER_FINISH_MS);
      if (over) this.followed.delete(id);
    }
  }

  private async pollAlerts(): Promise<void> {
    if (!this.listAlerts) return;
    const all = await this.listAlerts();
    const active = all.filter((a) => a.state === 'pending' || a.state === 'firing');
    const others = all.filter((a) => a.state !== 'pending' && a.state !== 'firing').slice(0, RECENT_ALERTS);
    const alerts = [...active, ...others];
    const json = JSON.stringify(alerts);
    if (json === this.alertsJson) return;
    this.alertsJson = json;
    this.alerts = alerts;
    this.broadcast('alerts', { alerts });
  }

  private async pollEvents(): Promise<void> {
    const latest: EventRecord[] = await this.store.listEvents({ limit: RECENT_EVENTS });
    const fresh = latest.filter((e) => e.id > this.lastEventId).reverse();
    if (fresh.length === 0) return;
    this.lastEventId = fresh[fresh.length - 1]!.id;
    this.recentEvents = [...this.recentEvents, ...fresh].slice(-RECENT_EVENTS);
    this.broadcast('events', { events: fresh });
  }
}

/** A non-rolling strategy's plan in words, from the same settings and planners the engine uses. */
async function strategyLines(
  store: Store,
  service: string,
  version: string,
  spec: ServiceSpec,
  settings: ReturnType<typeof deploySettings>,
  old: number,
): Promise<string[]> {
  const desired = spec.instances;
  switch (settings.strategy) {
    case 'canary':
      return [
        `start ${version} beside the ${old} old instance(s) at 0 % of new requests`,
        ...planCanary(settings.canarySteps, desired, settings.analysis.window).map((a) => {
          switch (a.kind) {
            case 'scale':
              return `run ${a.newInstances} new instance(s)`;
            case 'weight':
              return `send ${a.percent} % of new requests to ${version}`;
            case 'pause':
              return a.ms === null ? 'pause until promoted' : `pause ${(a.ms / 1000).toFixed(0)} s`;
            case 'analysis':
              return `analyse ${version}'s 5xx share and p99 over ${(a.window / 1000).toFixed(0)} s`;
            default:
              return `promote: every instance on ${version}, the old ones drained`;
          }
        }),
      ];
    case 'blue-green':
      return [
        `start ${desired} instance(s) of ${version} beside the ${old} old one(s), out of rotation` +
          ` (preview: header X-Nines-Preview: 1${settings.previewHosts.length ? ` or ${settings.previewHosts.join(', ')}` : ''})`,
        settings.autoPromote
          ? 'switch every new request to them at once when all are healthy'
          : 'switch every new request to them at once on `nines deploy promote`',
        `keep the old group running ${(settings.scaleDownDelay / 1000).toFixed(0)} s: a rollback in that window is an instant switch back`,
      ];
    case 'all-at-once': {
      const times = await measuredTimes(store, service);
      const est = maintenanceEstimate(times.boot, times.stop, spec.healthyDeadline);
      return [
        `maintenance mode: users see the maintenance page for about ${(est.windowMs / 1000).toFixed(1)} s ` +
          `(${est.measured ? 'measured' : 'no boot measured yet; healthy deadline'}: stop ${est.stopMs} ms + boot ${est.bootMs} ms)`,
        `stop all ${old} old instance(s), start ${desired} of ${version}, then back to the previous mode`,
      ];
    }
    case 'in-place':
      return [
        `host by host: start ${version} beside the old process(es) on the same host (new ports)`,
        'one routing update per host sends new requests to them; the old ones drain and stop',
      ];
    default:
      return [];
  }
}
