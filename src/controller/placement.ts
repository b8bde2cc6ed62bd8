import type { HostRecord, InstanceRecord } from './store/types.js';

/**
 * Choose a host for a new instance of `service`: among live hosts, the one with the fewest
 * instances of that service, then the fewest instances overall, then by name (stable).
 * Zone spreading, constraints and capacity arrive with the fleet issue; the shape stays.
 */
export function placeInstance(
  service: string,
  hosts: readonly HostRecord[],
  instances: readonly InstanceRecord[],
): HostRecord | undefined {
  let best: HostRecord | undefined;
  let bestKey: [number, number, string] | undefined;
  for (const h of hosts) {
    let mine = 0;
    let all = 0;
    for (const i of instances) {
      if (i.hostId !== h.id || i.desired !== 'running') continue;
      all++;
      if (i.service === service) mine++;
    }
    const key: [number, number, string] = [mine, all, h.name];
    if (!bestKey || compare(key, bestKey) < 0) {
      best = h;
      bestKey = key;
    }
  }
  return best;
}

function compare(a: [number, number, string], b: [number, number, string]): number {
  return a[0] - b[0] || a[1] - b[1] || a[2].localeCompare(b[2]);
}
