import type { PlacementSpec } from '../core/fleet-config.js';
import type { HostState } from '../core/host-lifecycle.js';

/**
 * Where a new instance goes, as a pure function. Eligible hosts are `ready`, carry every label of the
 * service's `constraints` and have a free slot (declared capacity; none declared: unlimited). Among
 * them, the service spreads across zones: a zone may take the instance only if its count of the
 * service's instances would then exceed the smallest count of an eligible zone by at most `maxSkew`
 * (1: as even as the fleet allows). A full zone does not hold the others back — it cannot take the
 * instance, so it is not a zone to balance against. Within the allowed zones: the host with the
 * fewest instances of the service, then the emptier zone, then the lowest share of its slots used,
 * then by name (stable).
 * Hosts in `avoid` (where the instance just failed) are used only when no other host can take it.
 */

export interface PlacementHost {
  id: string;
  name: string;
  zone: string;
  labels: Readonly<Record<string, string>>;
  state: HostState;
  /** Declared instance slots; undefined: no limit. */
  slots: number | undefined;
}

export interface PlacedInstance {
  service: string;
  hostId: string;
}

export interface PlacementInput {
  service: string;
  placement: PlacementSpec;
  hosts: readonly PlacementHost[];
  /** Every instance record that holds a slot (any service, any desired state). */
  instances: readonly PlacedInstance[];
  avoid?: ReadonlySet<string>;
  /**
   * The counts `instances` gives (`countPlaced`), when the caller keeps them: placing a thousand
   * instances in a row then costs O(hosts) each instead of O(instances).
   */
  counts?: PlacedCounts;
}

export interface PlacedCounts {
  /** Instances per host, any service. */
  used: ReadonlyMap<string, number>;
  /** Instances of the service being placed, per host. */
  mine: ReadonlyMap<string, number>;
}

/** Instances per host, all and of `service`. */
export function countPlaced(
  instances: readonly PlacedInstance[],
  service: string,
): { used: Map<string, number>; mine: Map<string, number> } {
  const used = new Map<string, number>();
  const mine = new Map<string, number>();
  for (const i of instances) {
    used.set(i.hostId, (used.get(i.hostId) ?? 0) + 1);
    if (i.service === service) mine.set(i.hostId, (mine.get(i.hostId) ?? 0) + 1);
  }
  return { used, mine };
}

export type PlacementResult = { ok: true; host: PlacementHost } | { ok: false; reason: string };

export function placeInstance(input: PlacementInput): PlacementResult {
  const { used, mine } = input.counts ?? countPlaced(input.instances, input.service);
  const why = { notReady: 0, labels: 0, full: 0 };
  const eligible: PlacementHost[] = [];
  // Once per placement, not per host (a batch places a thousand instances over a thousand hosts).
  const constraints = Object.entries(input.placement.constraints);
  for (const h of input.hosts) {
    if (h.state !== 'ready') why.notReady++;
    else if (!matchesAll(h.labels, constraints)) why.labels++;
    else if (h.slots !== undefined && (used.get(h.id) ?? 0) >= h.slots) why.full++;
    else eligible.push(h);
  }
  if (eligible.length === 0) {
    const parts = [
      why.notReady && `${why.notReady} not ready (down, cordoned or draining)`,
      why.labels && `${why.labels} without ${labelText(input.placement.constraints)}`,
      why.full && `${why.full} full`,
    ].filter(Boolean);
    return {
      ok: false,
      reason:
        `no host can take an instance of ${input.service}: ${input.hosts.length} host(s)` +
        (parts.length ? `, ${parts.join(', ')}` : ''),
    };
  }
  const avoid = input.avoid;
  const preferred = avoid && avoid.size > 0 ? eligible.filter((h) => !avoid.has(h.id)) : eligible;
  const pool = preferred.length > 0 ? preferred : eligible;

  const zoneCount = new Map<string, number>();
  for (const h of pool) zoneCount.set(h.zone, 0);
  for (const h of input.hosts) {
    const m = mine.get(h.id);
    if (!m) continue;
    const z = zoneCount.get(h.zone);
    if (z !== undefined) zoneCount.set(h.zone, z + m);
  }
  const min = Math.min(...zoneCount.values());
  const allowed = pool.filter((h) => (zoneCount.get(h.zone) ?? 0) + 1 - min <= input.placement.maxSkew);

  // The lowest (mine, zone count, share of slots used, name): compared field by field without building
  // a key per host (a thousand placements over a thousand hosts in one batch, bench/fleet).
  let best: PlacementHost | undefined;
  let bMine = 0;
  let bZone = 0;
  let bShare = 0;
  for (const h of allowed) {
    const m = mine.get(h.id) ?? 0;
    const z = zoneCount.get(h.zone) ?? 0;
    const share = h.slots ? (used.get(h.id) ?? 0) / h.slots : (used.get(h.id) ?? 0) / 1e6;
    const better =
      best === undefined || (m - bMine || z - bZone || share - bShare || h.name.localeCompare(best.name)) < 0;
    if (better) {
      best = h;
      bMine = m;
      bZone = z;
      bShare = share;
    }
  }
  // `allowed` always holds the hosts of the least-loaded zone, so best is set.
  return best ? { ok: true, host: best } : { ok: false, reason: `no host for ${input.service}` };
}

export function matches(
  labels: Readonly<Record<string, string>>,
  constraints: Readonly<Record<string, string>>,
): boolean {
  return matchesAll(labels, Object.entries(constraints));
}

function matchesAll(
  labels: Readonly<Record<string, string>>,
  constraints: ReadonlyArray<[string, string]>,
): boolean {
  for (const [k, v] of constraints) if (labels[k] !== v) return false;
  return true;
}

function labelText(c: Readonly<Record<string, string>>): string {
  return Object.entries(c)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
}
