import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { StrategyName } from '../../core/config.js';
import { isNinesError, NinesError } from '../../core/errors.js';
import { deployLifecycle, transition } from '../../core/lifecycle.js';
import { type DeploySettings, deploySettings } from '../../core/strategies.js';
import type { Fleet } from '../fleet.js';
import type { Hub } from '../hub.js';
import type { DeployKind, DeployRecord, InstanceRecord, ReleaseRecord, Store } from '../store/types.js';
import { runAllAtOnce } from './allatonce.js';
import { analysisStep } from './analysis.js';
import { runBlueGreen, StandbyGroups, switchBack } from './bluegreen.js';
import { runCanary } from './canary.js';
import { hookFailure, runHook } from './hooks.js';
import { runInPlace } from './inplace.js';
import { type InstanceOps, type OpContext, OperationFailure } from './ops.js';
import { nextRollingStep, resolveRolling } from './plan.js';
import { type DeployRun, sleep } from './run.js';
import { runWorker } from './worker.js';
import { rollZoneByZone } from './zonebyzone.js';

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
  /** `nines deploy promote` arrived and was not consumed by a pause yet. */
  promoted: boolean;
  /** Wakes a timed pause early on promote. */
  promoteWake: (() => void) | null;
  /** Last time the deploy made progress (an instance routed or stopped); for progressDeadline. */
  progressAt: number;
}

export interface CreateDeployOptions {
  kind?: DeployKind;
  createdBy: string;
  /** Overrides the release spec's strategy for this deploy. */
  strategy?: StrategyName;
  /** Overrides the spec's autoRevert for this deploy. */
  autoRevert?: boolean;
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
  private readonly standby: StandbyGroups;
  private readonly artifactPath: ((service: string, version: string) => string) | null;

  constructor(deps: {
    store: Store;
    hub: Hub;
    fleet: Fleet;
    ops: InstanceOps;
    logger: Logger;
    /** Where a release's artifact is (deploy hooks run in an unpacked copy). */
    artifactPath?: (service: string, version: string) => string;
  }) {
    this.store = deps.store;
    this.hub = deps.hub;
    this.fleet = deps.fleet;
    this.ops = deps.ops;
    this.log = deps.logger;
    this.artifactPath = deps.artifactPath ?? null;
    this.standby = new StandbyGroups({ ...deps, log: deps.logger });
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
      // A first deploy has no traffic to protect: it starts every instance at once (rolling from zero).
      // A worker has no traffic at all: it always rolls, new before old (worker.ts).
      strategy:
        svc.currentRelease === null || release.spec.kind === 'worker'
          ? 'rolling'
          : (opts.strategy ?? release.spec.strategy ?? 'rolling'),
      kind: opts.kind ?? 'deploy',
      state: 'pending',
      reason: null,
      createdBy: opts.createdBy,
      createdAt: Date.now(),
      startedAt: null,
      finishedAt: null,
      requests: null,
      failedRequests: null,
      ...(opts.autoRevert !== undefined ? { options: { autoRevert: opts.autoRevert } } : {}),
    };
    await this.store.transaction(async (tx) => {
      let lock = await tx.acquireDeployLock(service, deploy.id);
      // A blue-green standby group waiting for its scale-down: this deploy takes the service over
      // (a rollback to it is an instant switch back; anything else scales it down first).
      if (!lock.ok && lock.heldBy.startsWith('standby-')) {
        await tx.releaseDeployLock(service, lock.heldBy);
        lock = await tx.acquireDeployLock(service, deploy.id);
      }
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
    this.standby.cancel(service);
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
      promoted: false,
      promoteWake: null,
      progressAt: Date.now(),
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

  /**
   * Go past the current hold: a canary pause (timed or not), a blue-green switch waiting for a person,
   * or a deploy paused by an inconclusive analysis.
   */
  async promote(id: string, who: string): Promise<DeployRecord> {
    const ctl = await this.control(id);
    ctl.promoted = true;
    ctl.promoteWake?.();
    await this.event(id, 'deploy.promoted', `promoted by ${who}`);
    if (ctl.deploy.state === 'paused') return this.resume(id, who);
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
    await this.standby.arm();
  }

  async close(): Promise<void> {
    this.standby.close();
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
    const settings = deploySettings(release.spec, deploy.strategy);
    const progress = new AbortController();
    const event = (type: string, message: string, data?: Record<string, unknown>) => {
      if (PROGRESS.test(type)) ctl.progressAt = Date.now();
      return this.event(deploy.id, type, message, data);
    };
    const ctx: OpContext = {
      deployId: deploy.id,
      signal: AbortSignal.any([ctl.stop.signal, ctl.user.signal, progress.signal]),
      event,
    };
    const signal = ctl.stop.signal;
    const checkpoint = async () => {
      while (ctl.paused && !ctx.signal.aborted) {
        await new Promise<void>((wake) => {
          ctl.wake = wake;
        });
        ctl.wake = null;
        ctl.progressAt = Date.now();
      }
      ctx.signal.throwIfAborted();
    };
    // progressDeadline: no step done for that long (time paused for a person does not count).
    const watchdog = setInterval(() => {
      if (ctl.paused || ctl.promoteWake !== null) ctl.progressAt = Date.now();
      if (Date.now() - ctl.progressAt > settings.progressDeadline) {
        progress.abort(
          new OperationFailure(`no progress within the progress deadline of ${settings.progressDeadline} ms`),
        );
      }
    }, 1000);
    watchdog.unref();
    const run: DeployRun = {
      store: this.store,
      hub: this.hub,
      fleet: this.fleet,
      ops: this.ops,
      log: this.log,
      ctx,
      deploy,
      release,
      settings,
      created,
      checkpoint,
      beforeRevert: [],
      onRevert: [],
      afterBatch: (batch) => this.afterBatch(run, batch),
      hold: async (reason) => {
        if (deploy.state !== 'paused') {
          await this.store.updateDeploy(deploy.id, {
            state: transition(deployLifecycle, deploy.state, 'paused'),
          });
          deploy.state = 'paused';
        }
        ctl.paused = true;
        await event('deploy.paused', reason);
        await checkpoint();
      },
      waitPromote: async (ms, what) => {
        if (ctl.promoted) {
          ctl.promoted = false;
          return;
        }
        if (ms === null) {
          await run.hold(`${what} (nines deploy promote ${deploy.service})`);
          ctl.promoted = false;
          return;
        }
        await event('deploy.waiting', `${what} (or until nines deploy promote)`, { ms });
        const early = new Promise<void>((wake) => {
          ctl.promoteWake = wake;
        });
        await Promise.race([sleep(ms, ctx.signal), early]).finally(() => {
          ctl.promoteWake = null;
        });
        ctl.promoted = false;
        await checkpoint();
      },
    };
    try {
      if (resumed) {
        await this.settleAfterRestart(ctx, deploy, created, release.spec.kind === 'worker');
      } else {
        await this.store.updateDeploy(deploy.id, {
          state: transition(deployLifecycle, deploy.state, 'running'),
          startedAt: t0,
        });
        deploy.state = 'running';
        await this.hook(run, 'preDeploy');
      }
      await checkpoint();
      // Back to a blue-green standby group still running (a rollback within scaleDownDelay): one switch.
      if (!(await switchBack(run, settings.scaleDownDelay))) {
        // A blue-green standby group left from the previous deploy goes before anything starts.
        await this.standby.scaleDown(deploy.service, deploy.id, ctx.signal);
        await this.strategy(run, settings);
      }
      await this.store.setCurrentRelease(deploy.service, release.version);
      await this.store.markReleaseStable(deploy.service, release.version);
      clearInterval(watchdog);
      await this.finish(deploy, 'succeeded', null, t0);
      await this.standby.arm(deploy.service);
      await this.hook(run, 'postDeploy').catch(async (err: Error) => {
        await this.event(deploy.id, 'hook.failed', `${err.message} (the deploy stays done)`);
      });
    } catch (err) {
      clearInterval(watchdog);
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
        for (const f of run.beforeRevert) await f();
        await this.revert({ ...ctx, signal }, deploy, created);
        for (const f of run.onRevert) await f();
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
    worker = false,
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
      } else if (i.deployId === deploy.id && i.route === 'none' && !worker) {
        // Workers are never routed: theirs stay, and the worker runner keeps the ones that are up.
        await this.ops.stop(ctx, i);
      } else if (i.deployId === deploy.id) {
        created.push(i);
      }
    }
  }

  private async strategy(run: DeployRun, settings: DeploySettings): Promise<void> {
    // A worker has no traffic to split or switch: every strategy is new-before-old for it.
    if (run.release.spec.kind === 'worker') return runWorker(run);
    switch (settings.strategy) {
      case 'canary':
        return runCanary(run);
      case 'blue-green':
        return runBlueGreen(run);
      case 'all-at-once':
        return runAllAtOnce(run);
      case 'in-place':
        return runInPlace(run);
      default:
        return this.roll(run.ctx, run.deploy, run.release, run.created, run.checkpoint, (batch) =>
          this.afterBatch(run, batch),
        );
    }
  }

  /** Gates after a rolling batch: minHealthyTime, then (when configured) analysis of the new release. */
  private async afterBatch(run: DeployRun, batch: InstanceRecord[]): Promise<void> {
    const { settings, ctx } = run;
    if (batch.length > 0 && settings.minHealthyTime > 0) {
      await sleep(settings.minHealthyTime, ctx.signal);
      for (const i of batch) {
        const o = this.hub.observed(i.hostId, i.id);
        const up = this.hub.liveProxies().every((p) => p.instances.get(i.id)?.up !== false);
        if (!o?.healthy || !up) {
          throw new OperationFailure(
            `instance ${i.id} did not stay healthy for minHealthyTime (${settings.minHealthyTime} ms)`,
          );
        }
      }
      await ctx.event(
        'gate.min-healthy',
        `${batch.length} instance(s) stayed healthy ${settings.minHealthyTime} ms`,
      );
    }
    if (batch.length > 0 && settings.analysis.afterEachBatch && run.deploy.fromVersion !== null) {
      await analysisStep(run, settings.analysis.window, 'batch analysis');
    }
  }

  private async hook(run: DeployRun, name: 'preDeploy' | 'postDeploy'): Promise<void> {
    const hook = run.settings[name];
    if (!hook) return;
    if (!this.artifactPath) throw new OperationFailure(`${name} hook: the engine has no artifact store`);
    await run.ctx.event(`hook.${name}`, `${name}: running \`${hook.command}\` (timeout ${hook.timeout} ms)`);
    const signal = name === 'preDeploy' ? run.ctx.signal : AbortSignal.timeout(hook.timeout + 5000);
    const r = await runHook(
      name,
      hook,
      run.deploy,
      run.release,
      this.artifactPath(run.deploy.service, run.release.version),
      signal,
    );
    if (!r.ok) throw hookFailure(name, hook, r);
    const tail = r.output ? `: ${r.output.split('\n').slice(-3).join(' | ')}` : '';
    await run.ctx.event(`hook.${name}.done`, `${name} finished in ${r.ms} ms${tail}`, { ms: r.ms });
  }

  private async roll(
    ctx: OpContext,
    deploy: DeployRecord,
    release: ReleaseRecord,
    created: InstanceRecord[],
    checkpoint: () => Promise<void>,
    afterBatch?: (batch: InstanceRecord[]) => Promise<void>,
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
    if (spec.rolling.zoneByZone && old.length > 0) {
      const o = { store: this.store, ops: this.ops, ctx, release, params, old, fresh, created, checkpoint };
      return rollZoneByZone({ ...o, afterBatch });
    }
    for (;;) {
      await checkpoint();
      const step = nextRollingStep(params, { oldReady: old.length, newReady: fresh.length, newPending: 0 });
      if (step.done) return;
      const stopping = old.splice(0, step.stop);
      const tasks: Promise<unknown>[] = stopping.map((i) => this.ops.stop(ctx, i));
      const batch: InstanceRecord[] = [];
      for (let k = 0; k < step.start; k++) {
        tasks.push(
          this.ops.start(ctx, release, created).then((i) => {
            fresh.push(i);
            batch.push(i);
          }),
        );
      }
      const results = await Promise.allSettled(tasks);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      if (afterBatch) await afterBatch(batch);
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
    // Workers are never routed: one that runs is one that serves.
    const serving = (await this.store.listInstances({ service: deploy.service })).filter(
      (i) => i.desired === 'running' && (i.route === 'ready' || old.spec.kind === 'worker'),
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

/** Events that count as progress for `progressDeadline`. */
const PROGRESS = /^(instance\.routed|instance\.stopped|canary\.|analysis\.|bluegreen\.|allatonce\.|hook\.)/;

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
