import { NinesError } from '../core/errors.js';
import { fleetSpec } from '../core/fleet-config.js';
import {
  effectiveHostState,
  type HostAdminState,
  type HostState,
  hostLifecycle,
  hostSlots,
} from '../core/host-lifecycle.js';
import { transition } from '../core/lifecycle.js';
import { type PlacedCounts, type PlacementHost, type PlacementResult, placeInstance } from './placement.js';
import type { HostRecord, InstanceRecord, Store } from './store/types.js';

/**
 * The operational fleet state kept in the store's `fleet_meta` (migration 0007): each host's
 * operator-set state (`host:<id>`) and the evacuated zones (`zone:<name>`). Combined with heartbeats,
 * it gives every host its effective state (`core/host-lifecycle.ts`), which placement and healing use.
 */

export interface HostMeta {
  state: HostAdminState;
  since: number;
  by?: string;
}

export interface ZoneMeta {
  evacuated: boolean;
  since: number;
  by?: string;
}

export interface FleetHost extends PlacementHost {
  address: string;
  admin: HostAdminState;
  lastSeenAt: number;
}

export interface FleetState {
  hosts: FleetHost[];
  evacuated: Set<string>;
}

const hostKey = (id: string) => `host:${id}`;
const zoneKey = (zone: string) => `zone:${zone}`;

export async function loadFleetState(
  store: Store,
  hostDownAfterMs: number,
  now = Date.now(),
  hostList?: readonly HostRecord[],
): Promise<FleetState> {
  const [hosts, hostMeta, zoneMeta] = await Promise.all([
    hostList ? Promise.resolve(hostList) : store.listHosts(),
    store.listMeta('host:'),
    store.listMeta('zone:'),
  ]);
  const admin = new Map(hostMeta.map((m) => [m.key.slice(5), (m.value as HostMeta).state]));
  const evacuated = new Set(
    zoneMeta.filter((m) => (m.value as ZoneMeta).evacuated).map((m) => m.key.slice(5)),
  );
  return {
    evacuated,
    hosts: hosts.map((h) => {
      const a = admin.get(h.id) ?? 'ready';
      return {
        id: h.id,
        name: h.name,
        zone: h.zone,
        labels: h.labels,
        address: h.address,
        slots: hostSlots(h.labels),
        admin: a,
        lastSeenAt: h.lastSeenAt,
        state: effectiveHostState({
          admin: a,
          lastSeenAt: h.lastSeenAt,
          now,
          hostDownAfterMs,
          revoked: h.revokedAt !== null,
          zoneEvacuated: evacuated.has(h.zone),
        }),
      };
    }),
  };
}

/** Set a host's operator state through its lifecycle (NINES_E_INVALID_TRANSITION when not allowed). */
export async function setHostAdminState(
  store: Store,
  host: FleetHost,
  to: HostAdminState,
  by: string,
): Promise<void> {
  transition<HostState>(hostLifecycle, host.admin, to);
  if (to === 'ready') await store.deleteMeta(hostKey(host.id));
  else await store.putMeta(hostKey(host.id), { state: to, since: Date.now(), by } satisfies HostMeta);
}

export async function setZoneEvacuated(
  store: Store,
  zone: string,
  evacuated: boolean,
  by: string,
): Promise<void> {
  if (evacuated) await store.putMeta(zoneKey(zone), { evacuated, since: Date.now(), by } satisfies ZoneMeta);
  else await store.deleteMeta(zoneKey(zone));
}

/** A host by name or id, or NINES_E_HOST_NOT_FOUND. */
export function findHost(state: FleetState, nameOrId: string): FleetHost {
  const h = state.hosts.find((x) => x.name === nameOrId || x.id === nameOrId);
  if (!h) throw new NinesError('NINES_E_HOST_NOT_FOUND', `no host ${nameOrId}`, { host: nameOrId });
  return h;
}

/** Place an instance of `service` with its spec's placement rules. */
export function placeFor(
  service: string,
  spec: Parameters<typeof fleetSpec>[0],
  state: FleetState,
  instances: readonly InstanceRecord[],
  avoid?: ReadonlySet<string>,
  counts?: PlacedCounts,
): PlacementResult {
  return placeInstance({
    service,
    placement: fleetSpec(spec).placement,
    hosts: state.hosts,
    instances,
    ...(avoid ? { avoid } : {}),
    ...(counts ? { counts } : {}),
  });
}
