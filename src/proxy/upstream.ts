import { connect as netConnect } from 'node:net';
import type { Logger } from 'pino';
import type { HealthCheckSpec, ProxyInstanceStatus, RouteInstance } from '../core/protocol.js';
import { HealthCheck, UpstreamPool } from './client.js';
import { Histogram } from './metrics.js';
import type { Route } from './routing.js';

/** What an upstream needs from the proxy that owns it. */
export interface UpstreamOwner {
  readonly logger: Logger;
  readonly connectTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  /** An instance's up/drained flag flipped: the proxy coalesces these into one report change. */
  upstreamChanged(): void;
}

/** A long-lived connection through an instance (a WebSocket) that can be closed gracefully. */
export interface Tunnel {
  /** The instance is draining: close gracefully after the service's WebSocket drain timeout. */
  drainAfter(ms: number): void;
  /** Close now (proxy shutdown). */
  destroy(): void;
}

export type InstanceRouteState = RouteInstance['state'];

/** A request waiting on an instance (a Forward) that can be moved off it when it goes down. */
export interface Abandonable {
  abandon(): void;
}

export function originOf(address: string, port: number): string {
  const host = address.includes(':') && !address.startsWith('[') ? `[${address}]` : address;
  return `http://${host}:${port}`;
}

/**
 * One instance as the proxy sees it: its keep-alive pool, its health (active checks plus passive
 * ejection), its in-flight count (requests and WebSockets), its balancing weight with slow start, its
 * drain, and its metrics. Instances are matched by id across snapshots, so an Upstream lives as long as
 * its id is in the snapshot (with the same address and port).
 */
export class Upstream {
  readonly id: string;
  readonly origin: string;
  readonly address: string;
  readonly port: number;
  state: InstanceRouteState;
  health: HealthCheckSpec;
  /** The service whose policy (ejection, slow start, WebSocket drain) applies; first one listing it. */
  route: Route | null = null;
  /** Active health view (rise/fall). */
  healthy = true;
  /** healthy && not ejected: what the report calls `up`. */
  up = true;
  /** up && state === 'ready' && not removed: the one flag the balancer reads per request. */
  routable: boolean;
  inflight = 0;
  /** Requests waiting for this instance's answer (not WebSockets). */
  private readonly waiting = new Set<Abandonable>();
  /** Draining (or removed), in-flight 0 and the pool to it closed. */
  drained = false;
  /** Gone from the snapshot: closes once its in-flight requests finished, then is forgotten. */
  removed = false;
  /** null while the pool is closed or closing (drained / removed). */
  pool: UpstreamPool | null = null;

  // balancing
  weight: number;
  /** performance.now() when the slow-start ramp ends; 0 when not ramping. */
  rampUntil = 0;
  /** Smooth weighted round-robin state. */
  current = 0;

  // passive ejection
  ejectedUntil = 0;
  private ejectTimer: NodeJS.Timeout | null = null;
  private ejections = 0;
  private lastReturn = 0;
  private consecConnect = 0;
  private consec5xx = 0;

  // metrics (read by the exposition)
  readonly byClass = [0, 0, 0, 0, 0];
  readonly latency = new Histogram();
  connectErrors = 0;
  ejectionsTotal = 0;
  websockets = 0;
  tunnels: Set<Tunnel> | null = null;

  private readonly owner: UpstreamOwner;
  private passes = 0;
  private failures = 0;
  private timer: NodeJS.Timeout | null = null;
  private checking = false;
  /** Bumped whenever the pool is closed or re-opened, so a late close() callback can tell it is stale. */
  private poolGen = 0;
  private closing: Promise<void> | null = null;

  constructor(owner: UpstreamOwner, inst: RouteInstance, health: HealthCheckSpec) {
    this.owner = owner;
    this.id = inst.id;
    this.address = inst.address;
    this.port = inst.port;
    this.origin = originOf(inst.address, inst.port);
    this.state = inst.state;
    this.health = health;
    this.weight = weightOf(inst);
    this.routable = inst.state === 'ready';
    if (inst.state === 'ready') {
      this.openPool();
      this.scheduleCheck(0);
    } else {
      // Arrives already draining (e.g. a proxy started mid-deploy): nothing to drain.
      this.drained = true;
    }
  }

  status(): ProxyInstanceStatus {
    const c = this.byClass;
    return {
      id: this.id,
      up: this.up,
      inflight: this.inflight,
      drained: this.drained,
      // What the deploy analysis compares releases by (requests, 5xx, latency buckets).
      requests: c[0]! + c[1]! + c[2]! + c[3]! + c[4]!,
      failed: c[4]!,
      latency: Array.from(this.latency.counts),
    };
  }

  /** Slow start of a new instance: called once its route is known. */
  startRamp(): void {
    const ms = this.route?.slowStartMs ?? 0;
    this.rampUntil = ms > 0 ? performance.now() + ms : 0;
  }

  /** The weight the balancer uses now: ramps from 10 % to 100 % over slowStartMs. */
  effectiveWeight(now: number): number {
    if (now >= this.rampUntil) {
      this.rampUntil = 0;
      return this.weight;
    }
    const ms = this.route?.slowStartMs ?? 0;
    const f = ms <= 0 ? 1 : 1 - (this.rampUntil - now) / ms;
    return this.weight * Math.max(f, 0.1);
  }

  /** A later snapshot for the same id (same origin). */
  update(inst: RouteInstance, health: HealthCheckSpec): void {
    const state = inst.state;
    this.weight = weightOf(inst);
    const healthChanged =
      health.path !== this.health.path ||
      health.intervalMs !== this.health.intervalMs ||
      health.timeoutMs !== this.health.timeoutMs ||
      health.type !== this.health.type;
    this.health = health;
    if (state === this.state) {
      if (healthChanged && state === 'ready') {
        this.stopChecks();
        this.scheduleCheck(0);
      }
      return;
    }
    const was = this.state;
    this.state = state;
    if (state !== 'ready') {
      if (was === 'ready') {
        this.routable = false;
        this.stopChecks();
        this.drainTunnels();
        this.maybeClose();
      }
      return;
    }
    // Back to ready (a rollback before the app was stopped, or the end of maintenance): reopen.
    if (this.pool === null) this.openPool();
    if (this.drained) {
      this.drained = false;
      this.owner.upstreamChanged();
    }
    this.routable = this.up;
    this.startRamp();
    this.scheduleCheck(0);
  }

  /** Gone from the snapshot: no new requests; close after the in-flight ones. */
  remove(): void {
    this.removed = true;
    this.routable = false;
    this.stopChecks();
    this.clearEjection();
    this.drainTunnels();
    this.maybeClose();
  }

  track(f: Abandonable): void {
    this.waiting.add(f);
  }

  untrack(f: Abandonable): void {
    this.waiting.delete(f);
  }

  /** Per-request accounting, called when an attempt on this instance ends. */
  release(): void {
    if (--this.inflight === 0 && !this.routable && (this.removed || this.state !== 'ready')) {
      this.maybeClose();
    }
  }

  addTunnel(t: Tunnel): void {
    if (this.tunnels === null) this.tunnels = new Set();
    this.tunnels.add(t);
    this.websockets++;
    this.inflight++;
  }

  removeTunnel(t: Tunnel): void {
    if (this.tunnels?.delete(t)) {
      this.websockets--;
      this.release();
    }
  }

  // ---- passive ejection -------------------------------------------------------------------------

  /** A connection to it could not be made. */
  connectFailed(err: Error): void {
    this.connectErrors++;
    const n = this.route?.outlier.consecutiveConnectFailures ?? 1;
    if (n > 0 && ++this.consecConnect >= n) this.eject(`connect failure: ${errCode(err)}`);
  }

  /** An answer arrived (the status line). */
  answered(status: number): void {
    this.consecConnect = 0;
    if (status >= 500) {
      const n = this.route?.outlier.consecutive5xx ?? 5;
      if (n > 0 && ++this.consec5xx >= n) this.eject(`${n} consecutive 5xx`);
    } else this.consec5xx = 0;
  }

  /** Ejects for a time that doubles with repeats, unless too many of the service are ejected already. */
  eject(reason: string): void {
    this.consecConnect = 0;
    this.consec5xx = 0;
    if (this.ejectedUntil !== 0 || this.removed) return;
    const route = this.route;
    const o = route?.outlier;
    if (route !== null && o !== undefined) {
      let ejected = 0;
      for (const u of route.instances) if (u.ejectedUntil !== 0) ejected++;
      const n = route.instances.length;
      if (ejected > 0 && (ejected + 1) * 100 > o.maxEjectionPercent * n) {
        this.owner.logger.warn(
          { instance: this.id, service: route.name, ejected, of: n, reason },
          'proxy: ejection skipped (maxEjectionPercent reached)',
        );
        return;
      }
    }
    const base = o?.baseEjectionMs ?? 2000;
    const max = o?.maxEjectionMs ?? 60_000;
    const now = Date.now();
    if (this.lastReturn !== 0 && now - this.lastReturn > max) this.ejections = 0;
    this.ejections++;
    const ms = Math.min(max, base * 2 ** Math.min(this.ejections - 1, 20));
    this.ejectedUntil = now + ms;
    this.ejectionsTotal++;
    this.ejectTimer = setTimeout(endEjection, ms, this);
    this.ejectTimer.unref();
    this.owner.logger.warn(
      { instance: this.id, origin: this.origin, service: route?.name, reason, ejectionMs: ms },
      'proxy: instance ejected',
    );
    this.recompute();
    // Watch it closely while it is out.
    this.stopChecks();
    this.scheduleCheck(this.fastInterval());
  }

  /** @internal the ejection time is over. */
  endEjection(): void {
    this.ejectTimer = null;
    if (this.ejectedUntil === 0) return;
    this.ejectedUntil = 0;
    this.lastReturn = Date.now();
    this.owner.logger.info({ instance: this.id, origin: this.origin }, 'proxy: ejection ended');
    this.recompute();
  }

  private clearEjection(): void {
    if (this.ejectTimer !== null) clearTimeout(this.ejectTimer);
    this.ejectTimer = null;
    this.ejectedUntil = 0;
  }

  /** Closes the pool and every tunnel at once (proxy shutdown). */
  async destroy(): Promise<void> {
    this.stopChecks();
    this.clearEjection();
    this.routable = false;
    this.removed = true;
    if (this.tunnels !== null) for (const t of [...this.tunnels]) t.destroy();
    const pool = this.pool;
    this.pool = null;
    this.poolGen++;
    const waits: Promise<unknown>[] = [];
    if (pool) waits.push(pool.destroy().catch(() => {}));
    if (this.closing) waits.push(this.closing);
    await Promise.all(waits);
  }

  private drainTunnels(): void {
    if (this.tunnels === null || this.tunnels.size === 0) return;
    const ms = this.route?.wsDrainTimeoutMs ?? 5000;
    for (const t of this.tunnels) t.drainAfter(ms);
  }

  private recompute(): void {
    const up = this.healthy && this.ejectedUntil === 0;
    const routable = up && this.state === 'ready' && !this.removed;
    if (routable && !this.routable) this.startRamp();
    this.routable = routable;
    if (up !== this.up) {
      this.up = up;
      this.owner.upstreamChanged();
      if (!up && this.waiting.size > 0) {
        // Down: what waits for its answer would wait for a dead host; move it (idempotent only).
        for (const f of [...this.waiting]) f.abandon();
      }
    }
  }

  private openPool(): void {
    this.poolGen++;
    this.pool = new UpstreamPool({
      host: this.address,
      port: this.port,
      connectTimeoutMs: this.owner.connectTimeoutMs,
      headersTimeoutMs: this.owner.headersTimeoutMs,
      bodyTimeoutMs: this.owner.bodyTimeoutMs,
    });
  }

  private maybeClose(): void {
    if (this.inflight !== 0 || this.pool === null) {
      if (this.inflight === 0 && this.pool === null && !this.drained && this.closing === null) {
        this.markDrained();
      }
      return;
    }
    const pool = this.pool;
    const gen = ++this.poolGen;
    this.pool = null;
    // close() lets a running health check finish, then closes the idle keep-alive sockets.
    const closing = pool.close().then(() => {
      if (this.closing === closing) this.closing = null;
      if (gen === this.poolGen && this.pool === null) this.markDrained();
    });
    this.closing = closing;
  }

  private markDrained(): void {
    if (this.drained) return;
    this.drained = true;
    this.owner.upstreamChanged();
  }

  // ---- active health checks ---------------------------------------------------------------------

  private stopChecks(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private scheduleCheck(delay: number): void {
    if (this.timer !== null || this.removed || this.state !== 'ready') return;
    this.timer = setTimeout(runCheck, delay, this);
    this.timer.unref();
  }

  private fastInterval(): number {
    const h = this.health;
    return Math.max(1, h.fastIntervalMs ?? Math.min(h.intervalMs, Math.max(100, h.intervalMs / 4)));
  }

  /** Changing state: between the first pass/failure and rise/fall, or ejected. */
  private get changing(): boolean {
    return this.passes > 0 || this.failures > 0 || this.ejectedUntil !== 0;
  }

  /** @internal called by the timer. */
  async check(): Promise<void> {
    this.timer = null;
    const pool = this.pool;
    if (pool === null || this.checking || this.removed || this.state !== 'ready') return;
    this.checking = true;
    const ok = this.health.type === 'tcp' ? await this.tcpCheck() : await this.httpCheck(pool);
    this.checking = false;
    if (this.removed || this.state !== 'ready') return;
    if (ok) {
      this.failures = 0;
      if (!this.healthy && ++this.passes >= this.health.rise) {
        this.passes = 0;
        this.owner.logger.info({ instance: this.id, origin: this.origin }, 'proxy: instance up');
        this.healthy = true;
        this.recompute();
      } else if (this.healthy) this.passes = 0;
    } else {
      this.passes = 0;
      if (this.healthy && ++this.failures >= this.health.fall) {
        this.failures = 0;
        this.owner.logger.warn({ instance: this.id, origin: this.origin }, 'proxy: instance down (health)');
        this.healthy = false;
        this.recompute();
      }
    }
    this.scheduleCheck(this.changing ? this.fastInterval() : Math.max(1, this.health.intervalMs));
  }

  private httpCheck(pool: UpstreamPool): Promise<boolean> {
    const { path, timeoutMs } = this.health;
    return new HealthCheck(pool, path, timeoutMs).run();
  }

  private tcpCheck(): Promise<boolean> {
    return new Promise((resolve) => {
      const host = this.address.startsWith('[') ? this.address.slice(1, -1) : this.address;
      const sock = netConnect({ host, port: this.port });
      const timer = setTimeout(() => done(false), this.health.timeoutMs);
      const done = (ok: boolean) => {
        clearTimeout(timer);
        sock.destroy();
        resolve(ok);
      };
      sock.once('connect', () => done(true));
      sock.once('error', () => done(false));
    });
  }
}

function weightOf(inst: RouteInstance): number {
  const w = inst.weight;
  return typeof w === 'number' && Number.isFinite(w) && w >= 0 ? w : 1;
}

function errCode(err: Error): string {
  return (err as { code?: string }).code ?? err.message;
}

function runCheck(u: Upstream): void {
  void u.check();
}

function endEjection(u: Upstream): void {
  u.endEjection();
}
