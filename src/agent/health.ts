/**
 * Readiness as the agent's probe sees it: `rise` consecutive passes make an instance healthy, `fall`
 * consecutive failures make it unhealthy again. Starts unhealthy. Pure: no timers, no I/O.
 */
export interface HealthState {
  healthy: boolean;
  passes: number;
  fails: number;
}

export const initialHealth: HealthState = { healthy: false, passes: 0, fails: 0 };

export function nextHealth(s: HealthState, ok: boolean, rise: number, fall: number): HealthState {
  const r = Math.max(1, Math.floor(rise));
  const f = Math.max(1, Math.floor(fall));
  if (ok) {
    const passes = s.passes + 1;
    return { healthy: s.healthy || passes >= r, passes, fails: 0 };
  }
  const fails = s.fails + 1;
  return { healthy: s.healthy && fails < f, passes: 0, fails };
}
