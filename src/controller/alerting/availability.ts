/**
 * Availability math (seed 004): a chain of hard dependencies is available only when every link is
 * (series: product), a set of redundant replicas when any one is (parallel: 1 − ∏(1 − a)).
 * Assumes independent failures — zones, not instances on the same host, are what make that true.
 */

export type AvailabilityNode =
  | { kind: 'component'; name: string; availability: number }
  | { kind: 'series'; name?: string; parts: readonly AvailabilityNode[] }
  | { kind: 'parallel'; name?: string; parts: readonly AvailabilityNode[] };

function check(a: number, what: string): number {
  if (!(a >= 0 && a <= 1)) throw new RangeError(`${what}: availability must be in [0, 1], got ${a}`);
  return a;
}

export function series(...as: number[]): number {
  return as.reduce((acc, a) => acc * check(a, 'series'), 1);
}

export function parallel(...as: number[]): number {
  return 1 - as.reduce((acc, a) => acc * (1 - check(a, 'parallel')), 1);
}

export function compose(node: AvailabilityNode): number {
  switch (node.kind) {
    case 'component':
      return check(node.availability, node.name);
    case 'series':
      return series(...node.parts.map(compose));
    case 'parallel':
      return parallel(...node.parts.map(compose));
  }
}

/** Each of `n` components in series needs `target^(1/n)` for the chain to meet `target`. */
export function requiredInSeries(target: number, n: number): number {
  check(target, 'target');
  return target ** (1 / n);
}

/** Each of `n` replicas in parallel needs `1 − (1 − target)^(1/n)`. */
export function requiredInParallel(target: number, n: number): number {
  check(target, 'target');
  return 1 - (1 - target) ** (1 / n);
}

/** Smallest number of parallel replicas of availability `a` that meets `target` (Infinity if a = 0). */
export function replicasNeeded(a: number, target: number): number {
  check(a, 'replica');
  check(target, 'target');
  if (a >= target) return 1;
  if (a <= 0) return Number.POSITIVE_INFINITY;
  if (target >= 1) return Number.POSITIVE_INFINITY;
  // 1 − (1 − a)^n ≥ target  ⇔  n ≥ log(1 − target) / log(1 − a)
  return Math.max(1, Math.ceil(Math.log(1 - target) / Math.log(1 - a) - 1e-9));
}

/** "Number of nines": 0.999 → 3. */
export function nines(a: number): number {
  return a >= 1 ? Number.POSITIVE_INFINITY : -Math.log10(1 - a);
}

/** Allowed downtime for availability `a` over a period (30 days by default), in ms. */
export function allowedDowntimeMs(a: number, periodMs = 30 * 24 * 3600 * 1000): number {
  return (1 - check(a, 'availability')) * periodMs;
}

/** Measured availability from up/down time, with maintenance excluded from both numerator and denominator. */
export function measuredAvailability(upMs: number, downMs: number): number {
  const total = upMs + downMs;
  return total <= 0 ? 1 : upMs / total;
}
