import { type CounterPoint, histogramQuantile } from './signals.js';

/** One point of a service's live charts (the dashboard's Services page). */
export interface RatePoint {
  /** End of the interval (epoch ms). */
  at: number;
  requestsPerSecond: number;
  /** 5xx share of the interval's answers; null when there were none. */
  errorRatio: number | null;
  /** p99 answer time over the interval, seconds; null without latency data or answers. */
  p99Seconds: number | null;
}

/**
 * Pure: rates over consecutive intervals of at least `stepMs` from a service's cumulative counter points
 * (Signals.serviceHistory), for intervals ending after `sinceMs`. The newest point always closes an
 * interval (it is the live tail the proxies update in place), so the chart reaches "now".
 */
export function serviceRates(
  le: readonly number[] | undefined,
  points: readonly CounterPoint[],
  sinceMs: number,
  stepMs: number,
): RatePoint[] {
  const out: RatePoint[] = [];
  let prev: CounterPoint | undefined;
  points.forEach((p, i) => {
    if (!prev) {
      prev = p;
      return;
    }
    const last = i === points.length - 1;
    if (p.at <= prev.at || (p.at - prev.at < stepMs && !last)) return;
    if (p.at > sinceMs) {
      const requests = Math.max(0, p.requests - prev.requests);
      const failed = Math.max(0, p.failed - prev.failed);
      let p99: number | null = null;
      if (le && p.latency && prev.latency && p.latency.length === prev.latency.length) {
        const before = prev.latency;
        const delta = p.latency.map((c, k) => Math.max(0, c - (before[k] ?? 0)));
        p99 = histogramQuantile(le, delta, 0.99) ?? null;
      }
      out.push({
        at: p.at,
        requestsPerSecond: requests / ((p.at - prev.at) / 1000),
        errorRatio: requests > 0 ? failed / requests : null,
        p99Seconds: p99,
      });
    }
    prev = p;
  });
  return out;
}
