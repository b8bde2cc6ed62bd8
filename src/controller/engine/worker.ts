import type { InstanceRecord } from '../store/types.js';
import { nextRollingStep, resolveRolling } from './plan.js';
import { allOrFirstError, type DeployRun } from './run.js';

/**
 * A worker service (`kind: worker`: queue consumers, no HTTP) whatever the strategy: nothing routes to
 * it, so there is no traffic to split or switch — only consumers to replace without a gap. The rolling
 * planner runs over the instances that are up (a worker's readiness is its process staying up): with
 * the default `maxSurge 1, maxUnavailable 0` each new worker is up before an old one is told to stop.
 * Stopping one is SIGTERM (the worker finishes its current item and exits), SIGKILL after
 * `drainTimeout`; the engine waits for the exit before the next step.
 */
export async function runWorker(run: DeployRun): Promise<void> {
  const { deploy, release, ctx } = run;
  const spec = release.spec;
  const params = resolveRolling(spec.rolling, spec.instances);
  const live = (await run.store.listInstances({ service: deploy.service })).filter(
    (i) => i.desired === 'running',
  );
  const up = (i: InstanceRecord) => run.hub.observed(i.hostId, i.id)?.healthy === true;
  const old = live.filter((i) => i.releaseVersion !== release.version);
  const fresh = live.filter((i) => i.releaseVersion === release.version && up(i));
  // New workers that are not up (a resumed deploy) go again: the planner starts fresh ones.
  for (const i of live.filter((x) => x.releaseVersion === release.version && !up(x))) {
    await run.ops.stop(ctx, i);
  }
  while (fresh.length > params.desired) old.push(fresh.pop()!);
  await ctx.event(
    'deploy.plan',
    `worker: ${old.length} old → ${params.desired} new worker(s), new before old (maxSurge ${params.maxSurge}, ` +
      `maxUnavailable ${params.maxUnavailable}); each old one gets SIGTERM and ${spec.drainTimeout} ms to finish`,
    { strategy: 'worker', ...params, old: old.length },
  );
  for (;;) {
    await run.checkpoint();
    const step = nextRollingStep(params, { oldReady: old.length, newReady: fresh.length, newPending: 0 });
    if (step.done) return;
    const tasks: Promise<unknown>[] = old.splice(0, step.stop).map((i) => run.ops.stop(ctx, i));
    for (let k = 0; k < step.start; k++) {
      tasks.push(run.ops.start(ctx, release, run.created).then((i) => fresh.push(i)));
    }
    await allOrFirstError(tasks);
  }
}
