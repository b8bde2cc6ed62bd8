import type { ServiceSpec } from '../core/config.js';
import type {
  DesiredInstance,
  HealthCheckSpec,
  HostDesiredState,
  RouteService,
  RoutingSnapshot,
} from '../core/protocol.js';
import { instanceWeights, type TrafficSplit } from '../core/strategies.js';
import type { HostRecord, InstanceRecord, ReleaseRecord, ServiceRecord } from './store/types.js';

/**
 * Pure projections of the store's desired state into the protocol messages that agents and proxies
 * consume. Kept free of I/O so they are tested without sockets.
 */

export function healthSpec(spec: ServiceSpec): HealthCheckSpec {
  return {
    path: spec.health.path,
    intervalMs: spec.health.interval,
    timeoutMs: spec.health.timeout,
    rise: spec.health.rise,
    fall: spec.health.fall,
  };
}

export function artifactUrl(service: string, version: string): string {
  return `/v1/services/${encodeURIComponent(service)}/releases/${encodeURIComponent(version)}/artifact`;
}

export function hostDesiredState(
  hostId: string,
  generation: number,
  instances: readonly InstanceRecord[],
  releases: ReadonlyMap<string, ReleaseRecord>,
): HostDesiredState {
  const out: DesiredInstance[] = [];
  for (const i of instances) {
    if (i.hostId !== hostId) continue;
    const r = releases.get(releaseKey(i.service, i.releaseVersion));
    if (!r) continue;
    out.push({
      id: i.id,
      service: i.service,
      release: { version: r.version, sha256: r.sha256, size: r.size, url: artifactUrl(r.service, r.version) },
      command: r.spec.command,
      env: r.spec.env,
      health: healthSpec(r.spec),
      drainTimeoutMs: r.spec.drainTimeout,
      desired: i.desired,
      ...(r.spec.kind === 'worker' ? { kind: 'worker' as const } : {}),
      ...(r.spec.restart
        ? { restart: { attempts: r.spec.restart.attempts, intervalMs: r.spec.restart.interval } }
        : {}),
      ...(r.spec.hooks?.preStop
        ? {
            preStop: {
              command: r.spec.hooks.preStop.command,
              timeoutMs: r.spec.hooks.preStop.timeout ?? 30_000,
            },
          }
        : {}),
    });
  }
  out.sort((a, b) => a.id.localeCompare(b.id));
  return { hostId, generation, instances: out };
}

export function releaseKey(service: string, version: string): string {
  return `${service}\u0000${version}`;
}

export function routingSnapshot(
  version: number,
  services: readonly ServiceRecord[],
  instances: readonly InstanceRecord[],
  hosts: ReadonlyMap<string, HostRecord>,
): RoutingSnapshot {
  const byService = new Map<string, RouteService>();
  for (const s of services) {
    // A worker answers no HTTP: it has no route (its default `/` would take every other service's traffic).
    if (s.spec.kind === 'worker') continue;
    const o = s.modeOptions;
    byService.set(s.name, {
      name: s.name,
      hosts: s.spec.route.hosts,
      pathPrefix: s.spec.route.pathPrefix,
      mode: s.mode,
      health: healthSpec(s.spec),
      instances: [],
      ...(o?.retryAfterSeconds !== undefined ? { retryAfterSeconds: o.retryAfterSeconds } : {}),
      ...(o?.message !== undefined ? { maintenance: { message: o.message } } : {}),
      ...(o?.pauseTimeoutMs !== undefined ? { pauseTimeoutMs: o.pauseTimeoutMs } : {}),
    });
  }
  for (const i of instances) {
    if (i.route === 'none') continue;
    const svc = byService.get(i.service);
    const host = hosts.get(i.hostId);
    const port = i.observed?.port;
    if (!svc || !host || port === undefined) continue;
    svc.instances.push({
      id: i.id,
      address: host.address,
      port,
      state: i.route,
      weight: 1,
      release: i.releaseVersion,
    });
  }
  const list = [...byService.values()];
  for (const s of list) s.instances.sort((a, b) => a.id.localeCompare(b.id));
  for (const s of services) if (s.traffic) applyTraffic(list, byService.get(s.name), s.traffic);
  return { version, services: list };
}

/**
 * A service's traffic split: the preview release's instances move to a `previewOf` entry (reached by
 * the X-Nines-Preview header or the preview hosts), and release weights become instance weights under
 * the `weighted` balancer, so a canary's share is exact whatever the instance counts.
 */
function applyTraffic(list: RouteService[], svc: RouteService | undefined, t: TrafficSplit): void {
  if (!svc) return;
  if (t.preview !== undefined) {
    const preview = svc.instances.filter((i) => i.release === t.preview);
    svc.instances = svc.instances.filter((i) => i.release !== t.preview);
    list.push({
      ...svc,
      name: `${svc.name}~preview`,
      hosts: t.previewHosts ?? [],
      mode: 'live',
      instances: preview,
      previewOf: svc.name,
    });
  }
  if (t.weights) {
    const routed = svc.instances.filter((i) => i.state === 'ready');
    const w = instanceWeights(t, routed);
    for (const i of svc.instances) i.weight = w.get(i.id) ?? 0;
    svc.balance = 'weighted';
  }
}
