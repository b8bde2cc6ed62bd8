import type { Hub } from './hub.js';
import type { ServiceRecord, Store } from './store/types.js';

/** What `nines status` and GET /v1/status show: one read-only projection of store + observations. */
export interface InstanceView {
  id: string;
  service: string;
  version: string;
  host: string;
  zone: string;
  desired: 'running' | 'stopped';
  route: 'none' | 'ready' | 'draining';
  state: string;
  healthy: boolean;
  /** Every live proxy has it up (false when no proxy has reported). */
  proxyUp: boolean;
  port: number | null;
  pid: number | null;
  restarts: number;
  startedAt: number | null;
  /** Percent of one core and resident bytes, from the agent's last sample (null: not running or not yet). */
  cpu: number | null;
  memoryBytes: number | null;
}

export interface ServiceView {
  name: string;
  mode: ServiceRecord['mode'];
  currentRelease: string | null;
  desiredInstances: number;
  lockedBy: string | null;
  releases: Array<{ version: string; sha256: string; size: number; stable: boolean; createdAt: number }>;
}

export async function statusView(store: Store, hub: Hub) {
  const [services, instances, hosts] = await Promise.all([
    store.listServices(),
    store.listInstances(),
    store.listHosts(),
  ]);
  const hostById = new Map(hosts.map((h) => [h.id, h]));
  const proxies = hub.liveProxies();
  const serviceViews: ServiceView[] = [];
  for (const s of services) {
    const releases = await store.listReleases(s.name);
    serviceViews.push({
      name: s.name,
      mode: s.mode,
      currentRelease: s.currentRelease,
      desiredInstances: s.spec.instances,
      lockedBy: s.lockedBy,
      releases: releases.map((r) => ({
        version: r.version,
        sha256: r.sha256,
        size: r.size,
        stable: r.stable,
        createdAt: r.createdAt,
      })),
    });
  }
  const instanceViews: InstanceView[] = instances.map((i) => {
    const live = hub.observed(i.hostId, i.id);
    const obs = live ?? i.observed;
    const host = hostById.get(i.hostId);
    return {
      id: i.id,
      service: i.service,
      version: i.releaseVersion,
      host: host?.name ?? i.hostId,
      zone: host?.zone ?? '',
      desired: i.desired,
      route: i.route,
      state: live ? live.state : obs ? `${obs.state} (last known)` : 'pending',
      healthy: obs?.healthy ?? false,
      proxyUp: proxies.length > 0 && proxies.every((p) => p.instances.get(i.id)?.up === true),
      port: obs?.port ?? null,
      pid: obs?.pid ?? null,
      restarts: obs?.restarts ?? 0,
      startedAt: obs?.startedAt ?? null,
      cpu: live?.cpu ?? null,
      memoryBytes: live?.memoryBytes ?? null,
    };
  });
  return {
    services: serviceViews,
    instances: instanceViews,
    hosts: hosts.map((h) => ({
      id: h.id,
      name: h.name,
      zone: h.zone,
      address: h.address,
      lastSeenAt: h.lastSeenAt,
    })),
    proxies: proxies.map((p) => ({ id: p.proxyId, appliedVersion: p.appliedVersion, at: p.at })),
  };
}

export type StatusView = Awaited<ReturnType<typeof statusView>>;
