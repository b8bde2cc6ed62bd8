import type { RouteService } from '../core/protocol.js';
import type { Upstream } from './upstream.js';

/** One service as the balancer sees it. Built per snapshot; its Upstreams are shared across snapshots. */
export class Route {
  readonly name: string;
  readonly prefix: string;
  /** The prefix ends with '/', so any path starting with it matches. */
  private readonly open: boolean;
  /** Has a host list (beats a host-less service with a prefix of the same length). */
  readonly specific: boolean;
  readonly instances: Upstream[];
  /** Round-robin cursor. */
  rr = 0;

  constructor(svc: RouteService, instances: Upstream[]) {
    this.name = svc.name;
    this.prefix = svc.pathPrefix;
    this.open = svc.pathPrefix.endsWith('/');
    this.specific = svc.hosts.length > 0;
    this.instances = instances;
  }

  /** Prefix match on a path-segment boundary: `/api` matches `/api`, `/api/x`, `/api?q`, not `/apix`. */
  matches(url: string): boolean {
    const p = this.prefix;
    if (!url.startsWith(p)) return false;
    if (this.open || url.length === p.length) return true;
    const c = url.charCodeAt(p.length);
    return c === 47 /* / */ || c === 63 /* ? */;
  }

  /** Next routable instance in round-robin order, other than `exclude`; null when there is none. */
  pick(exclude: Upstream | null): Upstream | null {
    const list = this.instances;
    const n = list.length;
    let i = this.rr;
    if (i >= n) i = 0;
    for (let k = 0; k < n; k++) {
      const u = list[i]!;
      i = i + 1 === n ? 0 : i + 1;
      if (u.routable && u !== exclude) {
        this.rr = i;
        return u;
      }
    }
    return null;
  }
}

function byPrecedence(a: Route, b: Route): number {
  const d = b.prefix.length - a.prefix.length;
  if (d !== 0) return d;
  return (b.specific ? 1 : 0) - (a.specific ? 1 : 0);
}

/** Host → candidate routes, each list ordered longest prefix first (host-specific first on a tie). */
export class RouteTable {
  private readonly byHost = new Map<string, Route[]>();
  private readonly anyHost: Route[] = [];

  constructor(services: readonly RouteService[], upstreams: ReadonlyMap<string, Upstream>) {
    for (const svc of services) {
      const list: Upstream[] = [];
      for (const inst of svc.instances) {
        const u = upstreams.get(inst.id);
        if (u !== undefined && !list.includes(u)) list.push(u);
      }
      const route = new Route(svc, list);
      if (svc.hosts.length === 0) {
        this.anyHost.push(route);
        continue;
      }
      for (const h of svc.hosts) {
        const key = h.toLowerCase();
        let l = this.byHost.get(key);
        if (l === undefined) {
          l = [];
          this.byHost.set(key, l);
        }
        if (!l.includes(route)) l.push(route);
      }
    }
    for (const l of this.byHost.values()) {
      l.push(...this.anyHost);
      l.sort(byPrecedence);
    }
    this.anyHost.sort(byPrecedence);
  }

  /** `host` is the Host header as sent (may carry a port, any case). */
  match(host: string, url: string): Route | null {
    const list = this.byHost.size === 0 ? this.anyHost : (this.byHost.get(hostname(host)) ?? this.anyHost);
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
