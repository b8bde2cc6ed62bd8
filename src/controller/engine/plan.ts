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
