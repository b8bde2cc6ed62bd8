/**
 * Target tracking, as a pure function (the Kubernetes HPA's algorithm): the instance count that brings
 * the per-instance metric to its target, `ceil(current × metric / target)`, ignoring changes within a
 * 10 % tolerance. Scaling up is immediate but at most `scaleUpStep` instances at a time; scaling down
 * takes the highest recommendation of the stabilization window, so a dip does not shed capacity that a
 * recovery a minute later needs again. Always within min/max.
 */

export interface AutoscaleInput {
  now: number;
  /** Instances now (the service's count). */
  current: number;
  /** Observed metric per serving instance (CPU percent of a core, or requests per second). */
  perInstance: number;
  target: number;
  min: number;
  max: number;
  scaleUpStep: number;
  stabilizationMs: number;
  /** Earlier recommendations (kept by the caller, returned pruned). */
  history: ReadonlyArray<{ at: number; desired: number }>;
}

export interface AutoscaleDecision {
  desired: number;
  history: Array<{ at: number; desired: number }>;
  reason: string;
}

const TOLERANCE = 0.1;

export function autoscale(i: AutoscaleInput): AutoscaleDecision {
  const current = Math.max(0, i.current);
  const ratio = i.target > 0 ? i.perInstance / i.target : 1;
  let raw = current;
  if (current > 0 && Math.abs(ratio - 1) > TOLERANCE) raw = Math.ceil(current * ratio);
  if (current === 0 && i.perInstance > 0) raw = 1;
  raw = clamp(raw, i.min, i.max);
  const history = [...i.history.filter((h) => h.at > i.now - i.stabilizationMs), { at: i.now, desired: raw }];
  const metric = `${round(i.perInstance)} per instance, target ${i.target}`;
  if (raw > current) {
    const desired = clamp(Math.min(raw, current + i.scaleUpStep), i.min, i.max);
    return {
      desired,
      history,
      reason:
        `${metric}: scale up ${current} → ${desired}` +
        (desired < raw ? ` (step limit ${i.scaleUpStep}; ${raw} wanted)` : ''),
    };
  }
  const stable = Math.max(...history.map((h) => h.desired));
  const desired = clamp(Math.min(current, stable), i.min, i.max);
  if (desired < current) {
    return { desired, history, reason: `${metric}: scale down ${current} → ${desired}` };
  }
  return {
    desired: clamp(current, i.min, i.max),
    history,
    reason:
      raw < current
        ? `${metric}: holding ${current} (stabilization window: ${stable} recommended within it)`
        : `${metric}: holding ${current}`,
  };
}

function clamp(n: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, n));
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

/**
 * The `cpu` metric: the mean CPU (percent of one core) of the serving instances that reported one.
 * Instances without a value yet (just started, or the agent samples every few seconds) do not count;
 * undefined when none has one: no decision on no data.
 */
export function meanCpu(values: ReadonlyArray<number | undefined>): number | undefined {
  let sum = 0;
  let n = 0;
  for (const v of values) {
    if (v === undefined || !Number.isFinite(v)) continue;
    sum += v;
    n++;
  }
  return n > 0 ? sum / n : undefined;
}
