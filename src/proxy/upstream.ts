import type { Logger } from 'pino';
import { Pool } from 'undici';
import type { RouteState } from '../core/lifecycle.js';
import type { HealthCheckSpec, ProxyInstanceStatus, RouteInstance } from '../core/protocol.js';

/** What an upstream needs from the proxy that owns it. */
export interface UpstreamOwner {
  readonly logger: Logger;
  readonly connectTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  /** An instance's up/drained flag flipped: the proxy coalesces these into one report change. */
  upstreamChanged(): void;
}

export function originOf(address: string, port: number): string {
  const host = address.includes(':') && !address.startsWith('[') ? `[${address}]` : address;
  return `http://${host}:${port}`;
}

/**
 * One instance as the proxy sees it: its keep-alive pool, its health (active checks plus passive
 * ejection), its in-flight count, and its drain. Instances are matched by id across snapshots, so an
 * Upstream lives as long as its id is in the snapshot (with the same address and port).
 */
export class Upstream {
  readonly id: string;
  readonly origin: string;
  state: RouteState;
  health: HealthCheckSpec;
  /** The proxy's health view: active checks (rise/fall) plus passive ejection. */
  up = true;
  /** up && state === 'ready' && not removed: the one flag the balancer reads per request. */
  routable: boolean;
  inflight = 0;
  /** Draining (or removed), in-flight 0 and the pool to it closed. */
  drained = false;
  /** Gone from the snapshot: closes once its in-flight requests finished, then is forgotten. */
  removed = false;
  /** null while the pool is closed or closing (drained / removed). */
  pool: Pool | null = null;

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
    this.origin = originOf(inst.address, inst.port);
    this.state = inst.state;
    this.health = health;
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
    return { id: this.id, up: this.up, inflight: this.inflight, drained: this.drained };
  }

  /** A later snapshot for the same id (same origin). */
  update(state: RouteState, health: HealthCheckSpec): void {
    const healthChanged =
      health.path !== this.health.path ||
      health.intervalMs !== this.health.intervalMs ||
      health.timeoutMs !== this.health.timeoutMs;
    this.health = health;
    if (state === this.state) {
      if (healthChanged && state === 'ready') {
        this.stopChecks();
        this.scheduleCheck(0);
      }
      return;
    }
    this.state = state;
    if (state === 'draining') {
      this.routable = false;
      this.stopChecks();
      this.maybeClose();
    } else {
      // Back to ready (a deploy rolled back before the app was stopped): reopen.
      if (this.pool === null) this.openPool();
      if (this.drained) {
        this.drained = false;
        this.owner.upstreamChanged();
      }
      this.routable = this.up;
      this.scheduleCheck(0);
    }
  }

  /** Gone from the snapshot: no new requests; close after the in-flight ones. */
  remove(): void {
    this.removed = true;
    this.routable = false;
    this.stopChecks();
    this.maybeClose();
  }

  /** Per-request accounting, called when an attempt on this instance ends. */
  release(): void {
    if (--this.inflight === 0 && !this.routable && (this.removed || this.state === 'draining')) {
      this.maybeClose();
    }
  }

  /** Passive ejection: a connection to it could not be made. Active checks bring it back (rise). */
  eject(err: Error): void {
    this.passes = 0;
    if (!this.up) return;
    this.owner.logger.warn(
      { instance: this.id, origin: this.origin, err: (err as { code?: string }).code ?? err.message },
      'proxy: instance ejected (connect failure)',
    );
    this.setUp(false);
  }

  /** Closes the pool at once (proxy shutdown). */
  async destroy(): Promise<void> {
    this.stopChecks();
    this.routable = false;
    this.removed = true;
    const pool = this.pool;
    this.pool = null;
    this.poolGen++;
    const waits: Promise<unknown>[] = [];
    if (pool) waits.push(pool.destroy().catch(() => {}));
    if (this.closing) waits.push(this.closing);
    await Promise.all(waits);
  }

  private setUp(up: boolean): void {
    if (this.up === up) return;
    this.up = up;
    this.routable = up && this.state === 'ready' && !this.removed;
    this.owner.upstreamChanged();
  }

  private openPool(): void {
    this.poolGen++;
    this.pool = new Pool(this.origin, {
      connections: null,
      pipelining: 1,
      connect: { timeout: this.owner.connectTimeoutMs },
      headersTimeout: this.owner.headersTimeoutMs,
      bodyTimeout: this.owner.bodyTimeoutMs,
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
    const closing = pool
      .close()
      .catch(() => pool.destroy())
      .catch(() => {})
      .then(() => {
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

  /** @internal called by the timer. */
  async check(): Promise<void> {
    this.timer = null;
    const pool = this.pool;
    if (pool === null || this.checking || this.removed || this.state !== 'ready') return;
    this.checking = true;
    const { path, timeoutMs } = this.health;
    let ok = false;
    try {
      const res = await pool.request({
        path,
        method: 'GET',
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.body.dump();
      ok = res.statusCode >= 200 && res.statusCode < 400;
    } catch {
      ok = false;
    }
    this.checking = false;
    if (this.removed || this.state !== 'ready') return;
    if (ok) {
      this.failures = 0;
      if (!this.up && ++this.passes >= this.health.rise) {
        this.passes = 0;
        this.owner.logger.info({ instance: this.id, origin: this.origin }, 'proxy: instance up');
        this.setUp(true);
      }
    } else {
      this.passes = 0;
      if (this.up && ++this.failures >= this.health.fall) {
        this.failures = 0;
        this.owner.logger.warn({ instance: this.id, origin: this.origin }, 'proxy: instance down (health)');
        this.setUp(false);
      }
    }
    this.scheduleCheck(Math.max(1, this.health.intervalMs));
  }
}

function runCheck(u: Upstream): void {
  void u.check();
}
