import type { Logger } from 'pino';
import type { ObservedInstance } from '../../core/protocol.js';
import type { Fleet } from '../fleet.js';
import { agentTopic, type Hub, type ProxyView, WaitTimeout } from '../hub.js';
import type { InstanceRecord, ReleaseRecord, Store } from '../store/types.js';

/** Raised when an instance operation fails in a way a human can act on; the message says how. */
export class OperationFailure extends Error {}

/** How long the proxies get to confirm a routing change; they apply snapshots in milliseconds. */
const PROXY_ACK_MS = 10_000;

/** Who is acting (a deploy, the reconciler) and where its step events go. */
export interface OpContext {
  deployId: string | null;
  signal: AbortSignal;
  event(type: string, message: string, data?: Record<string, unknown>): Promise<void>;
  /** Hosts a new instance should not go to unless nothing else can take it (where it just failed). */
  avoid?: ReadonlySet<string>;
  /** New instances go to this zone only (zone-by-zone rolling). */
  zone?: string;
  /** New instances go to this host only (in-place reload). */
  hostId?: string;
}

/**
 * Starting and stopping one instance, the two operations every deploy strategy and the reconciler are
 * made of. Starting: place it, wait for its agent to report it healthy (rise), route it, wait for every
 * live proxy to have it up. Stopping is the drain sequence that makes an app's own shutdown irrelevant
 * to its users: stop routing, wait until every proxy reports it drained (no request in flight, pooled
 * connections closed), only then SIGTERM (SIGKILL after drainTimeout), wait for the exit, forget it.
 */
export class InstanceOps {
  private readonly store: Store;
  private readonly hub: Hub;
  private readonly fleet: Fleet;
  private readonly log: Logger;

  constructor(deps: { store: Store; hub: Hub; fleet: Fleet; logger: Logger }) {
    this.store = deps.store;
    this.hub = deps.hub;
    this.fleet = deps.fleet;
    this.log = deps.logger;
  }

  /** Start a new instance of `release`; `created` receives it as soon as it exists (for cleanup). */
  async start(
    ctx: OpContext,
    release: ReleaseRecord,
    created?: InstanceRecord[],
    opts: { route?: boolean } = {},
  ): Promise<InstanceRecord> {
    const spec = release.spec;
    const rec = await this.fleet.createInstance(release, ctx.deployId, ctx.avoid, {
      ...(ctx.zone !== undefined ? { zone: ctx.zone } : {}),
      ...(ctx.hostId !== undefined ? { hostId: ctx.hostId } : {}),
    });
    created?.push(rec);
    await ctx.event('instance.starting', `${rec.id} (${release.version}) starting on ${rec.hostId}`, {
      instance: rec.id,
      host: rec.hostId,
    });
    let last: ObservedInstance | undefined;
    try {
      await this.hub.waitUntil(
        `${rec.id} healthy`,
        () => {
          const o = this.hub.observed(rec.hostId, rec.id);
          if (o) last = o;
          if (o?.state === 'failed') {
            throw new OperationFailure(
              `instance ${rec.id} failed to start: ${o.message ?? 'no reason given'}`,
            );
          }
          return o && o.state === 'running' && o.healthy && o.port !== undefined ? o : undefined;
        },
        spec.healthyDeadline,
        ctx.signal,
        agentTopic(rec.hostId),
      );
    } catch (err) {
      if (err instanceof WaitTimeout) {
        const h = spec.health;
        throw new OperationFailure(
          `instance ${rec.id} of ${release.version} did not pass its health check (GET ${h.path}, ` +
            `${h.rise} passes needed) within the healthy deadline of ${spec.healthyDeadline} ms` +
            (last
              ? ` — last seen ${last.state}, restarts ${last.restarts}${last.message ? `, ${last.message}` : ''}`
              : ''),
        );
      }
      throw err;
    }
    if (spec.kind === 'worker') {
      await ctx.event('instance.healthy', `${rec.id} (worker) is up`, { instance: rec.id });
      return rec;
    }
    await ctx.event('instance.healthy', `${rec.id} passed its health check`, { instance: rec.id });
    if (opts.route !== false) await this.route(ctx, rec);
    return rec;
  }

  /** Route an instance its agent reports healthy, and wait until every live proxy has it up. */
  async route(ctx: OpContext, rec: InstanceRecord): Promise<void> {
    const version = await this.fleet.setRoute(rec, 'ready');
    rec.route = 'ready';
    await this.waitProxies(
      `proxies route to ${rec.id}`,
      version,
      (p) => p.instances.get(rec.id)?.up === true,
      ctx.signal,
    );
    await ctx.event('instance.routed', `${rec.id} is taking traffic`, { instance: rec.id });
  }

  /**
   * The in-place switch on one host: `fresh` (healthy, not routed yet) in and `old` draining, in one
   * routing snapshot, so every proxy flips both at once; waits until every live proxy has the new ones up.
   */
  async switchRoutes(ctx: OpContext, fresh: InstanceRecord[], old: InstanceRecord[]): Promise<void> {
    const version = await this.fleet.setRoutes([
      ...fresh.map((i) => [i, 'ready'] as const),
      ...old.map((i) => [i, 'draining'] as const),
    ]);
    await this.waitProxies(
      `proxies switch to ${fresh.map((i) => i.id).join(', ')}`,
      version,
      (p) => fresh.every((i) => p.instances.get(i.id)?.up === true),
      ctx.signal,
    );
    for (const i of fresh)
      await ctx.event('instance.routed', `${i.id} is taking traffic`, { instance: i.id });
  }

  /** The drain sequence. Safe for apps that exit at once on SIGTERM: by then nothing is in flight. */
  /**
   * Drain `rec` at the proxies, SIGTERM it, wait until its agent says it stopped, forget it.
   * `onStopSent` runs once it is out of rotation and told to stop: a rolling deploy may count it gone
   * from there on (Kubernetes does not count terminating pods either) and start the next batch.
   */
  async stop(ctx: OpContext, rec: InstanceRecord, onStopSent?: () => void): Promise<void> {
    const release = await this.store.getRelease(rec.service, rec.releaseVersion);
    const drainMs = release?.spec.drainTimeout ?? 10_000;
    if (rec.route !== 'none') {
      const version = await this.fleet.setRoute(rec, 'draining');
      rec.route = 'draining';
      await ctx.event('instance.draining', `${rec.id} (${rec.releaseVersion}) draining`, {
        instance: rec.id,
      });
      try {
        await this.waitProxies(
          `proxies drain ${rec.id}`,
          version,
          (p) => {
            const s = p.instances.get(rec.id);
            return s === undefined || s.drained;
          },
          ctx.signal,
          drainMs,
        );
        await ctx.event('instance.drained', `${rec.id} has no request in flight`, { instance: rec.id });
      } catch (err) {
        if (!(err instanceof WaitTimeout)) throw err;
        await ctx.event('instance.drain-timeout', `${rec.id} still busy after ${drainMs} ms; stopping`, {
          instance: rec.id,
        });
      }
    }
    if (rec.desired !== 'stopped') {
      await this.fleet.setDesired(rec, 'stopped');
      rec.desired = 'stopped';
    }
    await ctx.event('instance.stopping', `${rec.id} sent SIGTERM`, { instance: rec.id });
    onStopSent?.();
    try {
      await this.hub.waitUntil(
        `${rec.id} stopped`,
        () => {
          const o = this.hub.observed(rec.hostId, rec.id);
          return o === undefined || o.state === 'stopped' || o.state === 'failed' ? true : undefined;
        },
        drainMs + 10_000,
        ctx.signal,
        agentTopic(rec.hostId),
      );
    } catch (err) {
      if (!(err instanceof WaitTimeout)) throw err;
      this.log.warn({ instance: rec.id }, 'agent did not confirm the stop; forgetting the instance anyway');
    }
    await this.fleet.removeInstance(rec);
    await ctx.event('instance.stopped', `${rec.id} stopped`, { instance: rec.id });
  }

  private async waitProxies(
    what: string,
    version: number,
    ok: (p: ProxyView) => boolean,
    signal: AbortSignal,
    ms = PROXY_ACK_MS,
  ): Promise<void> {
    await this.hub.waitUntil(
      what,
      () => (this.hub.liveProxies().every((p) => p.appliedVersion >= version && ok(p)) ? true : undefined),
      ms,
      signal,
    );
  }
}
