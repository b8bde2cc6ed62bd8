import type { Logger } from 'pino';
import type { RouteService } from '../core/protocol.js';
import type { ProxyRequest, ProxyResponse } from './h1.js';
import { Histogram } from './metrics.js';
import type { Upstream } from './upstream.js';

export const Balance = { LeastConn: 0, RoundRobin: 1, Weighted: 2 } as const;
export type Balance = (typeof Balance)[keyof typeof Balance];
export const BALANCE_NAMES = ['least-connections', 'round-robin', 'weighted'] as const;

export const Mode = { Live: 0, ReadOnly: 1, Maintenance: 2, Pause: 3 } as const;
export type Mode = (typeof Mode)[keyof typeof Mode];
export const MODE_NAMES = ['live', 'read-only', 'maintenance', 'pause'] as const;

export interface OutlierPolicy {
  consecutiveConnectFailures: number;
  consecutive5xx: number;
  baseEjectionMs: number;
  maxEjectionMs: number;
  maxEjectionPercent: number;
}

/** A request held while its service is paused. */
export interface Held {
  req: ProxyRequest;
  res: ProxyResponse;
  timer: NodeJS.Timeout;
}

/**
 * One service as the data path sees it. It lives as long as the service is in the snapshot (matched by
 * name), so its counters, its panic flag and its held requests survive snapshot changes; `update`
 * takes the new policy and instance list.
 */
export class Route {
  readonly name: string;
  prefix = '/';
  /** The prefix ends with '/', so any path starting with it matches. */
  private open = true;
  /** Has a host list (beats a host-less service with a prefix of the same length). */
  specific = false;
  instances: Upstream[] = [];
  /** Round-robin cursor. */
  rr = 0;

  balance: Balance = Balance.LeastConn;
  mode: Mode = Mode.Live;
  slowStartMs = 0;
  outlier: OutlierPolicy = {
    consecutiveConnectFailures: 1,
    consecutive5xx: 5,
    baseEjectionMs: 2000,
    maxEjectionMs: 60_000,
    maxEjectionPercent: 50,
  };
  panicPercent = 0;
  retryAttempts = 1;
  retryBudgetPercent = 20;
  retryMinConcurrent = 10;
  retryAfter = '30';
  maintenanceMessage = 'This service is down for maintenance.';
  maintenanceHtml: string | null = null;
  pauseTimeoutMs = 10_000;
  wsDrainTimeoutMs = 5000;

  // live state and metrics
  /** Requests in flight through this service (retry budget). */
  active = 0;
  /** Of those, requests that are on a retry. */
  activeRetries = 0;
  retries = 0;
  retriesDenied = 0;
  panic = false;
  panics = 0;
  /** Answers the proxy gave itself (mode, no healthy instance), by status class. */
  readonly localByClass = [0, 0, 0, 0, 0];
  /** Answers instances gave, by status class; kept here because instances come and go (deploys count them). */
  readonly servedByClass = [0, 0, 0, 0, 0];
  readonly localLatency = new Histogram();
  /** Answers instances gave, per service (the per-instance histograms go when instances go). */
  readonly servedLatency = new Histogram();
  readonly held = new Set<Held>();
  /** The blue-green preview group: requests with `X-Nines-Preview` go here instead (set per snapshot). */
  preview: Route | null = null;

  private readonly logger: Logger;

  constructor(name: string, logger: Logger) {
    this.name = name;
    this.logger = logger;
  }

  update(svc: RouteService, instances: Upstream[]): void {
    this.prefix = svc.pathPrefix;
    this.open = svc.pathPrefix.endsWith('/');
    this.specific = svc.hosts.length > 0;
    this.instances = instances;
    const b = BALANCE_NAMES.indexOf(svc.balance ?? 'least-connections');
    this.balance = Math.max(b, 0) as Balance;
    const m = MODE_NAMES.indexOf(svc.mode);
    if (m < 0) this.logger.warn({ service: svc.name, mode: svc.mode }, 'proxy: unknown mode, using live');
    this.mode = Math.max(m, 0) as Mode;
    this.slowStartMs = nonNeg(svc.slowStartMs, 0);
    const o = svc.outlier ?? {};
    this.outlier = {
      consecutiveConnectFailures: nonNeg(o.consecutiveConnectFailures, 1),
      consecutive5xx: nonNeg(o.consecutive5xx, 5),
      baseEjectionMs: nonNeg(o.baseEjectionMs, 2000),
      maxEjectionMs: nonNeg(o.maxEjectionMs, 60_000),
      maxEjectionPercent: nonNeg(o.maxEjectionPercent, 50),
    };
    this.panicPercent = nonNeg(svc.panicThresholdPercent, 0);
    const r = svc.retry ?? {};
    this.retryAttempts = nonNeg(r.attempts, 1);
    this.retryBudgetPercent = nonNeg(r.budgetPercent, 20);
    this.retryMinConcurrent = nonNeg(r.minConcurrent, 10);
    this.retryAfter = String(Math.round(nonNeg(svc.retryAfterSeconds, 30)));
    this.maintenanceMessage = svc.maintenance?.message ?? 'This service is down for maintenance.';
    this.maintenanceHtml = svc.maintenance?.html ?? null;
    this.pauseTimeoutMs = nonNeg(svc.pauseTimeoutMs, 10_000);
    this.wsDrainTimeoutMs = nonNeg(svc.wsDrainTimeoutMs, 5000);
    if (this.panicPercent === 0 && this.panic) this.setPanic(false, 0, 0);
  }

  /** Prefix match on a path-segment boundary: `/api` matches `/api`, `/api/x`, `/api?q`, not `/apix`. */
  matches(url: string): boolean {
    const p = this.prefix;
    if (!url.startsWith(p)) return false;
    if (this.open || url.length === p.length) return true;
    const c = url.charCodeAt(p.length);
    return c === 47 /* / */ || c === 63 /* ? */;
  }

  /**
   * May a request that failed retry now? Bounded per request and by the service's retry budget.
   * `extra` attempts are allowed on top for failures that sent nothing (connect failures): the failed
   * instance is ejected at once, so each goes to another one — several instances lost together (a host,
   * a zone) must not fail a request just because its one retry met the second dead instance.
   */
  mayRetry(attempts: number, extra = 0): boolean {
    if (attempts > this.retryAttempts + extra) return false;
    const budget = Math.max(this.retryMinConcurrent, (this.active * this.retryBudgetPercent) / 100);
    if (this.activeRetries >= budget) {
      this.retriesDenied++;
      return false;
    }
    return true;
  }

  /** The instance for a new request (or a retry, other than `exclude`); null when there is none. */
  pick(exclude: Upstream | null): Upstream | null {
    if (this.panicPercent > 0) {
      const p = this.panicPick(exclude);
      if (p !== undefined) return p;
    }
    switch (this.balance) {
      case Balance.RoundRobin:
        return this.roundRobin(exclude, false);
      case Balance.Weighted:
        return this.weighted(exclude);
      default:
        return this.leastConn(exclude);
    }
  }

  /** Fewest in-flight per unit of (effective) weight; ties go round-robin. */
  private leastConn(exclude: Upstream | null): Upstream | null {
    const list = this.instances;
    const n = list.length;
    let i = this.rr;
    if (i >= n) i = 0;
    let best: Upstream | null = null;
    let bestW = 0;
    let bestI = 0;
    let now = 0;
    for (let k = 0; k < n; k++) {
      const u = list[i]!;
      const at = i;
      i = i + 1 === n ? 0 : i + 1;
      if (!u.routable || u === exclude) continue;
      let w = u.weight;
      if (w <= 0) continue;
      if (u.rampUntil !== 0) {
        if (now === 0) now = performance.now();
        w = u.effectiveWeight(now);
      }
      if (best === null || (u.inflight + 1) * bestW < (best.inflight + 1) * w) {
        best = u;
        bestW = w;
        bestI = at;
      }
    }
    if (best !== null) this.rr = bestI + 1;
    return best;
  }

  private roundRobin(exclude: Upstream | null, any: boolean): Upstream | null {
    const list = this.instances;
    const n = list.length;
    let i = this.rr;
    if (i >= n) i = 0;
    for (let k = 0; k < n; k++) {
      const u = list[i]!;
      i = i + 1 === n ? 0 : i + 1;
      if (u === exclude || u.weight <= 0) continue;
      if (any ? u.state === 'ready' && !u.removed && u.pool !== null : u.routable) {
        this.rr = i;
        return u;
      }
    }
    return null;
  }

  /** Smooth weighted round-robin (nginx): an even interleaving in proportion to the effective weights. */
  private weighted(exclude: Upstream | null): Upstream | null {
    const list = this.instances;
    let total = 0;
    let best: Upstream | null = null;
    let now = 0;
    for (let i = 0; i < list.length; i++) {
      const u = list[i]!;
      if (!u.routable || u === exclude) continue;
      let w = u.weight;
      if (w <= 0) continue;
      if (u.rampUntil !== 0) {
        if (now === 0) now = performance.now();
        w = u.effectiveWeight(now);
      }
      u.current += w;
      total += w;
      if (best === null || u.current > best.current) best = u;
    }
    if (best !== null) best.current -= total;
    return best;
  }

  /** Fail-open: with too few healthy instances, route to every ready one. undefined: not in panic. */
  private panicPick(exclude: Upstream | null): Upstream | null | undefined {
    let ready = 0;
    let healthy = 0;
    for (const u of this.instances) {
      if (u.state !== 'ready' || u.removed || u.weight <= 0) continue;
      ready++;
      if (u.routable) healthy++;
    }
    const panic = ready > 0 && healthy * 100 < this.panicPercent * ready;
    if (panic !== this.panic) this.setPanic(panic, healthy, ready);
    return panic ? this.roundRobin(exclude, true) : undefined;
  }

  private setPanic(panic: boolean, healthy: number, ready: number): void {
    this.panic = panic;
    if (panic) {
      this.panics++;
      this.logger.warn(
        { service: this.name, healthy, ready, thresholdPercent: this.panicPercent },
        'proxy: PANIC — too few healthy instances, routing to all ready instances (fail-open)',
      );
    } else this.logger.info({ service: this.name, healthy, ready }, 'proxy: panic over');
  }
}

function nonNeg(v: number | undefined, dflt: number): number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : dflt;
}

function byPrecedence(a: Route, b: Route): number {
  const d = b.prefix.length - a.prefix.length;
  if (d !== 0) return d;
  return (b.specific ? 1 : 0) - (a.specific ? 1 : 0);
}

/** Host → candidate routes, each list ordered longest prefix first (host-specific first on a tie). */
export class RouteTable {
  private readonly byHost = new Map<string, Route[]>();
  private readonly wildcard: [string, Route[]][] = [];
  private readonly anyHost: Route[] = [];

  constructor(entries: readonly { svc: RouteService; route: Route }[]) {
    const wild = new Map<string, Route[]>();
    for (const { svc, route } of entries) {
      if (svc.hosts.length === 0) {
        this.anyHost.push(route);
        continue;
      }
      for (const h of svc.hosts) {
        const key = h.toLowerCase();
        // `*.example.com` matches any subdomain (one label or more), not example.com itself.
        const map = key.startsWith('*.') ? wild : this.byHost;
        const k = key.startsWith('*.') ? key.slice(1) : key;
        let l = map.get(k);
        if (l === undefined) {
          l = [];
          map.set(k, l);
        }
        if (!l.includes(route)) l.push(route);
      }
    }
    for (const l of this.byHost.values()) {
      l.push(...this.anyHost);
      l.sort(byPrecedence);
    }
    for (const [suffix, l] of wild) {
      l.push(...this.anyHost);
      l.sort(byPrecedence);
      this.wildcard.push([suffix, l]);
    }
    // Longest suffix first: `*.a.example.com` beats `*.example.com`.
    this.wildcard.sort((a, b) => b[0].length - a[0].length);
    this.anyHost.sort(byPrecedence);
  }

  /** `host` is the Host header as sent (may carry a port, any case). */
  match(host: string, url: string): Route | null {
    let list = this.anyHost;
    if (this.byHost.size !== 0 || this.wildcard.length !== 0) {
      const name = hostname(host);
      const exact = this.byHost.get(name);
      if (exact !== undefined) list = exact;
      else {
        for (const [suffix, l] of this.wildcard) {
          if (name.endsWith(suffix) && name.length > suffix.length) {
            list = l;
            break;
          }
        }
      }
    }
    for (let i = 0; i < list.length; i++) {
      const r = list[i]!;
      if (r.matches(url)) return r;
    }
    return null;
  }
}

/** Host header without port, lower-cased; `[::1]:80` → `[::1]`. */
export function hostname(host: string): string {
  let end = host.length;
  if (host.charCodeAt(0) === 91 /* [ */) {
    const close = host.indexOf(']');
    if (close !== -1) end = close + 1;
  } else {
    const colon = host.indexOf(':');
    if (colon !== -1) end = colon;
  }
  const name = end === host.length ? host : host.slice(0, end);
  return name.toLowerCase();
}
