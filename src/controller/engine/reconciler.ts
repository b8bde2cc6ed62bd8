import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { NinesError } from '../../core/errors.js';
import { fleetSpec } from '../../core/fleet-config.js';
import type { Fleet } from '../fleet.js';
import { type FleetState, loadFleetState, setHostAdminState } from '../fleet-state.js';
import type { Hub } from '../hub.js';
import type { InstanceRecord, ServiceRecord, Store } from '../store/types.js';
import { clampDesired, isNoop, planHeal, rescheduleDelayMs } from './heal.js';
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
/** Signalled on the hub when a service's spec changed (API, autoscaler): the reconciler looks at once. */
export const SERVICES_CHANGED = 'services';

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
  /** Per service: consecutive instances its agents gave up on, and the hosts they failed on. */
  private readonly failures = new Map<string, { count: number; at: number; hosts: Set<string> }>();
  private unsubscribe: (() => void) | undefined;
  /** A service changed since the current pass began; `lastPassCut`: the previous pass stopped early. */
  private changed = false;
  private lastPassCut = false;
  /** Each service's `updatedAt` as the last tick saw it: changed services are healed first. */
  private readonly seenUpdatedAt = new Map<string, number>();

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
    // A change signalled while a tick runs (a tick at a thousand hosts takes a while) must not wait
    // for the next interval: it is remembered and the next tick starts as soon as this one ends.
    this.changed = false;
    this.unsubscribe?.();
    this.unsubscribe = this.hub.subscribe(SERVICES_CHANGED, () => {
      this.changed = true;
    });
    const loop = () => {
      this.changed = false;
      this.running = this.tick()
        .catch((err) => this.log.error({ err }, 'reconcile tick failed'))
        .finally(() => {
          if (this.abort.signal.aborted) return;
          if (this.changed) {
            setImmediate(loop);
            return;
          }
          // A changed service (its instance count) is acted on at once, not at the next interval:
          // desired-state changes reach the agents within the propagation target (bench/fleet).
          void this.hub.waitSignal(SERVICES_CHANGED, this.intervalMs, this.abort.signal).then(() => {
            if (!this.abort.signal.aborted) loop();
          });
        });
    };
    this.timer = setTimeout(loop, this.intervalMs);
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.abort.abort(new Error('controller stopping'));
    clearTimeout(this.timer);
    await this.running;
  }

  /** One pass over every service; exposed for tests. */
  async tick(): Promise<void> {
    const hosts = await this.store.listHosts();
    const now = Date.now();
    const inGrace = now - this.startedAt < this.fleet.hostDownAfterMs;
    // A new leader (or a restarted controller) first hears from every host: agents need a moment to
    // fail over to it, and a heartbeat it saw as a follower says nothing about now.
    if (
      inGrace &&
      hosts.some((h) => h.revokedAt === null && (this.hub.agents.get(h.id)?.at ?? 0) < this.startedAt)
    )
      return;
    const state = await loadFleetState(this.store, this.fleet.hostDownAfterMs, now, hosts);
    // Heartbeats as this controller saw them, or as stored (another controller, or before a restart).
    const revoked = new Set(hosts.filter((h) => h.revokedAt !== null).map((h) => h.id));
    const hostsUp = new Set(
      state.hosts
        .filter(
          (h) =>
            h.state !== 'down' ||
            ((this.hub.agents.get(h.id)?.at ?? 0) >= now - this.fleet.hostDownAfterMs && !revoked.has(h.id)),
        )
        .map((h) => h.id),
    );
    const moving = new Set(state.hosts.filter((h) => h.state === 'draining').map((h) => h.id));
    for (const svc of changedFirst(await this.store.listServices(), this.seenUpdatedAt)) {
      if (this.abort.signal.aborted) return;
      // A service changed while this pass runs: start again with it first instead of healing every
      // other service before it. At most every other pass stops early, so no service waits long.
      if (this.changed && !this.lastPassCut) {
        this.lastPassCut = true;
        return;
      }
      this.seenUpdatedAt.set(svc.name, svc.updatedAt);
      if (!svc.currentRelease || svc.lockedBy) continue;
      if ((this.backoff.get(svc.name)?.until ?? 0) > now) continue;
      await this.heal(svc, svc.currentRelease, hostsUp, moving);
    }
    this.lastPassCut = false;
    await this.finishDrains(state);
  }

  /** A drained host (operator drain) with nothing left on it is cordoned: drained, kept out. */
  private async finishDrains(state: FleetState): Promise<void> {
    const draining = state.hosts.filter((h) => h.admin === 'draining');
    if (draining.length === 0) return;
    const instances = await this.store.listInstances();
    for (const h of draining) {
      if (instances.some((i) => i.hostId === h.id)) continue;
      await setHostAdminState(this.store, h, 'cordoned', 'reconciler');
      await this.store.appendEvent({
        at: Date.now(),
        kind: 'host.drained',
        subject: h.id,
        message: `host ${h.name} is drained (no instances left) and stays cordoned`,
        data: null,
      });
    }
  }

  private async heal(
    svc: ServiceRecord,
    currentRelease: string,
    hostsUp: ReadonlySet<string>,
    moving: ReadonlySet<string>,
  ): Promise<void> {
    const instances = await this.store.listInstances({ service: svc.name });
    const { scaling, placement } = fleetSpec(svc.spec);
    const desired = clampDesired(svc.spec.instances, scaling);
    const plan = planHeal({
      desired,
      currentRelease,
      hostsUp,
      moving,
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
    const failedBefore = this.failures.get(svc.name);
    const ctx: OpContext = {
      deployId: null,
      signal: this.abort.signal,
      event: async (type, message, data) => this.log.debug({ service: svc.name, type, ...data }, message),
      ...(failedBefore ? { avoid: failedBefore.hosts } : {}),
    };
    const note = (kind: string, message: string, data: Record<string, unknown> | null = null) =>
      this.store.appendEvent({ at: Date.now(), kind, subject: svc.name, message, data });
    try {
      let rescheduleIn = 0;
      for (const f of plan.forget) {
        const rec = instances.find((i) => i.id === f.id);
        if (!rec) continue;
        await this.fleet.removeInstance(rec);
        if (f.failed) {
          // Failures long apart do not add up: a release that crashes once a day is not crash-looping.
          const prev = this.failures.get(svc.name);
          const cur =
            prev && Date.now() - prev.at < 600_000
              ? { count: prev.count + 1, at: Date.now(), hosts: prev.hosts }
              : { count: 1, at: Date.now(), hosts: new Set<string>() };
          cur.hosts.add(rec.hostId);
          this.failures.set(svc.name, cur);
          rescheduleIn = Math.max(rescheduleIn, rescheduleDelayMs(cur.count));
        }
        await note('instance.lost', `${svc.name}: instance ${f.id} is lost: ${f.reason}; replacing it`, {
          instance: f.id,
          host: rec.hostId,
        });
      }
      if (rescheduleIn > 0) {
        this.backoff.set(svc.name, { until: Date.now() + rescheduleIn, delayMs: rescheduleIn });
        await note(
          'service.reschedule-backoff',
          `${svc.name}: instances keep failing; rescheduling in ${rescheduleIn} ms on another host`,
        );
        return;
      }
      await this.moveAll(ctx, svc.name, release, plan.move, instances, placement.minAvailable ?? desired);
      const have = desired - plan.start + plan.stop.length;
      if (plan.start > 0 || plan.stop.length > 0) {
        await note(
          'service.healing',
          `${svc.name}: ${have} instance(s) serving, ${desired} wanted` +
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
        // Healthy again: a later failure starts the reschedule backoff over.
        const f = this.failures.get(svc.name);
        if (f && created.length > 0 && plan.forget.length === 0) this.failures.delete(svc.name);
      }
    } catch (err) {
      const prev = this.backoff.get(svc.name)?.delayMs ?? 1000;
      const delayMs = Math.min(prev * 2, 60_000);
      this.backoff.set(svc.name, { until: Date.now() + delayMs, delayMs });
      await note(
        'service.heal-failed',
        `${svc.name}: healing failed (${(err as Error).message}); next try in ${delayMs} ms`,
      );
    } finally {
      await this.store.releaseDeployLock(svc.name, holder);
    }
  }

  /**
   * Move instances off draining hosts one at a time: a replacement starts elsewhere and is routed
   * before the old one is drained and stopped, so serving capacity never dips. With no room anywhere,
   * an instance is stopped without replacement only while the service keeps `minAvailable` serving;
   * otherwise it stays and the drain waits (NINES_E_DISRUPTION_BUDGET in the event log).
   */
  private async moveAll(
    ctx: OpContext,
    service: string,
    release: NonNullable<Awaited<ReturnType<Store['getRelease']>>>,
    ids: readonly string[],
    instances: readonly InstanceRecord[],
    minAvailable: number,
  ): Promise<void> {
    // A worker is never routed: one that runs is one that serves.
    let serving = instances.filter(
      (i) => i.desired === 'running' && (i.route === 'ready' || release.spec.kind === 'worker'),
    ).length;
    for (const id of ids) {
      if (this.abort.signal.aborted) return;
      const old = instances.find((i) => i.id === id);
      if (!old) continue;
      const created: InstanceRecord[] = [];
      try {
        await this.ops.start(ctx, release, created);
      } catch (err) {
        for (const rec of created) await this.ops.stop(ctx, rec).catch(() => {});
        if ((err as { code?: string }).code === 'NINES_E_NO_CAPACITY' && serving - 1 >= minAvailable) {
          await this.ops.stop(ctx, old);
          serving--;
          continue;
        }
        if ((err as { code?: string }).code === 'NINES_E_NO_CAPACITY') {
          throw new NinesError(
            'NINES_E_DISRUPTION_BUDGET',
            `cannot move ${id} of ${service}: ${(err as Error).message}; stopping it would leave ` +
              `fewer than minAvailable (${minAvailable}) serving`,
          );
        }
        throw new Error(`cannot move ${id} of ${service}: ${(err as Error).message}`);
      }
      await this.ops.stop(ctx, old);
      await this.store.appendEvent({
        at: Date.now(),
        kind: 'instance.moved',
        subject: service,
        message: `${service}: ${id} moved off draining host ${old.hostId} to ${created[0]?.hostId ?? '?'}`,
        data: { instance: id, to: created[0]?.id ?? null },
      });
    }
  }
}

/**
 * Services changed since a pass last looked at them (`seen`: name → updatedAt) first, the rest in
 * store order: at a thousand hosts each service's pass reads its instances, and a scaled service
 * should not wait for every other service's (bench/fleet propagation).
 */
export function changedFirst(
  services: readonly ServiceRecord[],
  seen: ReadonlyMap<string, number>,
): ServiceRecord[] {
  const changed: ServiceRecord[] = [];
  const rest: ServiceRecord[] = [];
  for (const s of services) (seen.get(s.name) === s.updatedAt ? rest : changed).push(s);
  return [...changed, ...rest];
}
