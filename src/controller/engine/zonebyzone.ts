import type { InstanceRecord, ReleaseRecord, Store } from '../store/types.js';
import type { InstanceOps, OpContext } from './ops.js';
import { nextRollingStep, planZones, type RollingParams, zoneParams } from './plan.js';
import { allOrFirstError } from './run.js';

/**
 * Rolling, one zone at a time (`rolling.zoneByZone`): every batch of a zone is done — new instances
 * placed in that zone, its old ones drained — before the next zone is touched, so a bad release
 * that passes its health check but breaks in production hurts one zone, not a slice of every zone.
 * `old` and `fresh` are the routed instances of the old and the new release, as the rolling loop has
 * them; the pure planner (`planZones`, `nextRollingStep`) decides each step.
 */
export async function rollZoneByZone(o: {
  store: Store;
  ops: InstanceOps;
  ctx: OpContext;
  release: ReleaseRecord;
  params: RollingParams;
  old: InstanceRecord[];
  fresh: InstanceRecord[];
  created: InstanceRecord[];
  checkpoint: () => Promise<void>;
  afterBatch?: ((batch: InstanceRecord[]) => Promise<void>) | undefined;
}): Promise<void> {
  const { ctx, params, old, fresh } = o;
  const zoneOfHost = new Map((await o.store.listHosts()).map((h) => [h.id, h.zone]));
  const zoneOf = (i: InstanceRecord) => zoneOfHost.get(i.hostId) ?? 'default';
  const perZone = new Map<string, { old: number; fresh: number }>();
  for (const i of old) {
    const z = perZone.get(zoneOf(i)) ?? { old: 0, fresh: 0 };
    z.old++;
    perZone.set(zoneOf(i), z);
  }
  for (const i of fresh) {
    const z = perZone.get(zoneOf(i)) ?? { old: 0, fresh: 0 };
    z.fresh++;
    perZone.set(zoneOf(i), z);
  }
  const phases = planZones(perZone, params.desired);
  await ctx.event(
    'rolling.zones',
    `zone by zone: ${phases.map((p) => `${p.zone} (${p.target})`).join(' → ')}`,
    { zones: phases },
  );
  for (const phase of phases) {
    const zp = zoneParams(params, phase);
    const zoneOld = old.filter((i) => zoneOf(i) === phase.zone);
    const zoneFresh = fresh.filter((i) => zoneOf(i) === phase.zone);
    await ctx.event('rolling.zone', `zone ${phase.zone}: ${zoneOld.length} old → ${phase.target} new`, {
      zone: phase.zone,
      old: zoneOld.length,
      target: phase.target,
    });
    const zctx: OpContext = { ...ctx, zone: phase.zone };
    for (;;) {
      await o.checkpoint();
      const step = nextRollingStep(zp, {
        oldReady: zoneOld.length,
        newReady: zoneFresh.length,
        newPending: 0,
      });
      if (step.done) break;
      const stopping = zoneOld.splice(0, step.stop);
      const tasks: Promise<unknown>[] = stopping.map((i) => o.ops.stop(ctx, i));
      const batch: InstanceRecord[] = [];
      for (let k = 0; k < step.start; k++) {
        tasks.push(
          o.ops.start(zctx, o.release, o.created).then((i) => {
            zoneFresh.push(i);
            fresh.push(i);
            batch.push(i);
          }),
        );
      }
      await allOrFirstError(tasks);
      for (const i of stopping) old.splice(old.indexOf(i), 1);
      if (o.afterBatch) await o.afterBatch(batch);
    }
    await ctx.event('rolling.zone-done', `zone ${phase.zone} is on ${o.release.version}`, {
      zone: phase.zone,
    });
  }
}
