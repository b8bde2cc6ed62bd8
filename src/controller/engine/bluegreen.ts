import type { Logger } from 'pino';
import type { DeploySettings, TrafficSplit } from '../../core/strategies.js';
import type { Fleet } from '../fleet.js';
import type { Hub } from '../hub.js';
import type { Store } from '../store/types.js';
import { analysisStep } from './analysis.js';
import type { InstanceOps, OpContext } from './ops.js';
import { allOrFirstError, type DeployRun, setTraffic } from './run.js';

/** The lock holder while a blue-green standby group waits for its scale-down. */
export const standbyHolder = (deployId: string) => `standby-${deployId}`;

/**
 * Blue-green (red/black): a full group of the new release starts as the preview group (reached by the
 * `X-Nines-Preview` header or the preview hosts, never by other traffic), then one routing snapshot
 * switches every new request to it. The old group stays running out of rotation for `scaleDownDelay`;
 * the lock passes to `standby-<deploy>` meanwhile, so `nines rollback` is one snapshot back.
 */
export async function runBlueGreen(run: DeployRun): Promise<void> {
  const { deploy, release, settings, ctx } = run;
  const desired = release.spec.instances;
  const hosts = settings.previewHosts;
  await ctx.event(
    'deploy.plan',
    `blue-green: ${desired} instance(s) of ${release.version} as a preview group (header X-Nines-Preview` +
      `${hosts.length ? ` or host ${hosts.join(', ')}` : ''}), then one switch; the old group stays ` +
      `${settings.scaleDownDelay} ms for an instant rollback` +
      (postSwitchWindow(settings, deploy.fromVersion) !== null
        ? `; the new group is analysed for ${settings.analysis.window} ms after the switch and switched back on failure`
        : ''),
    { strategy: 'blue-green', desired, previewHosts: hosts, scaleDownDelay: settings.scaleDownDelay },
  );
  run.beforeRevert.push(async () => {
    // Switched already: switch back before the new group drains.
    const svc = await run.store.getService(deploy.service);
    const back = switchBackSplit(svc?.traffic ?? null, deploy.fromVersion);
    if (back) {
      const t0 = Date.now();
      await setTraffic(run, deploy.service, back, AbortSignal.timeout(30_000));
      await ctx.event(
        'bluegreen.reverted',
        `every proxy switched back to ${deploy.fromVersion} in ${Date.now() - t0} ms; draining ${release.version}`,
        { switchMs: Date.now() - t0 },
      );
    }
  });
  run.onRevert.push(() => setTraffic(run, deploy.service, null));
  const from = deploy.fromVersion;
  const current = (await run.store.getService(deploy.service))?.traffic ?? null;
  if (from && switchedBy(current, deploy.id, release.version)) {
    // Resumed after a controller restart between the switch and the end of the post-switch analysis:
    // the proxies still route by the switch, so no preview and no second switch — analyse again.
    await ctx.event('bluegreen.resumed', `${release.version} took every request before the restart already`);
  } else {
    await preview(run);
    const t0 = Date.now();
    await setTraffic(run, deploy.service, switchSplit(run), ctx.signal);
    await ctx.event(
      'bluegreen.switched',
      `every proxy switched to ${release.version} in ${Date.now() - t0} ms`,
      {
        switchMs: Date.now() - t0,
      },
    );
  }
  const window = postSwitchWindow(settings, from);
  if (window !== null && from) {
    // The old group is still routed-ready at weight 0: a failure here throws, and the revert's first
    // step (beforeRevert) is one snapshot back to it.
    await analysisStep(run, window, 'post-switch analysis');
    // The instant-rollback window starts from the verdict, not from the switch.
    await setTraffic(run, deploy.service, switchSplit(run), ctx.signal);
  }
  if (from) {
    // Hand the lock to the standby group in one transaction, so the reconciler cannot stop it.
    await run.store.transaction(async (tx) => {
      await tx.releaseDeployLock(deploy.service, deploy.id);
      await tx.acquireDeployLock(deploy.service, standbyHolder(deploy.id));
    });
  }
}

/** The preview group up (and, without autoPromote, promoted by a person); users still on the old group. */
async function preview(run: DeployRun): Promise<void> {
  const { deploy, release, settings, ctx } = run;
  const desired = release.spec.instances;
  await setTraffic(
    run,
    deploy.service,
    { preview: release.version, previewHosts: settings.previewHosts },
    ctx.signal,
  );
  const have = (await run.store.listInstances({ service: deploy.service })).filter(
    (i) => i.desired === 'running' && i.releaseVersion === release.version && i.route === 'ready',
  ).length;
  const tasks: Promise<unknown>[] = [];
  for (let k = have; k < desired; k++) tasks.push(run.ops.start(ctx, release, run.created));
  await allOrFirstError(tasks);
  await run.checkpoint();
  if (!settings.autoPromote) {
    await run.waitPromote(null, `preview group of ${release.version} is up; promote to switch`);
  }
  await run.checkpoint();
}

/** Every new request to the new release; the old group (if any) waits as the standby from now on. */
function switchSplit(run: DeployRun): TrafficSplit {
  const { deploy, release, settings } = run;
  const from = deploy.fromVersion;
  return {
    weights: { [release.version]: 100 },
    ...(from
      ? { standby: { release: from, until: Date.now() + settings.scaleDownDelay, deployId: deploy.id } }
      : {}),
  };
}

/** Whether `deployId` switched the service to `release` already (its split and standby are in place). */
export function switchedBy(traffic: TrafficSplit | null, deployId: string, release: string): boolean {
  return traffic?.weights?.[release] === 100 && traffic.standby?.deployId === deployId;
}

/** The post-switch analysis window (ms), or null when there is none (not asked for, or a first deploy). */
export function postSwitchWindow(
  settings: Pick<DeploySettings, 'analysis'>,
  fromVersion: string | null,
): number | null {
  return settings.analysis.afterSwitch && fromVersion !== null ? settings.analysis.window : null;
}

/**
 * The split that undoes a blue-green switch of a failed deploy: every new request to the old release.
 * Null when nothing was switched yet (the preview phase routes all users to the old group already).
 */
export function switchBackSplit(
  traffic: TrafficSplit | null,
  fromVersion: string | null,
): TrafficSplit | null {
  if (!traffic?.weights || fromVersion === null) return null;
  return { weights: { [fromVersion]: 100 } };
}

/**
 * Instant rollback inside the standby window: the old group is still up, so one routing snapshot
 * switches back and the group that was live becomes the standby.
 */
export async function switchBack(run: DeployRun, scaleDownDelay: number): Promise<boolean> {
  const { deploy, release, ctx } = run;
  const svc = await run.store.getService(deploy.service);
  const sb = svc?.traffic?.standby;
  if (!sb || sb.release !== release.version) return false;
  const live = (await run.store.listInstances({ service: deploy.service })).filter(
    (i) => i.desired === 'running' && i.route === 'ready' && i.releaseVersion === release.version,
  );
  if (live.length < release.spec.instances) return false;
  const t0 = Date.now();
  const split: TrafficSplit = {
    weights: { [release.version]: 100 },
    ...(deploy.fromVersion
      ? { standby: { release: deploy.fromVersion, until: Date.now() + scaleDownDelay, deployId: deploy.id } }
      : {}),
  };
  await setTraffic(run, deploy.service, split, ctx.signal);
  await ctx.event(
    'bluegreen.switched-back',
    `instant rollback: every proxy switched back to ${release.version} in ${Date.now() - t0} ms; ` +
      `${deploy.fromVersion} stays ${scaleDownDelay} ms as the standby`,
    { switchMs: Date.now() - t0 },
  );
  await run.store.transaction(async (tx) => {
    await tx.releaseDeployLock(deploy.service, deploy.id);
    await tx.acquireDeployLock(deploy.service, standbyHolder(deploy.id));
  });
  return true;
}

/** Stops a service's standby group once its window has passed (timers survive restarts via `recover`). */
export class StandbyGroups {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly deps: { store: Store; hub: Hub; fleet: Fleet; ops: InstanceOps; log: Logger };
  private closed = false;

  constructor(deps: { store: Store; hub: Hub; fleet: Fleet; ops: InstanceOps; log: Logger }) {
    this.deps = deps;
  }

  /** Arm the scale-down timer of every service that has a standby group (after a start, or a switch). */
  async arm(service?: string): Promise<void> {
    for (const s of await this.deps.store.listServices()) {
      if (service !== undefined && s.name !== service) continue;
      const sb = s.traffic?.standby;
      if (!sb || s.lockedBy !== standbyHolder(sb.deployId)) continue;
      clearTimeout(this.timers.get(s.name));
      const t = setTimeout(
        () => {
          this.timers.delete(s.name);
          this.scaleDown(s.name).catch((err) =>
            this.deps.log.error({ err, service: s.name }, 'standby scale-down failed'),
          );
        },
        Math.max(0, sb.until - Date.now()),
      );
      t.unref();
      this.timers.set(s.name, t);
    }
  }

  /** Forget the timer (a new deploy takes the service over). */
  cancel(service: string): void {
    clearTimeout(this.timers.get(service));
    this.timers.delete(service);
  }

  /** Drain and stop the standby group and clear the split; with `holder`, the lock stays with it. */
  async scaleDown(service: string, holder?: string, signal?: AbortSignal): Promise<void> {
    if (this.closed) return;
    const { store, ops } = this.deps;
    const svc = await store.getService(service);
    const sb = svc?.traffic?.standby;
    if (!svc || !sb) return;
    // The deploy's own standby group (resumed before its lock handoff): it is what a failure switches back to.
    if (holder !== undefined && sb.deployId === holder) return;
    if (holder === undefined && svc.lockedBy !== standbyHolder(sb.deployId)) return;
    const ctx: OpContext = {
      deployId: sb.deployId,
      signal: signal ?? new AbortController().signal,
      event: async (type, message, data) => {
        await store.appendDeployEvent({
          deployId: sb.deployId,
          at: Date.now(),
          type,
          message,
          data: data ?? null,
        });
      },
    };
    await ctx.event('bluegreen.scale-down', `standby group ${sb.release} scaled down`);
    const group = (await store.listInstances({ service })).filter(
      (i) =>
        i.desired === 'running' && i.releaseVersion === sb.release && i.releaseVersion !== svc.currentRelease,
    );
    await allOrFirstError(group.map((i) => ops.stop(ctx, i)));
    await setTraffic(this.deps, service, null, signal);
    if (holder === undefined) await store.releaseDeployLock(service, standbyHolder(sb.deployId));
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}
