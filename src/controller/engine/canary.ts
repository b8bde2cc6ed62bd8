import { type CanaryAction, planCanary, type TrafficSplit } from '../../core/strategies.js';
import type { InstanceRecord } from '../store/types.js';
import { analysisStep } from './analysis.js';
import { allOrFirstError, type DeployRun, setTraffic } from './run.js';

/** The split that gives the new release `percent` and shares the rest among the releases serving now. */
export async function canarySplit(run: DeployRun, percent: number): Promise<TrafficSplit> {
  const others = new Set(
    (await run.store.listInstances({ service: run.deploy.service }))
      .filter(
        (i) => i.desired === 'running' && i.route === 'ready' && i.releaseVersion !== run.release.version,
      )
      .map((i) => i.releaseVersion),
  );
  const weights: Record<string, number> = { [run.release.version]: percent };
  for (const r of others) weights[r] = (100 - percent) / others.size;
  return { weights };
}

/**
 * Canary (Argo Rollouts' steps): the new release starts at weight 0 beside the old one, then each
 * step sets its share of new requests at the proxies (runtime weights), pauses, or analyses it; the
 * end is a full promotion — every new instance, 100 %, the old release drained and stopped.
 */
export async function runCanary(run: DeployRun): Promise<void> {
  const { deploy, release, settings, ctx } = run;
  const desired = release.spec.instances;
  const actions = planCanary(settings.canarySteps, desired, settings.analysis.window);
  await ctx.event('deploy.plan', `canary of ${release.version}: ${actions.map(describe).join(' → ')}`, {
    strategy: 'canary',
    actions,
  });
  const fresh: InstanceRecord[] = (await run.store.listInstances({ service: deploy.service })).filter(
    (i) => i.desired === 'running' && i.route === 'ready' && i.releaseVersion === release.version,
  );
  // Abort and failure put the canary's weight back to 0 before its instances drain.
  run.beforeRevert.push(async () => {
    await setTraffic(run, deploy.service, await canarySplit(run, 0), AbortSignal.timeout(30_000));
    await ctx.event('canary.weight', `${release.version} back to 0% of new requests`, { percent: 0 });
  });
  run.onRevert.push(() => setTraffic(run, deploy.service, null));
  // Resumed after a controller restart: the steps done before it are not done again, and the weight
  // stays what the last of them set (the proxies kept routing by it meanwhile).
  const done = resumeIndex(await run.store.listDeployEvents(deploy.id), actions);
  if (done.index >= 0) {
    await ctx.event(
      'canary.resumed',
      `resuming after step ${done.index + 1} of ${actions.length} (${describe(actions[done.index]!)}) at ${done.weight}%`,
      { index: done.index, percent: done.weight },
    );
  }
  if (done.index === actions.length - 1) {
    // Promoted already (the old release is gone): only the split is left to clear.
    await setTraffic(run, deploy.service, null, ctx.signal);
    return;
  }
  await setTraffic(run, deploy.service, await canarySplit(run, done.weight), ctx.signal);
  for (const [index, a] of actions.entries()) {
    if (index <= done.index) continue;
    await run.checkpoint();
    switch (a.kind) {
      case 'scale': {
        const tasks: Promise<unknown>[] = [];
        for (let k = fresh.length; k < a.newInstances; k++) {
          tasks.push(run.ops.start(ctx, release, run.created).then((i) => fresh.push(i)));
        }
        await allOrFirstError(tasks);
        break;
      }
      case 'weight':
        await setTraffic(run, deploy.service, await canarySplit(run, a.percent), ctx.signal);
        await ctx.event('canary.weight', `${release.version} gets ${a.percent}% of new requests`, {
          percent: a.percent,
          instances: fresh.length,
        });
        break;
      case 'pause':
        await run.waitPromote(
          a.ms,
          a.ms === null ? 'canary paused until promoted' : `canary pause ${a.ms} ms`,
        );
        break;
      case 'analysis':
        await analysisStep(run, a.window, 'canary analysis');
        break;
      case 'promote': {
        const tasks: Promise<unknown>[] = [];
        for (let k = fresh.length; k < desired; k++) {
          tasks.push(run.ops.start(ctx, release, run.created).then((i) => fresh.push(i)));
        }
        await allOrFirstError(tasks);
        await setTraffic(run, deploy.service, { weights: { [release.version]: 100 } }, ctx.signal);
        await ctx.event(
          'canary.promoted',
          `${release.version} takes all new requests; draining the old release`,
        );
        const old = (await run.store.listInstances({ service: deploy.service })).filter(
          (i) => i.desired === 'running' && i.releaseVersion !== release.version,
        );
        await allOrFirstError(old.map((i) => run.ops.stop(ctx, i)));
        await setTraffic(run, deploy.service, null, ctx.signal);
        break;
      }
    }
    await ctx.event('canary.step', `step ${index + 1} of ${actions.length} done: ${describe(a)}`, {
      index,
      kind: a.kind,
    });
  }
}

/**
 * Where a resumed canary goes on: the last step its events say was done (-1: none), and the weight the
 * last `weight` step up to there set (0: none).
 */
export function resumeIndex(
  events: readonly { type: string; data: Record<string, unknown> | null }[],
  actions: readonly CanaryAction[],
): { index: number; weight: number } {
  let index = -1;
  for (const e of events) {
    const i = e.data?.index;
    if (e.type === 'canary.step' && typeof i === 'number' && i < actions.length) index = Math.max(index, i);
  }
  let weight = 0;
  for (let i = 0; i <= index; i++) {
    const a = actions[i];
    if (a?.kind === 'weight') weight = a.percent;
  }
  return { index, weight };
}

function describe(a: ReturnType<typeof planCanary>[number]): string {
  switch (a.kind) {
    case 'scale':
      return `${a.newInstances} new`;
    case 'weight':
      return `${a.percent}%`;
    case 'pause':
      return a.ms === null ? 'pause (promote)' : `pause ${a.ms} ms`;
    case 'analysis':
      return `analysis ${a.window} ms`;
    case 'promote':
      return 'promote';
  }
}
