import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Fleet } from '../fleet.js';
import type { Hub } from '../hub.js';
import type { InstanceRecord, ServiceRecord, Store } from '../store/types.js';
import { isNoop, planHeal } from './heal.js';
import type { InstanceOps, OpContext } from './ops.js';

/**
 * Self-healing: every `intervalMs`, each service that is not being deployed is brought back to its
 * instance count (`planHeal`): lost instances are forgotten and replaced, a surplus is drained and
 * stopped, a shortfall started. The reconciler takes the service's deploy lock while it acts, so it
 * never races a deploy.
 *
 * After a controller start it waits until every known host has reported (or `hostDownAfterMs` has
 * passed): a controller that comes back re-learns the fleet first and changes nothing that is healthy.
 */
export class Reconciler {
  private readonly store: Store;
  private readonly hub: Hub;
  private readonly fleet: Fleet;
  private readonly ops: InstanceOps;
  private readonly log: Logger;
  private readonly intervalMs: number;
  private startedAt = Date.now();
  private abort = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** Per service: no healing before this time (backoff after a failed attempt). */
  private readonly backoff = new Map<string, { until: number; delayMs: number }>();

  constructor(deps: {
    store: Store;
    hub: Hub;
    fleet: Fleet;
    ops: InstanceOps;
    logger: Logger;
    intervalMs?: number;
  }) {
    this.store = deps.store;
    this.hub = deps.hub;
    this.fleet = deps.fleet;
    this.ops = deps.ops;
    this.log = deps.logger;
    this.intervalMs = deps.intervalMs ?? 1000;
  }

  /** Starts the loop; after a stop() it can start again (a controller that becomes leader again). */
  start(): void {
    this.startedAt = Date.now();
    this.abort = new AbortController();
    this.backoff.clear();
    const loop = () => {
      this.running = this.tick()
        .catch((err) => this.log.error({ err }, 'reconcile tick failed'))
        .finally(() => {
          if (!this.abort.signal.aborted) this.timer = setTimeout(loop, this.intervalMs);
        });
    };
    this.timer = setTimeout(loop, this.intervalMs);
  }

  async stop(): Promise<void> {
    this.abort.abort(new Error('controller stopping'));
    clearTimeout(this.timer);
    await this.running;
  }

  /** One pass over every service; exposed for tests. */
  async tick(): Promise<void> {
    const hosts = await this.store.listHosts();
    const now = Date.now();
    const inGrace = now - this.startedAt < this.fleet.hostDownAfterMs;
    if (inGrace && hosts.some((h) => !this.hub.agents.has(h.id))) return;
    const hostsUp = new Set(
      hosts
        .filter((h) => (this.hub.agents.get(h.id)?.at ?? 0) >= now - this.fleet.hostDownAfterMs)
        .map((h) => h.id),
    );
    for (const svc of await this.store.listServices()) {
      if (this.abort.signal.aborted) return;
      if (!svc.currentRelease || svc.lockedBy) continue;
      if ((this.backoff.get(svc.name)?.until ?? 0) > now) continue;
      await this.heal(svc, svc.currentRelease, hostsUp);
    }
  }

  private async heal(
    svc: ServiceRecord,
    currentRelease: string,
    hostsUp: ReadonlySet<string>,
  ): Promise<void> {
    const instances = await this.store.listInstances({ service: svc.name });
    const plan = planHeal({
      desired: svc.spec.instances,
      currentRelease,
      hostsUp,
      instances: instances.map((i) => {
        const o = this.hub.observed(i.hostId, i.id);
        return {
          id: i.id,
          releaseVersion: i.releaseVersion,
          hostId: i.hostId,
          desired: i.desired,
          route: i.route,
          state: o?.state,
          healthy: o?.healthy ?? false,
          createdAt: i.createdAt,
        };
      }),
    });
    if (isNoop(plan)) return;
    const release = await this.store.getRelease(svc.name, currentRelease);
    if (!release) return;
    const holder = `heal-${randomBytes(3).toString('hex')}`;
    const lock = await this.store.acquireDeployLock(svc.name, holder);
    if (!lock.ok) return;
    const ctx: OpContext = {
      deployId: null,
      signal: this.abort.signal,
      event: async (type, message, data) => this.log.debug({ service: svc.name, type, ...data }, message),
    };
    const note = (kind: string, message: string, data: Record<string, unknown> | null = null) =>
      this.store.appendEvent({ at: Date.now(), kind, subject: svc.name, message, data });
    try {
      for (const f of plan.forget) {
        const rec = instances.find((i) => i.id === f.id);
        if (!rec) continue;
        await this.fleet.removeInstance(rec);
        await note('instance.lost', `${svc.name}: instance ${f.id} is lost: ${f.reason}; replacing it`, {
          instance: f.id,
        });
      }
      const have = svc.spec.instances - plan.start + plan.stop.length;
      if (plan.start > 0 || plan.stop.length > 0) {
        await note(
          'service.healing',
          `${svc.name}: ${have} instance(s) serving, ${svc.spec.instances} wanted` +
            (plan.start ? `; starting ${plan.start}` : '') +
            (plan.stop.length ? `; stopping ${plan.stop.join(', ')}` : ''),
        );
      }
      const tasks: Promise<unknown>[] = [];
      const created: InstanceRecord[] = [];
      for (let k = 0; k < plan.start; k++) tasks.push(this.ops.start(ctx, release, created));
      for (const id of plan.stop) {
        const rec = instances.find((i) => i.id === id);
        if (rec) tasks.push(this.ops.stop(ctx, rec));
      }
      const failed = (await Promise.allSettled(tasks)).filter((r) => r.status === 'rejected');
      if (failed.length > 0) {
        // New instances that never took traffic go again; the next attempt starts fresh ones.
        for (const rec of created) if (rec.route === 'none') await this.ops.stop(ctx, rec).catch(() => {});
        const prev = this.backoff.get(svc.name)?.delayMs ?? 1000;
        const delayMs = Math.min(prev * 2, 60_000);
        this.backoff.set(svc.name, { until: Date.now() + delayMs, delayMs });
        const reason = String((failed[0] as PromiseRejectedResult).reason?.message ?? failed[0]);
        await note(
          'service.heal-failed',
          `${svc.name}: healing failed (${reason}); next try in ${delayMs} ms`,
        );
      } else {
        this.backoff.delete(svc.name);
      }
    } finally {
      await this.store.releaseDeployLock(svc.name, holder);
    }
  }
}
