import { maintenanceEstimate } from '../../core/strategies.js';
import type { DeployEventRecord, ServiceMode, ServiceModeOptions, Store } from '../store/types.js';
import { allOrFirstError, type DeployRun, waitApplied } from './run.js';

/** Durations between two events of the same instance, from a deploy's event list. */
export function instanceDurations(events: readonly DeployEventRecord[], from: string, to: string): number[] {
  const started = new Map<string, number>();
  const out: number[] = [];
  for (const e of events) {
    const id = typeof e.data?.instance === 'string' ? e.data.instance : null;
    if (id === null) continue;
    if (e.type === from) started.set(id, e.at);
    else if (e.type === to) {
      const t = started.get(id);
      if (t !== undefined) out.push(e.at - t);
    }
  }
  return out;
}

/** Boot (starting → routed) and stop (draining/stopping → stopped) times measured in recent deploys. */
export async function measuredTimes(
  store: Store,
  service: string,
): Promise<{ boot: number[]; stop: number[] }> {
  const boot: number[] = [];
  const stop: number[] = [];
  for (const d of await store.listDeploys(service, 5)) {
    const events = await store.listDeployEvents(d.id);
    boot.push(...instanceDurations(events, 'instance.starting', 'instance.routed'));
    stop.push(...instanceDurations(events, 'instance.draining', 'instance.stopped'));
  }
  return { boot, stop };
}

/**
 * All at once, for releases that cannot run beside the old one (a breaking schema change): the service
 * goes into maintenance mode (the proxies answer 503 + the page), every old instance is stopped, every
 * new one started, and the mode is put back. The plan states the window first, from measured times.
 */
export async function runAllAtOnce(run: DeployRun): Promise<void> {
  const { deploy, release, ctx, store } = run;
  const desired = release.spec.instances;
  const svc = await store.getService(deploy.service);
  // Resumed after a controller restart: the service is in maintenance because of this deploy; the
  // mode to restore is the one recorded when it went in.
  const earlier = (await store.listDeployEvents(deploy.id)).find((e) => e.type === 'allatonce.maintenance');
  const prevMode = earlier
    ? ((earlier.data?.prevMode as ServiceMode | undefined) ?? 'live')
    : (svc?.mode ?? 'live');
  const prevOptions = earlier
    ? ((earlier.data?.prevOptions as ServiceModeOptions | null | undefined) ?? null)
    : (svc?.modeOptions ?? null);
  const times = await measuredTimes(store, deploy.service);
  const est = maintenanceEstimate(times.boot, times.stop, release.spec.healthyDeadline);
  await ctx.event(
    'deploy.plan',
    `all-at-once: ${deploy.service} answers the maintenance page for about ${(est.windowMs / 1000).toFixed(1)} s ` +
      `(${est.measured ? 'measured' : 'no boot measured yet; healthy deadline'}: stop ${est.stopMs} ms + boot ${est.bootMs} ms), ` +
      `while every instance is replaced by ${desired} of ${release.version}`,
    { strategy: 'all-at-once', ...est, desired },
  );
  const setMode = async (mode: typeof prevMode, options: typeof prevOptions, signal?: AbortSignal) => {
    await store.setServiceMode(deploy.service, mode, options);
    await waitApplied(run, await run.fleet.bumpRouting(), signal);
  };
  run.onRevert.push(() => setMode(prevMode, prevOptions));
  // Recorded before the switch, so a controller restart in between still knows what to restore.
  await ctx.event('allatonce.maintenance', `${deploy.service} goes into maintenance mode`, {
    prevMode,
    prevOptions,
  });
  await setMode(
    'maintenance',
    { message: `${deploy.service} is being upgraded to ${release.version}` },
    ctx.signal,
  );
  const t0 = Date.now();
  const old = (await store.listInstances({ service: deploy.service })).filter((i) => i.desired === 'running');
  await allOrFirstError(old.map((i) => run.ops.stop(ctx, i)));
  const tasks: Promise<unknown>[] = [];
  for (let k = 0; k < desired; k++) tasks.push(run.ops.start(ctx, release, run.created));
  await allOrFirstError(tasks);
  await setMode(prevMode, prevOptions, ctx.signal);
  run.onRevert.length = 0;
  const took = Date.now() - t0;
  await ctx.event(
    'allatonce.restored',
    `${deploy.service} is ${prevMode} again after ${(took / 1000).toFixed(1)} s of maintenance (planned ` +
      `${(est.windowMs / 1000).toFixed(1)} s)`,
    { windowMs: took, plannedMs: est.windowMs },
  );
}
