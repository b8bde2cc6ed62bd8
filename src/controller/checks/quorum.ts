import type { CheckState } from '../../core/checks.js';

/**
 * Pure: the state of a check from the latest result of each location. One location failing is that
 * location's problem (its network, its resolver) until enough agree: `down` needs `quorum` failing
 * locations, fewer make it `degraded`. Results older than `staleAfterMs` do not count (a host that
 * stopped reporting is not a vote either way); with no fresh result the state is `unknown`. With
 * `consecutiveFailures` N a location counts as failing only once its last N results failed; until then
 * it counts as passing (a single timeout from one location is noise, not a vote).
 */

export interface LocationResult {
  location: string;
  ok: boolean;
  at: number;
  message: string;
  latencyMs: number;
  status?: number;
  certDaysLeft?: number;
  /** Failed results in a row from this location up to this one (0 when it passed; absent: 1 if failed). */
  failures?: number;
}

export interface QuorumVerdict {
  state: CheckState;
  failing: LocationResult[];
  passing: LocationResult[];
  /** Locations whose last result is too old to count. */
  stale: string[];
  /** Failing locations needed for `down` (after clamping to the locations that count). */
  quorum: number;
  message: string;
}

/** Default quorum: a majority of the counting locations; a configured one is capped at their number. */
export function quorumOf(configured: number | undefined, locations: number): number {
  if (locations === 0) return 0;
  return Math.min(configured ?? Math.floor(locations / 2) + 1, locations);
}

export function evaluateQuorum(
  results: readonly LocationResult[],
  o: {
    now: number;
    staleAfterMs: number;
    quorum?: number | undefined;
    consecutiveFailures?: number | undefined;
  },
): QuorumVerdict {
  const needed = o.consecutiveFailures ?? 1;
  const fails = (r: LocationResult) => !r.ok && (r.failures ?? 1) >= needed;
  const fresh: LocationResult[] = [];
  const stale: string[] = [];
  for (const r of results) {
    if (o.now - r.at > o.staleAfterMs) stale.push(r.location);
    else fresh.push(r);
  }
  const failing = fresh.filter(fails).sort((a, b) => a.location.localeCompare(b.location));
  const passing = fresh.filter((r) => !fails(r)).sort((a, b) => a.location.localeCompare(b.location));
  const quorum = quorumOf(o.quorum, fresh.length);
  const why = failing.map((r) => `${r.location}: ${r.message}`).join('; ');
  const of = `${failing.length} of ${fresh.length} location${fresh.length === 1 ? '' : 's'} (quorum ${quorum})`;
  let state: CheckState;
  let message: string;
  if (fresh.length === 0) {
    state = 'unknown';
    message = results.length === 0 ? 'no location has reported yet' : 'no recent result from any location';
  } else if (failing.length >= quorum) {
    state = 'down';
    message = `failing from ${of}: ${why}`;
  } else if (failing.length > 0) {
    state = 'degraded';
    message = `failing from ${of}: ${why}`;
  } else {
    state = 'up';
    message = `up from ${fresh.length} location${fresh.length === 1 ? '' : 's'}`;
  }
  return { state, failing, passing, stale, quorum, message };
}
