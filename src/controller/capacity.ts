import { type PlacementSpec, placementDefault } from '../core/fleet-config.js';
import type { HostState } from '../core/host-lifecycle.js';
import { type PlacedInstance, type PlacementHost, placeInstance } from './placement.js';

/**
 * What-if placement, as pure functions: can the instances of a host (a drain) or of a whole zone (N+1)
 * be carried by the rest of the fleet, with every service's constraints and the hosts' slots? The
 * answer names what is missing, per service.
 */

export interface CapacityService {
  name: string;
  placement: PlacementSpec | undefined;
  /** Instances that must keep serving while the moved ones have no place (drains only). */
  minAvailable?: number;
}

export interface Shortfall {
  service: string;
  /** Instances that found no host. */
  missing: number;
  reason: string;
}

/**
 * Place every instance on `leaving` hosts elsewhere (those hosts treated as not ready, the others
 * as they are), one after the other as the reconciler would. Returns what could not be placed.
 */
export function relocate(
  hosts: readonly PlacementHost[],
  instances: readonly PlacedInstance[],
  leaving: ReadonlySet<string>,
  services: readonly CapacityService[],
): Shortfall[] {
  const after: PlacementHost[] = hosts.map((h) =>
    leaving.has(h.id) ? { ...h, state: 'down' as HostState } : h,
  );
  const placed: PlacedInstance[] = instances.filter((i) => !leaving.has(i.hostId));
  const moving = instances.filter((i) => leaving.has(i.hostId));
  const out = new Map<string, Shortfall>();
  for (const i of moving) {
    const svc = services.find((s) => s.name === i.service);
    const r = placeInstance({
      service: i.service,
      placement: svc?.placement ?? placementDefault,
      hosts: after,
      instances: placed,
    });
    if (r.ok) {
      placed.push({ service: i.service, hostId: r.host.id });
      continue;
    }
    const s = out.get(i.service) ?? { service: i.service, missing: 0, reason: r.reason };
    s.missing++;
    out.set(i.service, s);
  }
  return [...out.values()];
}

export interface ZoneCapacity {
  zone: string;
  hosts: number;
  instances: number;
  /** Free slots in the zone (null: some host declares no limit). */
  freeSlots: number | null;
  /** True when the other zones can carry every instance of this zone. */
  survivable: boolean;
  shortfall: Shortfall[];
}

/** The N+1 check: for each zone, whether the other zones can carry its instances if it is lost. */
export function zoneCapacity(
  hosts: readonly PlacementHost[],
  instances: readonly PlacedInstance[],
  services: readonly CapacityService[],
): ZoneCapacity[] {
  const zones = [...new Set(hosts.map((h) => h.zone))].sort();
  return zones.map((zone) => {
    const inZone = hosts.filter((h) => h.zone === zone);
    const ids = new Set(inZone.map((h) => h.id));
    const count = (id: string) => instances.filter((i) => i.hostId === id).length;
    const free = inZone.some((h) => h.slots === undefined)
      ? null
      : inZone.reduce((n, h) => n + Math.max(0, (h.slots ?? 0) - count(h.id)), 0);
    const shortfall = relocate(hosts, instances, ids, services);
    return {
      zone,
      hosts: inZone.length,
      instances: instances.filter((i) => ids.has(i.hostId)).length,
      freeSlots: free,
      survivable: shortfall.length === 0,
      shortfall,
    };
  });
}
