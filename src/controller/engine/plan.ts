import { type RollingConfig, resolveCount } from '../../core/config.js';

/**
 * Rolling deploy planning, as pure functions. The engine asks `nextRollingStep` what to do given how
 * many old and new instances exist, executes it, and asks again until it says done. Semantics follow
 * Kubernetes' Deployment: at most `desired + maxSurge` instances exist at once and at least
 * `desired - maxUnavailable` serve traffic. Percentages: surge rounds up, unavailable rounds down;
 * if both resolve to 0, surge becomes 1 so the deploy can progress.
 */

export interface RollingParams {
  desired: number;
  maxSurge: number;
  maxUnavailable: number;
}

export interface RollingState {
  /** Old-release instances still routed (ready). */
  oldReady: number;
  /** New-release instances healthy and routed. */
  newReady: number;
  /** New-release instances started but not yet routed. */
  newPending: number;
}

export interface RollingStep {
  start: number;
  stop: number;
  done: boolean;
}

export function resolveRolling(cfg: RollingConfig, desired: number): RollingParams {
  let maxSurge = resolveCount(cfg.maxSurge, desired, 'up');
  const maxUnavailable = resolveCount(cfg.maxUnavailable, desired, 'down');
  if (maxSurge === 0 && maxUnavailable === 0) maxSurge = 1;
  return { desired, maxSurge, maxUnavailable };
}

export function nextRollingStep(p: RollingParams, s: RollingState): RollingStep {
  if (s.oldReady === 0 && s.newReady === p.desired && s.newPending === 0) {
    return { start: 0, stop: 0, done: true };
  }
  const total = s.oldReady + s.newReady + s.newPending;
  const start = Math.max(0, Math.min(p.desired - s.newReady - s.newPending, p.desired + p.maxSurge - total));
  const minAvailable = p.desired - p.maxUnavailable;
  const available = s.oldReady + s.newReady;
  const stop = Math.max(0, Math.min(s.oldReady, available - minAvailable));
  return { start, stop, done: false };
}

/** The whole plan as a list of steps, assuming every start succeeds: for display and tests. */
export function planRolling(p: RollingParams, oldCount: number): RollingStep[] {
  const steps: RollingStep[] = [];
  const s: RollingState = { oldReady: oldCount, newReady: 0, newPending: 0 };
  for (let i = 0; i < 10_000; i++) {
    const step = nextRollingStep(p, s);
    if (step.done) return steps;
    if (step.start === 0 && step.stop === 0) throw new Error(`rolling plan is stuck at ${JSON.stringify(s)}`);
    steps.push(step);
    s.newReady += step.start;
    s.oldReady -= step.stop;
  }
  throw new Error('rolling plan did not converge');
}

// ---- zone by zone ---------------------------------------------------------------------------------

/** One zone's share of a zone-by-zone rolling deploy. */
export interface ZonePhase {
  zone: string;
  /** New-release instances this zone ends with. */
  target: number;
}

/**
 * The zones of a zone-by-zone rolling deploy, in the order they are rolled, and how many new
 * instances each ends with. Each zone keeps its count of the service's instances (old plus new ones
 * already there), so capacity stays where it was; a change of `desired` is spread one instance at a
 * time onto the zone with the fewest (growth) or taken from the one with the most (shrink), ties by
 * name. Zones are rolled by name; a zone that already runs only the new release comes first (a
 * resumed deploy finishes it before touching another).
 */
export function planZones(
  perZone: ReadonlyMap<string, { old: number; fresh: number }>,
  desired: number,
): ZonePhase[] {
  const zones = [...perZone.keys()].sort();
  if (zones.length === 0) return [];
  const target = new Map(zones.map((z) => [z, (perZone.get(z)?.old ?? 0) + (perZone.get(z)?.fresh ?? 0)]));
  let total = [...target.values()].reduce((a, b) => a + b, 0);
  const pick = (better: (a: number, b: number) => boolean) => {
    let best = zones[0]!;
    for (const z of zones) if (better(target.get(z)!, target.get(best)!)) best = z;
    return best;
  };
  while (total < desired) {
    const z = pick((a, b) => a < b);
    target.set(z, target.get(z)! + 1);
    total++;
  }
  while (total > desired) {
    const z = pick((a, b) => a > b);
    target.set(z, target.get(z)! - 1);
    total--;
  }
  const started = (z: string) => (perZone.get(z)?.fresh ?? 0) > 0;
  const order = [...zones.filter(started), ...zones.filter((z) => !started(z))];
  return order.map((zone) => ({ zone, target: target.get(zone)! }));
}

/**
 * The rolling limits inside one zone's phase: the zone's own target as `desired`, the service's surge
 * and unavailability. The other zones are all-old or all-new and fully available meanwhile, so the
 * service-wide bounds (at most desired + maxSurge exist, at least desired − maxUnavailable serve)
 * hold whenever they hold inside the zone.
 */
export function zoneParams(p: RollingParams, phase: ZonePhase): RollingParams {
  return { desired: phase.target, maxSurge: p.maxSurge, maxUnavailable: p.maxUnavailable };
}

/** The whole zone-by-zone plan (every start succeeding): per zone, its rolling steps. For display and tests. */
export function planZoneByZone(
  p: RollingParams,
  oldByZone: ReadonlyMap<string, number>,
): { zone: string; steps: RollingStep[] }[] {
  const perZone = new Map([...oldByZone].map(([z, old]) => [z, { old, fresh: 0 }]));
  return planZones(perZone, p.desired).map((phase) => ({
    zone: phase.zone,
    steps: planRolling(zoneParams(p, phase), oldByZone.get(phase.zone) ?? 0),
  }));
}
