/**
 * Pure timing decisions of the agent: how long to wait before restarting a crashed instance and before
 * retrying the controller. Randomness is injected so tests can pin it.
 */

export const RESTART_BACKOFF = {
  /** Delay before the first restart (before jitter). */
  baseMs: 200,
  capMs: 30_000,
  /** A process that stayed healthy this long before crashing starts over at the base delay. */
  resetAfterHealthyMs: 10_000,
} as const;

export const CONTROLLER_BACKOFF = { baseMs: 200, capMs: 2_000 } as const;

/**
 * Exponential backoff with "equal jitter": the attempt-th delay lies in [d/2, d] where
 * d = min(cap, base · 2^attempt). Never 0, never above the cap.
 */
export function backoffDelayMs(
  attempt: number,
  opts: { baseMs: number; capMs: number },
  random: () => number = Math.random,
): number {
  const n = Math.max(0, Math.min(Math.floor(attempt), 40));
  const d = Math.min(opts.capMs, opts.baseMs * 2 ** n);
  const r = Math.min(1, Math.max(0, random()));
  return Math.max(1, Math.round(d / 2 + (r * d) / 2));
}

export function restartDelayMs(attempt: number, random: () => number = Math.random): number {
  return backoffDelayMs(attempt, RESTART_BACKOFF, random);
}

export function controllerRetryDelayMs(failures: number, random: () => number = Math.random): number {
  return backoffDelayMs(failures, CONTROLLER_BACKOFF, random);
}

/**
 * The restart attempt number to use after a crash, given the attempt number before this run and how
 * long the crashed run was continuously healthy (0 when it never became healthy).
 */
export function attemptAfterCrash(previousAttempt: number, healthyRunMs: number): number {
  return healthyRunMs >= RESTART_BACKOFF.resetAfterHealthyMs ? 0 : previousAttempt;
}

/**
 * The restart policy: at most `attempts` restarts within `intervalMs`. Given the times of the crashes
 * so far (this one included), the ones still inside the window, and whether the budget is spent —
 * then the instance is `failed` and the controller reschedules it on another host.
 */
export function restartBudget(
  crashes: readonly number[],
  now: number,
  policy: { attempts: number; intervalMs: number } | undefined,
): { recent: number[]; exceeded: boolean } {
  if (!policy) return { recent: [], exceeded: false };
  const recent = crashes.filter((t) => t > now - policy.intervalMs);
  return { recent, exceeded: recent.length > policy.attempts };
}
