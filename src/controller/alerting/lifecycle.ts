import { createHash } from 'node:crypto';
import { NinesError } from '../../core/errors.js';
import { transition as guardedTransition, type Lifecycle } from '../../core/lifecycle.js';
import { canonicalLabels, type Labels, type Millis, type Severity } from './types.js';

/**
 * An alert's lifecycle (one per rule × label set, identified by its dedup key):
 *
 *   inactive ──cond──▶ pending ──held for `for`──▶ firing ──cond clears──▶ resolved
 *       ▲                 │  (cond clears: back to inactive, nothing sent)     │
 *       └─────────────────┘                                 cond again ──▶ pending / firing
 *
 * `acknowledged` is a **flag** on a firing alert, not a state: an acknowledged alert is still firing
 * (it still inhibits, still shows, still resolves), it only stops escalation. The flag is cleared when the
 * alert resolves, so the next episode starts unacknowledged.
 */
export type AlertState = 'inactive' | 'pending' | 'firing' | 'resolved';

export const alertLifecycle: Lifecycle<AlertState> = {
  name: 'alert',
  allowed: {
    inactive: ['pending', 'firing'],
    pending: ['inactive', 'firing'],
    firing: ['resolved'],
    resolved: ['pending', 'firing', 'inactive'],
  },
  terminal: [],
};

export type Comparator = '>' | '>=' | '<' | '<=' | '==' | '!=';

export interface AlertRule {
  id: string;
  /** Signal name, e.g. `node_filesystem_avail_ratio`, `check_up`, `http_5xx_ratio`. */
  signal: string;
  /** Equality selector on the sample's labels (all must match). */
  selector?: Labels;
  op: Comparator;
  threshold: number;
  /** How long the condition must hold before the alert fires (0 = fire at once). */
  forMs: Millis;
  severity: Severity;
  /** Static labels added to every alert of this rule (they take part in the dedup key). */
  labels?: Labels;
  summary?: string;
}

export interface Sample {
  signal: string;
  labels: Labels;
  /** `undefined` or NaN = no data: the condition counts as not met. */
  value: number | undefined;
}

/** What the store keeps per dedup key between evaluations. */
export interface AlertRecord {
  state: AlertState;
  /** When the condition started to hold in this episode (pending or firing). */
  activeSince?: Millis;
  firedAt?: Millis;
  resolvedAt?: Millis;
  acknowledged?: boolean;
  acknowledgedAt?: Millis;
  acknowledgedBy?: string;
  lastValue?: number;
}

export type AlertTransition = 'pending' | 'firing' | 'resolved';

export interface Evaluation {
  state: AlertState;
  transition?: AlertTransition;
  dedupKey: string;
  /** Labels of the alert: sample labels overlaid with the rule's static labels and `alertname`. */
  labels: Labels;
  /** The record to store. */
  next: AlertRecord;
}

export function compare(op: Comparator, value: number, threshold: number): boolean {
  switch (op) {
    case '>':
      return value > threshold;
    case '>=':
      return value >= threshold;
    case '<':
      return value < threshold;
    case '<=':
      return value <= threshold;
    case '==':
      return value === threshold;
    case '!=':
      return value !== threshold;
  }
}

/** Does this sample belong to this rule (same signal, selector labels all equal)? */
export function ruleSelects(rule: AlertRule, sample: Pick<Sample, 'signal' | 'labels'>): boolean {
  if (sample.signal !== rule.signal) return false;
  for (const [k, v] of Object.entries(rule.selector ?? {})) if (sample.labels[k] !== v) return false;
  return true;
}

export function alertLabels(rule: AlertRule, sampleLabels: Labels): Labels {
  return { ...sampleLabels, ...(rule.labels ?? {}), alertname: rule.id };
}

/**
 * Stable dedup key: sha256 over the rule id and the sorted alert labels, 32 hex chars (128 bits; well
 * under PagerDuty's 255-character limit). The same rule and labels give the same key on every controller.
 */
export function dedupKey(ruleId: string, labels: Labels): string {
  return createHash('sha256')
    .update(`${ruleId}\n${canonicalLabels(labels)}`)
    .digest('hex')
    .slice(0, 32);
}

function step(from: AlertState, to: AlertState): AlertState {
  return guardedTransition(alertLifecycle, from, to);
}

/**
 * Pure evaluator: given the rule, the latest sample of one series, the stored record (or undefined for
 * a series never seen) and the time, says the new state and the transition to notify, if any.
 * `pending` is reported as a transition (for the dashboard) but channels notify only `firing` and
 * `resolved`.
 */
export function evaluateRule(
  rule: AlertRule,
  sample: Sample,
  prev: AlertRecord | undefined,
  now: Millis,
): Evaluation {
  const labels = alertLabels(rule, sample.labels);
  const key = dedupKey(rule.id, labels);
  const p: AlertRecord = prev ?? { state: 'inactive' };
  const v = sample.value;
  const met = v !== undefined && !Number.isNaN(v) && compare(rule.op, v, rule.threshold);
  const lastValue = v !== undefined && !Number.isNaN(v) ? v : p.lastValue;
  const base = { ...p, ...(lastValue === undefined ? {} : { lastValue }) };

  if (met) {
    if (p.state === 'firing') return { state: 'firing', dedupKey: key, labels, next: base };
    const since = p.state === 'pending' && p.activeSince !== undefined ? p.activeSince : now;
    if (now - since >= rule.forMs) {
      const state = step(p.state, 'firing');
      return {
        state,
        transition: 'firing',
        dedupKey: key,
        labels,
        next: {
          state,
          activeSince: since,
          firedAt: now,
          acknowledged: false,
          ...(lastValue === undefined ? {} : { lastValue }),
        },
      };
    }
    if (p.state === 'pending') return { state: 'pending', dedupKey: key, labels, next: base };
    const state = step(p.state, 'pending');
    return {
      state,
      transition: 'pending',
      dedupKey: key,
      labels,
      next: { state, activeSince: now, ...(lastValue === undefined ? {} : { lastValue }) },
    };
  }

  // Condition not met (or no data).
  if (p.state === 'firing') {
    const state = step('firing', 'resolved');
    return {
      state,
      transition: 'resolved',
      dedupKey: key,
      labels,
      next: { ...base, state, resolvedAt: now, acknowledged: false },
    };
  }
  if (p.state === 'pending') {
    const state = step('pending', 'inactive');
    return {
      state,
      dedupKey: key,
      labels,
      next: { state, ...(lastValue === undefined ? {} : { lastValue }) },
    };
  }
  return { state: p.state, dedupKey: key, labels, next: base };
}

/** Acknowledge a firing alert (flag). Throws NINES_E_INVALID_TRANSITION unless it is firing. */
export function acknowledge(rec: AlertRecord, by: string, now: Millis): AlertRecord {
  if (rec.state !== 'firing')
    throw new NinesError(
      'NINES_E_INVALID_TRANSITION',
      `alert: only a firing alert can be acknowledged (it is ${rec.state})`,
      {
        lifecycle: 'alert',
        from: rec.state,
        to: 'acknowledged',
      },
    );
  return { ...rec, acknowledged: true, acknowledgedAt: now, acknowledgedBy: by };
}
