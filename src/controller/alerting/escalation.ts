import type { Millis } from './types.js';

// ─── On-call schedules ─────────────────────────────────────────────────────────────────────────────────

/**
 * A rotation hands off every `shiftMs` starting at `handoffAt` (an epoch ms of one handoff, which fixes
 * the phase: e.g. a Monday 09:00 UTC with a 7-day shift = weekly handoff on Mondays at 09:00). The user
 * on call is `users[floor((t − handoffAt) / shiftMs) mod n]`. Before `handoffAt` nobody is on call.
 */
export interface Rotation {
  users: readonly string[];
  handoffAt: Millis;
  shiftMs: Millis;
  /** Optional end of the rotation (e.g. replaced by a new one). */
  until?: Millis;
}

/** An override puts a user on call for [start, end) regardless of the rotations. */
export interface Override {
  user: string;
  start: Millis;
  end: Millis;
}

/** Layers: the last rotation that has someone on call at t wins; overrides beat every layer. */
export interface Schedule {
  id: string;
  rotations: readonly Rotation[];
  overrides?: readonly Override[];
}

export function rotationOnCall(r: Rotation, t: Millis): string | undefined {
  if (r.users.length === 0 || t < r.handoffAt || (r.until !== undefined && t >= r.until)) return undefined;
  const shift = Math.floor((t - r.handoffAt) / r.shiftMs);
  return r.users[shift % r.users.length];
}

export function onCallAt(s: Schedule, t: Millis): string | undefined {
  for (let i = (s.overrides?.length ?? 0) - 1; i >= 0; i--) {
    const o = s.overrides?.[i];
    if (o !== undefined && o.start <= t && t < o.end) return o.user;
  }
  for (let i = s.rotations.length - 1; i >= 0; i--) {
    const r = s.rotations[i];
    const u = r === undefined ? undefined : rotationOnCall(r, t);
    if (u !== undefined) return u;
  }
  return undefined;
}

/** Next handoff of a rotation strictly after t. */
export function nextHandoff(r: Rotation, t: Millis): Millis {
  if (t < r.handoffAt) return r.handoffAt;
  return r.handoffAt + (Math.floor((t - r.handoffAt) / r.shiftMs) + 1) * r.shiftMs;
}

// ─── Escalation policies ───────────────────────────────────────────────────────────────────────────────

export type Target =
  | { kind: 'user'; id: string }
  | { kind: 'schedule'; id: string }
  /** A channel directly (e.g. a team Slack webhook). */
  | { kind: 'channel'; id: string };

export interface EscalationLevel {
  targets: readonly Target[];
  /** How long to wait without acknowledgement before going to the next level. */
  escalateAfterMs: Millis;
}

export interface EscalationPolicy {
  id: string;
  levels: readonly EscalationLevel[];
  /** How many times to run through all levels again after the last one (0 = once only). */
  repeat: number;
}

export interface AlertTiming {
  triggeredAt: Millis;
  ackedAt?: Millis;
  resolvedAt?: Millis;
}

export interface EscalationStep {
  /** Stable id for the delivery log: `<round>.<level>`. */
  id: string;
  round: number;
  level: number;
  at: Millis;
  targets: readonly Target[];
  /** Users resolved from `schedule` targets (on call at `at`) and `user` targets. */
  users: string[];
  channels: string[];
}

export interface EscalationPlan {
  /** Steps whose time has come (at ≤ now) and that the ack/resolve did not cancel. */
  due: EscalationStep[];
  /** Time of the next step, for the scheduler; undefined when nothing more will happen. */
  nextAt?: Millis;
}

/** All steps of the policy, in order, as if nobody ever acknowledged. */
export function escalationTimeline(
  p: EscalationPolicy,
  triggeredAt: Millis,
): Omit<EscalationStep, 'users' | 'channels'>[] {
  const out: Omit<EscalationStep, 'users' | 'channels'>[] = [];
  let at = triggeredAt;
  for (let round = 0; round <= p.repeat; round++) {
    for (let level = 0; level < p.levels.length; level++) {
      const l = p.levels[level];
      if (l === undefined) continue;
      out.push({ id: `${round}.${level}`, round, level, at, targets: l.targets });
      at += l.escalateAfterMs;
    }
  }
  return out;
}

/**
 * Which notifications are due at `now`: every step at or before now, unless the alert was acknowledged
 * or resolved before the step's time. Returns all due steps (idempotent): the caller sends those whose
 * id is not yet in the delivery log (`escalation:<dedupKey>:<firedAt>:<step id>`).
 */
export function escalationDue(
  p: EscalationPolicy,
  timing: AlertTiming,
  now: Millis,
  schedules: ReadonlyMap<string, Schedule> = new Map(),
): EscalationPlan {
  const stopAt = Math.min(
    timing.ackedAt ?? Number.POSITIVE_INFINITY,
    timing.resolvedAt ?? Number.POSITIVE_INFINITY,
  );
  const due: EscalationStep[] = [];
  let nextAt: Millis | undefined;
  for (const s of escalationTimeline(p, timing.triggeredAt)) {
    if (s.at >= stopAt) break;
    if (s.at > now) {
      nextAt = s.at;
      break;
    }
    const users: string[] = [];
    const channels: string[] = [];
    for (const t of s.targets) {
      if (t.kind === 'user') users.push(t.id);
      else if (t.kind === 'channel') channels.push(t.id);
      else {
        const sched = schedules.get(t.id);
        const u = sched === undefined ? undefined : onCallAt(sched, s.at);
        if (u !== undefined) users.push(u);
      }
    }
    due.push({ ...s, users: [...new Set(users)], channels });
  }
  return nextAt === undefined ? { due } : { due, nextAt };
}
