/** Shared alerting types. Everything in `alerting/` is pure except `channels/` (which do I/O). */

export type Labels = Readonly<Record<string, string>>;

/** PagerDuty's four severities; every channel maps to them. */
export type Severity = 'critical' | 'error' | 'warning' | 'info';

/** Time is always epoch milliseconds, injected by the caller (never `Date.now()` inside the core). */
export type Millis = number;

export const SECOND = 1000;
export const MINUTE = 60 * SECOND;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

/** Labels sorted by name, as `k="v"` pairs joined by commas: a stable textual identity. */
export function canonicalLabels(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k] ?? '')}`)
    .join(',');
}
