import { DAY, HOUR, MINUTE, type Millis } from './types.js';

/**
 * SLO burn rates (Google SRE workbook, "Alerting on SLOs", multiwindow multi-burn-rate).
 *
 * burn rate = observed error ratio / allowed error ratio, where allowed = 1 − objective.
 * A burn rate of 1 spends exactly the whole error budget over the SLO period (30 days here).
 */

export interface Counts {
  good: number;
  total: number;
}

export interface BurnWindow {
  name: string;
  longMs: Millis;
  shortMs: Millis;
  factor: number;
  severity: 'page' | 'ticket';
}

/** The workbook's table for a 30-day SLO. Budget spent when it triggers = factor × long / 30 d. */
export const DEFAULT_BURN_WINDOWS: readonly BurnWindow[] = [
  { name: 'page-1h', longMs: HOUR, shortMs: 5 * MINUTE, factor: 14.4, severity: 'page' }, // 2 % of budget
  { name: 'page-6h', longMs: 6 * HOUR, shortMs: 30 * MINUTE, factor: 6, severity: 'page' }, // 5 %
  { name: 'ticket-3d', longMs: 3 * DAY, shortMs: 6 * HOUR, factor: 1, severity: 'ticket' }, // 10 %
];

export const SLO_PERIOD_MS: Millis = 30 * DAY;

export function errorRatio(c: Counts): number {
  if (c.total <= 0) return 0;
  const bad = Math.max(0, c.total - c.good);
  return bad / c.total;
}

export function burnRate(objective: number, c: Counts): number {
  if (!(objective > 0 && objective < 1)) throw new RangeError(`objective must be in (0, 1): ${objective}`);
  return errorRatio(c) / (1 - objective);
}

/** Share of the period's error budget a burn `factor` spends over `windowMs`. */
export function budgetSpent(factor: number, windowMs: Millis, periodMs: Millis = SLO_PERIOD_MS): number {
  return (factor * windowMs) / periodMs;
}

/** Share of the error budget left over the period so far (1 = untouched, ≤ 0 = exhausted). */
export function errorBudgetRemaining(objective: number, c: Counts): number {
  if (c.total <= 0) return 1;
  const allowedBad = (1 - objective) * c.total;
  return 1 - (c.total - c.good) / allowedBad;
}

export interface BurnAlert {
  window: BurnWindow;
  longBurn: number;
  shortBurn: number;
  firing: boolean;
}

/**
 * Evaluates every window pair: an alert fires when the burn rate is ≥ factor over the long window AND
 * over the short one (the short window makes it resolve quickly once the burning stops).
 * `countsOver(ms)` returns good/total request counts over the last `ms`.
 */
export function evaluateBurnRates(
  objective: number,
  countsOver: (windowMs: Millis) => Counts,
  windows: readonly BurnWindow[] = DEFAULT_BURN_WINDOWS,
): BurnAlert[] {
  return windows.map((window) => {
    const longBurn = burnRate(objective, countsOver(window.longMs));
    const shortBurn = burnRate(objective, countsOver(window.shortMs));
    return { window, longBurn, shortBurn, firing: longBurn >= window.factor && shortBurn >= window.factor };
  });
}

/** The most severe firing alert, if any: `page` beats `ticket`. */
export function worstBurn(alerts: readonly BurnAlert[]): BurnAlert | undefined {
  return alerts.find((a) => a.firing && a.window.severity === 'page') ?? alerts.find((a) => a.firing);
}
