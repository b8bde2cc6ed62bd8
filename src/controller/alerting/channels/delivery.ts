import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Millis } from '../types.js';
import type { Attempt, DeliveryResult } from './types.js';

/** The outcome of one attempt, as a channel reports it to the retry loop. */
export interface AttemptOutcome {
  ok: boolean;
  status?: number;
  error?: string;
  /** Retry-After from the response, already parsed to ms. */
  retryAfterMs?: number;
  /** False for errors that a retry cannot fix (400, 401, 403, 404, SMTP 5xx). */
  retryable: boolean;
}

export interface RetryPolicy {
  /** Total attempts, including the first. */
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Upper bound on a server's Retry-After we are willing to wait inside one delivery. */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 5,
  baseDelayMs: 500,
  maxDelayMs: 30_000,
  maxRetryAfterMs: 120_000,
};

export interface RetryDeps {
  now?: () => Millis;
  sleep?: (ms: number) => Promise<unknown>;
  random?: () => number;
}

/**
 * Parses an HTTP Retry-After value: delta-seconds (`120`) or an HTTP date
 * (`Wed, 21 Oct 2015 07:28:00 GMT`). Returns ms from `now` (≥ 0), or undefined if absent/invalid.
 */
export function parseRetryAfter(value: string | undefined | null, now: Millis): number | undefined {
  if (value === undefined || value === null) return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, t - now);
}

/** Exponential backoff with "equal jitter": half fixed, half random, so retries of many senders spread out. */
export function backoffDelay(attempt: number, p: RetryPolicy, random: () => number = Math.random): number {
  const exp = Math.min(p.maxDelayMs, p.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp / 2 + (random() * exp) / 2);
}

/** HTTP statuses worth retrying: 408, 425, 429 and every 5xx. */
export function retryableStatus(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || status >= 500;
}

/**
 * Runs `attempt` until it succeeds, fails with a non-retryable error, or `maxAttempts` is reached.
 * Between attempts waits the backoff, or the server's Retry-After (429/503) when that is longer — up to
 * `maxRetryAfterMs`; a longer Retry-After ends the delivery (the scheduler retries later). Every attempt
 * is recorded (start, duration, status, error, the wait that followed).
 */
export async function deliverWithRetry(
  channel: string,
  attempt: () => Promise<AttemptOutcome>,
  policy: RetryPolicy = DEFAULT_RETRY,
  deps: RetryDeps = {},
): Promise<DeliveryResult> {
  const now = deps.now ?? Date.now;
  const wait = deps.sleep ?? ((ms: number) => sleep(ms));
  const random = deps.random ?? Math.random;
  const attempts: Attempt[] = [];
  for (let n = 1; ; n++) {
    const startedAt = now();
    const t0 = performance.now();
    let out: AttemptOutcome;
    try {
      out = await attempt();
    } catch (err) {
      out = { ok: false, error: err instanceof Error ? err.message : String(err), retryable: true };
    }
    const rec: Attempt = { n, startedAt, durationMs: Math.round((performance.now() - t0) * 10) / 10 };
    if (out.status !== undefined) rec.status = out.status;
    if (out.error !== undefined) rec.error = out.error;
    attempts.push(rec);
    if (out.ok) return { ok: true, channel, attempts };
    if (!out.retryable) return { ok: false, channel, attempts, error: out.error ?? `status ${out.status}` };
    if (n >= policy.maxAttempts)
      return {
        ok: false,
        channel,
        attempts,
        error: `gave up after ${n} attempts: ${out.error ?? `status ${out.status}`}`,
      };
    let delay = backoffDelay(n, policy, random);
    if (out.retryAfterMs !== undefined) {
      if (out.retryAfterMs > policy.maxRetryAfterMs)
        return {
          ok: false,
          channel,
          attempts,
          error: `Retry-After ${out.retryAfterMs} ms exceeds ${policy.maxRetryAfterMs} ms; deferred`,
        };
      delay = Math.max(delay, out.retryAfterMs);
    }
    rec.retryInMs = delay;
    await wait(delay);
  }
}

// ─── Exactly one notification per transition: the delivery log ─────────────────────────────────────────

/**
 * Key of one delivery: the alert (dedup key), the transition and its time (`firing@1700000000000`: a
 * re-fire after a resolve is a new episode and must notify again), and the channel. Escalation steps
 * use `transition = escalation:<round>.<level>`.
 */
export function deliveryKey(
  dedupKey: string,
  transition: string,
  transitionAt: Millis,
  channel: string,
): string {
  return createHash('sha256').update(`${dedupKey}\n${transition}@${transitionAt}\n${channel}`).digest('hex');
}

/** A row of the delivery log table (see docs/alerting.md for the SQL). */
export interface DeliveryLogRow {
  key: string;
  state: 'claimed' | 'sent' | 'failed';
  claimedBy: string;
  leaseUntil: Millis;
  attempts: number;
}

export type ClaimDecision =
  | { action: 'send'; why: 'new' | 'lease-expired' | 'mine' }
  | { action: 'skip'; why: 'sent' | 'claimed-by-other' | 'failed-final' };

/**
 * Decide whether this controller may send. The store does the atomic part: `INSERT … ON CONFLICT DO
 * NOTHING` of a `claimed` row with a lease, or `UPDATE … WHERE key = ? AND state = 'claimed' AND
 * lease_until < now` to take over an expired claim; whoever's write succeeds sends. This function is the
 * decision both sides apply to the row they read.
 */
export function claimDecision(
  row: DeliveryLogRow | undefined,
  me: string,
  now: Millis,
  maxDeliveries = 3,
): ClaimDecision {
  if (row === undefined) return { action: 'send', why: 'new' };
  if (row.state === 'sent') return { action: 'skip', why: 'sent' };
  if (row.state === 'failed' && row.attempts >= maxDeliveries) return { action: 'skip', why: 'failed-final' };
  if (row.state === 'claimed' && row.claimedBy === me) return { action: 'send', why: 'mine' };
  if (row.leaseUntil > now) return { action: 'skip', why: 'claimed-by-other' };
  return { action: 'send', why: 'lease-expired' };
}
