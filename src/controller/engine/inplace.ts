import type { InstanceRecord } from '../store/types.js';
import { planZones } from './plan.js';
import { allOrFirstError, type DeployRun } from './run.js';

/**
 * In-place reload (Unicorn's USR2 dance, host by host): on each host the new release's processes start
 * beside the old ones (same host, new ports), and once they are healthy one routing snapshot routes
 * them and puts the old ones draining — every proxy flips both at once, so the host never has fewer
 * processes taking traffic — then the old ones drain and stop. Hosts go one at a time, by id; each keeps its count (a change of `instances` is spread as zone by zone spreads it).
 * Nothing moves between hosts, so it needs room for one more process per instance on each host.
 */
export async function runInPlace(run: DeployRun): Promise<void> {
  const { deploy, release, ctx } = run;
  const live = (await run.store.listInstances({ service: deploy.service })).filter(
    (i) => i.desired === 'running',
  );
  // Old instances that never took traffic need no switch; stop them first.
  for (const i of live.filter((x) => x.route === 'none' && x.releaseVersion !== release.version)) {
    await run.ops.stop(ctx, i);
  }
  const old = live.filter((i) => i.releaseVersion !== release.version && i.route === 'ready');
  const fresh = live.filter((i) => i.releaseVersion === release.version && i.route === 'ready');
  const perHost = new Map<string, { old: number; fresh: number }>();
  const count = (i: InstanceRecord, k: 'old' | 'fresh') => {
    const h = perHost.get(i.hostId) ?? { old: 0, fresh: 0 };
    h[k]++;
    perHost.set(i.hostId, h);
  };
  for (const i of old) count(i, 'old');
  for (const i of fresh) count(i, 'fresh');
  // The zone-by-zone balancing, keyed by host instead of zone (`phase.zone` is a host id here).
  const phases = planZones(perHost, release.spec.instances);
  await ctx.event(
    'deploy.plan',
    `in-place reload of ${release.version}, host by host: ${phases.map((p) => `${p.zone} (${p.target})`).join(' → ')}`,
    { strategy: 'in-place', hosts: phases.map((p) => ({ host: p.zone, target: p.target })) },
  );
  for (const phase of phases) {
    await run.checkpoint();
    const host = phase.zone;
    const hostOld = old.filter((i) => i.hostId === host);
    const hostFresh = fresh.filter((i) => i.hostId === host);
    const hctx = { ...ctx, hostId: host };
    const started: InstanceRecord[] = [];
    const tasks: Promise<unknown>[] = [];
    for (let k = hostFresh.length; k < phase.target; k++) {
      tasks.push(
        run.ops.start(hctx, release, run.created, { route: false }).then((i) => {
          started.push(i);
        }),
      );
    }
    await allOrFirstError(tasks);
    // A surplus of the new release here (instances scaled down) drains like old ones.
    const leaving = [...hostOld, ...hostFresh.slice(phase.target)];
    if (started.length === 0 && leaving.length === 0) continue;
    await run.ops.switchRoutes(ctx, started, leaving);
    await ctx.event(
      'inplace.switched',
      `host ${host}: ${started.length} new process(es) in, ${leaving.length} old draining`,
      { host, started: started.map((i) => i.id), draining: leaving.map((i) => i.id) },
    );
    await allOrFirstError(leaving.map((i) => run.ops.stop(ctx, i)));
    // The same gates as after a rolling batch: minHealthyTime, and analysis when afterEachBatch is set.
    if (run.afterBatch) await run.afterBatch(started);
  }
}
