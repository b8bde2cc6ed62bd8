import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { isNinesError, NinesError } from '../../core/errors.js';
import { deployLifecycle, transition } from '../../core/lifecycle.js';
import type { Fleet } from '../fleet.js';
import type { Hub } from '../hub.js';
import type { DeployKind, DeployRecord, InstanceRecord, ReleaseRecord, Store } from '../store/types.js';
import { type InstanceOps, type OpContext, OperationFailure } from './ops.js';
import { nextRollingStep, resolveRolling } from './plan.js';

/** A deploy in flight: how to stop it (controller going down), abort it (a person) or hold it. */
interface Control {
  deploy: DeployRecord;
  stop: AbortController;
  user: AbortController;
  abortedBy: string | null;
  paused: boolean;
  /** Wakes a paused deploy's checkpoint. */
  wake: (() => void) | null;
  done: Promise<void>;
  /** The proxies' counters for the service when the deploy (or its resumption) started. */
  baseline: Map<string, { requests: number; failed: number }>;
}

export interface CreateDeployOptions {
  kind?: DeployKind;
  createdBy: string;
}

/**
 * The deploy engine. Each deploy is a loop around the pure planner (`plan.ts`): ask what to start
 * and stop, do it, ask again. Starting an instance means: place it, wait for its agent to report it
 * healthy (rise), route it, wait for every live proxy to have it up. Stopping one is the drain
 * sequence that makes an app's own shutdown irrelevant to its users: stop routing, wait until every
 * proxy reports it drained (no request in flight, pooled connections closed), only then SIGTERM
 * (SIGKILL after drainTimeout), wait for the exit, forget it.
 */
export class DeployEngine {
  private readonly store: Store;
  private readonly hub: Hub;
  private readonly fleet: Fleet;
  private readonly log: Logger;
  private readonly ops: InstanceOps;
  private readonly running = new Map<string, Control>();

  constructor(deps: { store: Store; hub: Hub; fleet: Fleet; ops: InstanceOps; logger: Logger }) {
    this.store = deps.store;
    this.hub = deps.hub;
    this.fleet = deps.fleet;
    this.ops = deps.ops;
    this.log = deps.logger;
  }

  /** Validate, take the service's lock, record the deploy and start running it in the background. */
  async create(service: string, version: string, opts: CreateDeployOptions): Promise<DeployRecord> {
    const svc = await this.store.getService(service);
    if (!svc) throw new NinesError('NINES_E_SERVICE_NOT_FOUND', `no service named "${service}"`);
    const release = await this.store.getRelease(service, version);
    if (!release) {
      throw new NinesError('NINES_E_RELEASE_NOT_FOUND', `service "${service}" has no release "${version}"`);
    }
    const deploy: DeployRecord = {
      id: `d-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`,
      service,
      fromVersion: svc.currentRelease,
      toVersion: version,
      strategy: 'rolling',
      kind: opts.kind ?? 'deploy',
      state: 'pending',
      reason: null,
      createdBy: opts.createdBy,
      createdAt: Date.now(),
      startedAt: null,
      finishedAt: null,
      requests: null,
      failedRequests: null,
    };
    await this.store.transaction(async (tx) => {
      const lock = await tx.acquireDeployLock(service, deploy.id);
      if (!lock.ok) {
        const holder = await tx.getDeploy(lock.heldBy);
        if (lock.heldBy.startsWith('heal-')) {
          throw new NinesError(
            'NINES_E_DEPLOY_IN_PROGRESS',
            `service "${service}" is being healed by the reconciler (${lock.heldBy}); try again in a moment`,
            { heldBy: lock.heldBy },
          );
        }
        throw new NinesError(
          'NINES_E_DEPLOY_IN_PROGRESS',
          `service "${service}" is being deployed by ${lock.heldBy}` +
            (holder
              ? ` (${holder.fromVersion ?? '∅'} → ${holder.toVersion}, started by ${holder.createdBy})`
              : ''),
          { heldBy: lock.heldBy },
        );
      }
      await tx.insertDeploy(deploy);
    });
    await this.event(
      deploy.id,
      'deploy.created',
      `${opts.kind ?? 'deploy'} of ${service} ${version} by ${opts.createdBy}`,
      {
        from: deploy.fromVersion,
        to: version,
      },
    );
    this.launch(deploy, release, false);
    return deploy;
  }

  private launch(deploy: DeployRecord, release: ReleaseRecord, resumed: boolean): void {
    const ctl: Control = {
      deploy,
      stop: new AbortController(),
      user: new AbortController(),
      abortedBy: null,
      paused: deploy.state === 'paused',
      wake: null,
      done: Promise.resolve(),
      baseline: this.hub.serviceCounters(deploy.service),
    };
    this.running.set(deploy.id, ctl);
    ctl.done = this.run(ctl, release, resumed)
      .catch((err) => {
        // A stale leader's writes are refused (NINES_E_FENCED): the new leader resumes this deploy.
        this.log.warn({ deployId: deploy.id, err }, 'deploy left to the next leader');
      })
      .finally(() => this.running.delete(deploy.id));
  }

  /** Hold the deploy at its next step boundary (the step in flight finishes). */
  async pause(id: string, who: string): Promise<DeployRecord> {
    const ctl = await this.control(id);
    mustBe(ctl.deploy, 'running', 'paused');
    await this.store.updateDeploy(id, { state: transition(deployLifecycle, ctl.deploy.state, 'paused') });
    ctl.deploy.state = 'paused';
    ctl.paused = true;
    await this.event(
      id,
      'deploy.paused',
      `paused by ${who}; the step in flight finishes, no new step starts`,
    );
    return ctl.deploy;
  }

  async resume(id: string, who: string): Promise<DeployRecord> {
    const ctl = await this.control(id);
    mustBe(ctl.deploy, 'paused', 'resumed');
    await this.store.updateDeploy(id, { state: transition(deployLifecycle, ctl.deploy.state, 'running') });
    ctl.deploy.state = 'running';
    ctl.paused = false;
    ctl.wake?.();
    await this.event(id, 'deploy.continued', `resumed by ${who}`);
    return ctl.deploy;
  }

  /** Stop the deploy and revert: new instances drained and stopped, the old release back to count. */
  async abort(id: string, who: string): Promise<DeployRecord> {
    const ctl = await this.control(id);
    transition(deployLifecycle, ctl.deploy.state, 'failed');
    ctl.abortedBy = who;
    ctl.paused = false;
    ctl.user.abort(new OperationFailure(`aborted by ${who}`));
    ctl.wake?.();
    await this.event(id, 'deploy.aborting', `aborted by ${who}; reverting`);
    return ctl.deploy;
  }

  private async control(id: string): Promise<Control> {
    const ctl = this.running.get(id);
    if (ctl) return ctl;
    const d = await this.store.getDeploy(id);
    if (!d) throw new NinesError('NINES_E_DEPLOY_NOT_FOUND', `no deploy ${id}`);
    throw new NinesError(
      'NINES_E_INVALID_TRANSITION',
      `deploy ${id} is ${d.state}; only a running deploy can be controlled`,
      {
        state: d.state,
      },
    );
  }

  /** The newest release other than the current one whose deploy finished with every instance healthy. */
  async rollbackTarget(service: string): Promise<ReleaseRecord> {
    const svc = await this.store.getService(service);
    if (!svc) throw new NinesError('NINES_E_SERVICE_NOT_FOUND', `no service named "${service}"`);
    const releases = await this.store.listReleases(service);
    const target = releases.find((r) => r.stable && r.version !== svc.currentRelease);
    if (!target) {
      throw new NinesError(
        'NINES_E_NO_ROLLBACK_TARGET',
        `service "${service}" has no stable release other than ${svc.currentRelease ?? 'none'} to roll back to`,
      );
    }
    return target;
  }

  /** Wait for a running deploy to finish (tests, shutdown). */
  async settled(deployId: string): Promise<void> {
    await this.running.get(deployId)?.done;
  }

  /**
   * After a controller restart: instances whose stop was under way are forgotten (their agents finish
   * stopping them), and every deploy that was in flight resumes where the fleet actually is — the
   * planner works from observed counts, not from a saved step — once agents and proxies report again.
   */
  async recover(): Promise<void> {
    // A reconciler pass the previous controller (or leader) died in leaves its lock behind; nothing of
    // it runs any more, and the reconciler starts over from the fleet it sees.
    for (const svc of await this.store.listServices()) {
      if (svc.lockedBy?.startsWith('heal-')) await this.store.releaseDeployLock(svc.name, svc.lockedBy);
    }
    for (const i of await this.store.listInstances()) {
      if (i.desired === 'stopped') await this.fleet.removeInstance(i);
    }
    for (const d of await this.store.listActiveDeploys()) {
      const release = await this.store.getRelease(d.service, d.toVersion);
      if (!release) {
        await this.finish(d, 'failed', `release ${d.toVersion} no longer exists`);
        continue;
      }
      this.launch(d, release, d.state !== 'pending');
    }
  }

  async close(): Promise<void> {
    for (const r of this.running.values()) {
      r.stop.abort(new Error('controller stopping'));
      r.wake?.();
    }
    await Promise.allSettled([...this.running.values()].map((r) => r.done));
  }

  // ---- one deploy -------------------------------------------------------------------------------

  private async run(ctl: Control, release: ReleaseRecord, resumed: boolean): Promise<void> {
    const deploy = ctl.deploy;
    const t0 = deploy.startedAt ?? Date.now();
    const created: InstanceRecord[] = [];
    const event = (type: string, message: string, data?: Record<string, unknown>) =>
      this.event(deploy.id, type, message, data);
    const ctx: OpContext = {
      deployId: deploy.id,
      signal: AbortSignal.any([ctl.stop.signal, ctl.user.signal]),
      event,
    };
    const signal = ctl.stop.signal;
    const checkpoint = async () => {
      while (ctl.paused && !ctx.signal.aborted) {
        await new Promise<void>((wake) => {
          ctl.wake = wake;
        });
        ctl.wake = null;
      }
      ctx.signal.throwIfAborted();
    };
    try {
      if (resumed) {
        await this.settleAfterRestart(ctx, deploy, created);
      } else {
        await this.store.updateDeploy(deploy.id, {
          state: transition(deployLifecycle, deploy.state, 'running'),
          startedAt: t0,
        });
        deploy.state = 'running';
      }
      await checkpoint();
      await this.roll(ctx, deploy, release, created, checkpoint);
      await this.store.setCurrentRelease(deploy.service, release.version);
      await this.store.markReleaseStable(deploy.service, release.version);
      await this.finish(deploy, 'succeeded', null, t0);
    } catch (err) {
      if (signal.aborted || (isNinesError(err) && err.code === 'NINES_E_FENCED')) {
        // Left `running` with its lock: the next controller start resumes it.
        await this.event(
          deploy.id,
          'deploy.interrupted',
          'the controller stopped; the deploy resumes when it starts again',
        ).catch(() => {});
        return;
      }
      const reason = ctl.abortedBy
        ? `aborted by ${ctl.abortedBy}`
        : err instanceof OperationFailure
          ? err.message
          : `internal error: ${(err as Error).message}`;
      this.log.warn({ deployId: deploy.id, err }, 'deploy failed');
      await this.event(deploy.id, 'deploy.reverting', `failed: ${reason}; stopping the new instances`);
      try {
        await this.revert({ ...ctx, signal }, deploy, created);
      } catch (revertErr) {
        this.log.error({ deployId: deploy.id, err: revertErr }, 'revert failed');
        await this.event(deploy.id, 'deploy.revert-failed', `revert failed: ${(revertErr as Error).message}`);
      }
      await this.finish(deploy, 'failed', reason, t0);
    }
  }

  /**
   * Put a resumed deploy's service in a state the planner understands: wait for the fleet to report
   * (without proxy reports a routing change could not be confirmed), return half-drained old instances
   * to service, and stop new ones that were started but never took traffic.
   */
  private async settleAfterRestart(
    ctx: OpContext,
    deploy: DeployRecord,
    created: InstanceRecord[],
  ): Promise<void> {
    await this.event(
      deploy.id,
      'deploy.resumed',
      'the controller restarted; waiting for agents and proxies to report',
    );
    const hosts = await this.store.listHosts();
    await this.hub
      .waitUntil(
        'the fleet to report after a restart',
        () =>
          hosts.every((h) => this.hub.agents.has(h.id)) && this.hub.liveProxies().length > 0
            ? true
            : undefined,
        this.fleet.hostDownAfterMs,
        ctx.signal,
      )
      .catch(() => {});
    for (const i of await this.store.listInstances({ service: deploy.service })) {
      if (i.desired !== 'running') continue;
      if (i.route === 'draining') {
        await this.fleet.setRoute(i, 'ready');
        await ctx.event(
          'instance.undrained',
          `${i.id} was draining when the controller stopped; back in service`,
          {
            instance: i.id,
          },
        );
      } else if (i.deployId === deploy.id && i.route === 'none') {
        await this.ops.stop(ctx, i);
      } else if (i.deployId === deploy.id) {
        created.push(i);
      }
    }
  }

  private async roll(
    ctx: OpContext,
    deploy: DeployRecord,
    release: ReleaseRecord,
    created: InstanceRecord[],
    checkpoint: () => Promise<void>,
  ): Promise<void> {
    const spec = release.spec;
    const params = resolveRolling(spec.rolling, spec.instances);
    const all = await this.store.listInstances({ service: deploy.service });
    const live = all.filter((i) => i.desired === 'running');
    const old = live.filter((i) => i.releaseVersion !== release.version && i.route === 'ready');
    const fresh = live.filter((i) => i.releaseVersion === release.version && i.route === 'ready');
    // More of the new release than desired (scaled down): the surplus goes like old instances.
    while (fresh.length > params.desired) old.push(fresh.pop()!);
    // Old instances that never took traffic need no drain; stop them first.
    for (const i of live.filter((x) => x.route === 'none' && x.releaseVersion !== release.version)) {
      await this.ops.stop(ctx, i);
    }
    await this.event(deploy.id, 'deploy.plan', planText(params, old.length, fresh.length), {
      ...params,
      old: old.length,
    });
    for (;;) {
      await checkpoint();
      const step = nextRollingStep(params, { oldReady: old.length, newReady: fresh.length, newPending: 0 });
      if (step.done) return;
      const stopping = old.splice(0, step.stop);
      const tasks: Promise<unknown>[] = stopping.map((i) => this.ops.stop(ctx, i));
      for (let k = 0; k < step.start; k++) {
        tasks.push(
          this.ops.start(ctx, release, created).then((i) => {
            fresh.push(i);
          }),
        );
      }
      const results = await Promise.allSettled(tasks);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    }
  }

  private async revert(ctx: OpContext, deploy: DeployRecord, created: InstanceRecord[]): Promise<void> {
    for (const rec of created) {
      const current = await this.store.getInstance(rec.id);
      if (current) await this.ops.stop(ctx, current);
    }
    // maxUnavailable may have stopped old instances already: bring the old release back to count.
    if (!deploy.fromVersion) return;
    const old = await this.store.getRelease(deploy.service, deploy.fromVersion);
    if (!old) return;
    const serving = (await this.store.listInstances({ service: deploy.service })).filter(
      (i) => i.desired === 'running' && i.route === 'ready',
    );
    for (let k = serving.length; k < old.spec.instances; k++) await this.ops.start(ctx, old);
  }

  /**
   * What every live proxy answered for the service since `baseline`, once each has reported after
   * `since` (reports come at least every second). A proxy that restarted counts from zero.
   */
  private async countRequests(
    service: string,
    baseline: Map<string, { requests: number; failed: number }>,
    since: number,
  ): Promise<{ requests: number; failed: number } | null> {
    const fresh = await this.hub
      .waitUntil(
        `proxy counters for ${service}`,
        () => {
          const now = this.hub.serviceCounters(service);
          return [...now.values()].every((c) => c.at >= since) ? now : undefined;
        },
        2000,
      )
      .catch(() => this.hub.serviceCounters(service));
    if (fresh.size === 0) return null;
    let requests = 0;
    let failed = 0;
    for (const [id, c] of fresh) {
      const b = baseline.get(id);
      const restarted = !b || c.requests < b.requests;
      requests += restarted ? c.requests : c.requests - b.requests;
      failed += restarted ? c.failed : c.failed - b.failed;
    }
    return { requests, failed };
  }

  private async finish(
    deploy: DeployRecord,
    state: 'succeeded' | 'failed',
    reason: string | null,
    t0?: number,
  ): Promise<void> {
    const at = Date.now();
    const baseline = this.running.get(deploy.id)?.baseline;
    const counts = baseline ? await this.countRequests(deploy.service, baseline, at) : null;
    await this.store.updateDeploy(deploy.id, {
      state: transition(deployLifecycle, deploy.state, state),
      reason,
      finishedAt: at,
      ...(counts ? { requests: counts.requests, failedRequests: counts.failed } : {}),
    });
    deploy.state = state;
    if (counts) {
      deploy.requests = counts.requests;
      deploy.failedRequests = counts.failed;
    }
    await this.store.releaseDeployLock(deploy.service, deploy.id);
    const took = t0 ? ` in ${((at - t0) / 1000).toFixed(1)} s` : '';
    const seen = counts ? `; the proxies saw ${counts.failed} failed of ${counts.requests} requests` : '';
    const msg =
      state === 'succeeded'
        ? `${deploy.service} is on ${deploy.toVersion}${took}${seen}`
        : `failed${took}: ${reason}${seen}`;
    await this.event(deploy.id, `deploy.${state}`, msg, {
      durationMs: t0 ? at - t0 : null,
      requests: counts?.requests ?? null,
      failedRequests: counts?.failed ?? null,
    });
    await this.store.appendEvent({
      at,
      kind: `deploy.${state}`,
      subject: deploy.service,
      message: `deploy ${deploy.id} ${deploy.fromVersion ?? '∅'} → ${deploy.toVersion}: ${msg}`,
      data: { deployId: deploy.id },
    });
  }

  private async event(deployId: string, type: string, message: string, data?: Record<string, unknown>) {
    await this.store.appendDeployEvent({ deployId, at: Date.now(), type, message, data: data ?? null });
    this.hub.signal(`deploy:${deployId}`);
  }
}

function mustBe(d: DeployRecord, state: DeployRecord['state'], verb: string): void {
  if (d.state !== state) {
    throw new NinesError(
      'NINES_E_INVALID_TRANSITION',
      `deploy ${d.id} is ${d.state}; only a ${state} deploy can be ${verb}`,
      {
        state: d.state,
      },
    );
  }
}

function planText(
  p: { desired: number; maxSurge: number; maxUnavailable: number },
  old: number,
  fresh: number,
) {
  return (
    `rolling ${old} old → ${p.desired} new instance(s), maxSurge ${p.maxSurge}, maxUnavailable ${p.maxUnavailable}` +
    (fresh ? ` (${fresh} already on the new release)` : '')
  );
}
