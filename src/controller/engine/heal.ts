import type { InstanceState } from '../../core/lifecycle.js';

/**
 * What the reconciler should do to keep a service at its instance count, as a pure function.
 * An instance is lost when its host is down or its agent gave up on it (`failed`); lost instances are
 * forgotten (a host that comes back stops them: they are no longer in its desired state, so nothing
 * is ever doubled) and replaced. A surplus is stopped, least useful first.
 */

export interface HealInstance {
  id: string;
  releaseVersion: string;
  hostId: string;
  desired: 'running' | 'stopped';
  route: 'none' | 'ready' | 'draining';
  state: InstanceState | undefined;
  healthy: boolean;
  createdAt: number;
}

export interface HealInput {
  desired: number;
  currentRelease: string;
  hostsUp: ReadonlySet<string>;
  /** Hosts being drained (operator drain, evacuated zone): their instances move elsewhere. */
  moving?: ReadonlySet<string>;
  instances: readonly HealInstance[];
}

export interface HealPlan {
  /** Lost instances to forget; `failed`: the agent gave up on it (reschedule with backoff, elsewhere). */
  forget: Array<{ id: string; reason: string; failed?: boolean }>;
  /** Instances on draining hosts: start a replacement elsewhere first, then drain and stop each. */
  move: string[];
  /** How many new instances of the current release to start. */
  start: number;
  /** Surplus instances to drain and stop. */
  stop: string[];
}

export function planHeal(input: HealInput): HealPlan {
  const members = input.instances.filter((i) => i.desired === 'running');
  const forget: HealPlan['forget'] = [];
  const alive: HealInstance[] = [];
  for (const i of members) {
    if (!input.hostsUp.has(i.hostId)) forget.push({ id: i.id, reason: `its host ${i.hostId} is down` });
    else if (i.state === 'failed')
      forget.push({ id: i.id, reason: 'its agent gave up on it (failed)', failed: true });
    else alive.push(i);
  }
  const moving = input.moving;
  const move = moving
    ? alive.filter((i) => moving.has(i.hostId) && i.releaseVersion === input.currentRelease).map((i) => i.id)
    : [];
  const start = Math.max(0, input.desired - alive.length);
  const surplus = Math.max(0, alive.length - input.desired);
  const stop = [...alive]
    .sort(
      (a, b) =>
        usefulness(a, input.currentRelease, input.moving) -
          usefulness(b, input.currentRelease, input.moving) || b.createdAt - a.createdAt,
    )
    .slice(0, surplus)
    .map((i) => i.id);
  // An instance that is stopped as surplus anyway need not move first.
  return { forget, move: move.filter((id) => !stop.includes(id)), start, stop };
}

/** Lower is less useful: other releases, then unhealthy, then unrouted, then on a draining host. */
function usefulness(i: HealInstance, current: string, moving: ReadonlySet<string> | undefined): number {
  return (
    (i.releaseVersion === current ? 8 : 0) +
    (i.healthy ? 4 : 0) +
    (i.route === 'ready' ? 2 : 0) +
    (moving?.has(i.hostId) ? 0 : 1)
  );
}

export function isNoop(p: HealPlan): boolean {
  return p.forget.length === 0 && p.start === 0 && p.stop.length === 0 && p.move.length === 0;
}

/** The instance count to keep: `instances` within `min`..`max`. */
export function clampDesired(instances: number, scaling: { min: number; max: number } | undefined): number {
  if (!scaling) return instances;
  return Math.min(scaling.max, Math.max(scaling.min, instances));
}

/**
 * Delay before rescheduling a service's instance after its agent gave up on it: immediate the first
 * time, then 1 s doubling to 60 s while failures keep coming (a crash-looping release should not hop
 * from host to host at full speed).
 */
export function rescheduleDelayMs(consecutiveFailures: number): number {
  if (consecutiveFailures <= 1) return 0;
  return Math.min(60_000, 1000 * 2 ** (consecutiveFailures - 2));
}
