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
  instances: readonly HealInstance[];
}

export interface HealPlan {
  /** Lost instances to forget. */
  forget: Array<{ id: string; reason: string }>;
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
    else if (i.state === 'failed') forget.push({ id: i.id, reason: 'its agent gave up on it (failed)' });
    else alive.push(i);
  }
  const start = Math.max(0, input.desired - alive.length);
  const surplus = Math.max(0, alive.length - input.desired);
  const stop = [...alive]
    .sort(
      (a, b) =>
        usefulness(a, input.currentRelease) - usefulness(b, input.currentRelease) ||
        b.createdAt - a.createdAt,
    )
    .slice(0, surplus)
    .map((i) => i.id);
  return { forget, start, stop };
}

/** Lower is less useful: other releases, then unhealthy, then unrouted. */
function usefulness(i: HealInstance, current: string): number {
  return (i.releaseVersion === current ? 4 : 0) + (i.healthy ? 2 : 0) + (i.route === 'ready' ? 1 : 0);
}

export function isNoop(p: HealPlan): boolean {
  return p.forget.length === 0 && p.start === 0 && p.stop.length === 0;
}
