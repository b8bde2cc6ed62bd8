import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { NinesError } from '../core/errors.js';
import type {
  AgentRegister,
  AgentReport,
  HostDesiredState,
  ObservedInstance,
  ProxyReport,
  RoutingSnapshot,
} from '../core/protocol.js';
import { newHostKey } from '../core/signing.js';
import { BatchRead } from './batch-read.js';
import { type FleetState, loadFleetState, placeFor } from './fleet-state.js';
import type { Hub } from './hub.js';
import { countPlaced } from './placement.js';
import type { Signals } from './signals/signals.js';
import type { HostRecord, InstanceRecord, ReleaseRecord, Store } from './store/types.js';
import { hostDesiredState, releaseKey, routingSnapshot } from './views.js';

const ROUTING = 'routing';
/** An instance an agent reports that the store does not know. */
const STRANGER = { service: '', hostId: '', release: '' };
const hostCounter = (hostId: string) => `host:${hostId}`;

/**
 * The controller's side of the protocol: registers hosts, turns agent and proxy reports into
 * observed state, and serves each agent its desired state and each proxy its routing snapshot.
 * Every change to what an agent or proxy should do goes through here, so the generation counters
 * that wake their long polls can never be forgotten.
 */
interface PlacementRequest {
  release: ReleaseRecord;
  deployId: string | null;
  avoid: ReadonlySet<string> | undefined;
  pin: PlacementPin | undefined;
  resolve(rec: InstanceRecord): void;
  reject(err: unknown): void;
}

/** Where a new instance must go: one zone (zone-by-zone rolling) or one host (in-place reload). */
export interface PlacementPin {
  zone?: string;
  hostId?: string;
}

export class Fleet {
  private readonly store: Store;
  private readonly hub: Hub;
  private readonly log: Logger;
  /** A host silent for this long takes no new instances. */
  readonly hostDownAfterMs: number;
  /** Host, instance and service signals for alerting, /metrics and reports (optional in tests). */
  private readonly signals: Signals | undefined;
  /** Service, host and release of each instance this controller placed or read (none ever changes). */
  private readonly placed = new Map<string, { service: string; hostId: string; release: string }>();
  /** Hosts as last registered or read (name, zone, labels for signals). */
  private readonly hosts = new Map<string, HostRecord>();
  /** Heartbeats not yet written: host id → time of its last report. */
  private seen = new Map<string, number>();
  private readonly releases = new Map<string, ReleaseRecord>();
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readonly heartbeatFlushMs: number;

  constructor(deps: { store: Store; hub: Hub; logger: Logger; hostDownAfterMs?: number; signals?: Signals }) {
    this.store = deps.store;
    this.signals = deps.signals;
    this.hub = deps.hub;
    this.log = deps.logger;
    this.hostDownAfterMs = deps.hostDownAfterMs ?? 15_000;
    this.heartbeatFlushMs = Math.max(50, Math.min(1000, this.hostDownAfterMs / 5));
  }

  /**
   * A host introduces itself with a token: it gets an id (the same for the same name) and a new key,
   * which it signs every later request with. A revoked host cannot come back under its name.
   */
  async register(req: AgentRegister): Promise<HostRecord> {
    const now = Date.now();
    const existing = (await this.store.listHosts()).find((h) => h.name === req.name);
    if (existing?.revokedAt) {
      throw new NinesError('NINES_E_HOST_REVOKED', `host ${req.name} was revoked; it cannot register again`);
    }
    const host: HostRecord = {
      id: existing?.id ?? `h-${randomBytes(4).toString('hex')}`,
      name: req.name,
      zone: req.zone,
      labels: req.labels,
      address: req.address,
      registeredAt: existing?.registeredAt ?? now,
      lastSeenAt: now,
      key: newHostKey(),
      revokedAt: null,
    };
    await this.store.upsertHost(host);
    this.hosts.set(host.id, host);
    await this.store.appendEvent({
      at: now,
      kind: existing ? 'host.rekeyed' : 'host.registered',
      subject: host.id,
      message: existing
        ? `host ${host.name} registered again with a token and got a new key`
        : `host ${host.name} joined in zone ${host.zone}`,
      data: { address: host.address, labels: host.labels },
    });
    this.log.info({ hostId: host.id, name: host.name }, 'host registered');
    this.hub.signal('hosts');
    return host;
  }

  /** A signed host refreshes what it says about itself; its id and key stay. */
  async refresh(hostId: string, req: AgentRegister): Promise<HostRecord> {
    const existing = await this.store.getHost(hostId);
    if (!existing) throw new NinesError('NINES_E_HOST_NOT_FOUND', `unknown host ${hostId}`);
    if (existing.name !== req.name) {
      throw new NinesError('NINES_E_FORBIDDEN', `host ${existing.name} may not rename itself to ${req.name}`);
    }
    const host: HostRecord = {
      ...existing,
      zone: req.zone,
      labels: req.labels,
      address: req.address,
      lastSeenAt: Date.now(),
    };
    await this.store.upsertHost(host);
    this.hosts.set(host.id, host);
    this.hub.signal('hosts');
    return host;
  }

  async agentReport(report: AgentReport): Promise<void> {
    const host = await this.hostRecord(report.hostId);
    if (!host) throw new NinesError('NINES_E_HOST_NOT_FOUND', `unknown host ${report.hostId}`);
    const now = Date.now();
    this.heartbeat(host.id, now);
    const prev = this.hub.agents.get(host.id)?.instances;
    // What the store already holds: the last report this controller stored for the host. The first
    // report of a host (after a start or a new term: the hub is cleared) is compared with the store.
    let stored: Map<string, ObservedInstance | null> | undefined;
    if (!prev || report.instances.some((i) => !this.placed.has(i.id))) {
      stored = new Map();
      for (const rec of await this.store.listInstances({ hostId: host.id })) {
        this.placed.set(rec.id, { service: rec.service, hostId: rec.hostId, release: rec.releaseVersion });
        stored.set(rec.id, rec.observed);
      }
      // Reported but not in the store (deleted while its agent still reports it): never written.
      for (const i of report.instances) if (!this.placed.has(i.id)) this.placed.set(i.id, STRANGER);
    }
    const writes: Array<Promise<unknown>> = [];
    for (const obs of report.instances) {
      const rec = this.placed.get(obs.id);
      if (!rec || rec.hostId !== host.id) continue;
      const before = prev?.get(obs.id);
      const last = before ?? stored?.get(obs.id) ?? null;
      if (sameObserved(last, obs)) continue;
      writes.push(this.store.updateInstance(obs.id, { observed: obs }));
      if (before && before.state !== obs.state && (obs.state === 'backoff' || obs.state === 'failed')) {
        writes.push(
          this.store.appendEvent({
            at: now,
            kind: `instance.${obs.state}`,
            subject: obs.id,
            message: `instance ${obs.id} of ${rec.service} ${obs.state}${obs.message ? `: ${obs.message}` : ''}`,
            data: { exitCode: obs.exitCode ?? null, signal: obs.signal ?? null, restarts: obs.restarts },
          }),
        );
      }
    }
    // Concurrent, so they share a commit with other reports' writes (the fenced store's group commit).
    await Promise.all(writes);
    this.hub.agentReport(host.id, report.generation, report.instances);
    if (this.signals) {
      this.signals.agentReport(
        host,
        report.instances.map((i) => ({
          id: i.id,
          service: this.placed.get(i.id)?.service ?? '',
          state: i.state,
          healthy: i.healthy,
          restarts: i.restarts,
          release: this.placed.get(i.id)?.release || undefined,
        })),
        report.host,
      );
    }
  }

  /**
   * Heartbeats are kept in memory and written for all hosts at once every `heartbeatFlushMs` (one
   * transaction instead of one per report). The store's `lastSeenAt` lags by at most that, well within
   * `hostDownAfter`; a controller restart loses at most that much of it, and agents report again anyway.
   */
  private heartbeat(hostId: string, at: number): void {
    this.seen.set(hostId, at);
    if (this.heartbeatTimer) return;
    this.heartbeatTimer = setTimeout(() => {
      this.heartbeatTimer = undefined;
      void this.flushHeartbeats();
    }, this.heartbeatFlushMs);
    this.heartbeatTimer.unref();
  }

  /** Write the heartbeats heard since the last flush (also on shutdown). */
  async flushHeartbeats(): Promise<void> {
    if (this.seen.size === 0) return;
    const batch = this.seen;
    this.seen = new Map();
    try {
      await this.store.transaction(async (tx) => {
        for (const [id, at] of batch) {
          await tx.touchHost(id, at).catch((err: unknown) => {
            // A host deleted meanwhile: nothing to record.
            if (!(err instanceof NinesError && err.code === 'NINES_E_HOST_NOT_FOUND')) throw err;
          });
        }
      });
    } catch (err) {
      // Not the leader any more, or the store is away: the next reports are written by whoever leads.
      this.log.warn({ err, hosts: batch.size }, 'could not record heartbeats');
    }
  }

  /** True for a registered host (hosts are revoked, never deleted; auth refuses revoked ones). */
  async hostExists(hostId: string): Promise<boolean> {
    return (await this.hostRecord(hostId)) !== undefined;
  }

  /** Host records for reports, read once per host (its key and revocation are checked by auth). */
  private async hostRecord(hostId: string): Promise<HostRecord | undefined> {
    const cached = this.hosts.get(hostId);
    if (cached) return cached;
    const host = await this.store.getHost(hostId);
    if (host) this.hosts.set(hostId, host);
    return host;
  }

  proxyReport(report: ProxyReport): void {
    this.signals?.proxyReport(report.proxyId, report.services ?? [], report.instances);
    this.hub.proxyReport(report.proxyId, report.appliedVersion, report.instances, report.services);
  }

  /**
   * What `hostId` should run. With `generation` (read by the caller before): that generation is
   * stamped on it, and the instances are read after it, so they are at least that new.
   */
  async desiredFor(hostId: string, generation?: number): Promise<HostDesiredState> {
    const gen = generation ?? (await this.store.getCounter(hostCounter(hostId)));
    const instances = (await this.instancesOn.get(hostId)) ?? [];
    const releases = await this.releasesOf(instances);
    return hostDesiredState(hostId, gen, instances, releases);
  }

  /**
   * Instances per host for the desired states asked for together (a change wakes many polls at once):
   * a few hosts are read one query each, many with one read of all instances.
   */
  private readonly instancesOn = new BatchRead<string, InstanceRecord[]>(async (hostIds) => {
    const out = new Map<string, InstanceRecord[]>();
    if (hostIds.length < 16) {
      const lists = await Promise.all(hostIds.map((hostId) => this.store.listInstances({ hostId })));
      for (const [k, h] of hostIds.entries()) out.set(h, lists[k] ?? []);
      return out;
    }
    const wanted = new Set(hostIds);
    for (const h of hostIds) out.set(h, []);
    for (const i of await this.store.listInstances()) if (wanted.has(i.hostId)) out.get(i.hostId)?.push(i);
    return out;
  });

  async hostGeneration(hostId: string): Promise<number> {
    return (await this.generations.get(hostId)) ?? 0;
  }

  /** Generations asked for together (polls woken by one change) in one read. */
  private readonly generations = new BatchRead<string, number>(async (hostIds) => {
    const got = await this.store.getCounters(hostIds.map(hostCounter));
    return new Map(hostIds.map((h) => [h, got.get(hostCounter(h)) ?? 0]));
  });

  async snapshot(): Promise<RoutingSnapshot> {
    const [version, services, instances, hosts] = await Promise.all([
      this.store.getCounter(ROUTING),
      this.store.listServices(),
      this.store.listInstances(),
      this.store.listHosts(),
    ]);
    return routingSnapshot(version, services, instances, new Map(hosts.map((h) => [h.id, h])));
  }

  async routingVersion(): Promise<number> {
    return this.store.getCounter(ROUTING);
  }

  liveHosts(hosts: readonly HostRecord[]): HostRecord[] {
    const cutoff = Date.now() - this.hostDownAfterMs;
    return hosts.filter((h) => h.lastSeenAt >= cutoff);
  }

  /** Create a new instance of `release` on a placed host; the agent starts it on its next poll. */
  async createInstance(
    release: ReleaseRecord,
    deployId: string | null,
    avoid?: ReadonlySet<string>,
    pin?: PlacementPin,
  ): Promise<InstanceRecord> {
    return new Promise<InstanceRecord>((resolve, reject) => {
      this.toPlace.push({ release, deployId, avoid, pin, resolve, reject });
      if (!this.placing) {
        this.placing = true;
        // After the current synchronous run: a deploy or a heal that starts many instances in a loop
        // has them all queued by then, and they go in one batch (not one, then all the others).
        queueMicrotask(() => void this.placeQueued());
      }
    });
  }

  /** Placements asked for while the previous batch ran; placed together by `placeQueued`. */
  private toPlace: PlacementRequest[] = [];
  private placing = false;

  /**
   * One placement batch at a time, each seeing the instances the previous ones created (or a deploy
   * that starts several at once would put them all on one host). A batch reads the fleet once for all
   * its instances: one read per instance made a 1,000-instance scale-up quadratic and starved
   * heartbeats for seconds (bench/fleet).
   */
  private async placeQueued(): Promise<void> {
    this.placing = true;
    try {
      while (this.toPlace.length > 0) {
        const batch = this.toPlace;
        this.toPlace = [];
        await this.placeBatch(batch).catch((err: unknown) => {
          for (const r of batch) r.reject(err);
        });
      }
    } finally {
      this.placing = false;
    }
  }

  private async placeBatch(batch: PlacementRequest[]): Promise<void> {
    const names = [...new Set(batch.map((r) => r.release.service))];
    const [state, instances, specs] = await Promise.all([
      loadFleetState(this.store, this.hostDownAfterMs),
      this.store.listInstances(),
      Promise.all(names.map(async (n) => [n, (await this.store.getService(n))?.spec] as const)),
    ]);
    const specOf = new Map(specs);
    const all = [...instances];
    const taken = new Set(instances.map((i) => i.id));
    /** Placed counts per service being placed, kept up to date as the batch places. */
    const countsOf = new Map<string, ReturnType<typeof countPlaced>>();
    const placed: Array<[PlacementRequest, InstanceRecord]> = [];
    const hosts = new Set<string>();
    for (const r of batch) {
      const { release } = r;
      // Placement follows the service's spec as it is now (constraints may change without a release).
      let counts = countsOf.get(release.service);
      if (!counts) {
        counts = countPlaced(all, release.service);
        countsOf.set(release.service, counts);
      }
      const pinned = r.pin ? pinnedState(state, r.pin) : state;
      const p = placeFor(
        release.service,
        specOf.get(release.service) ?? release.spec,
        pinned,
        all,
        r.avoid,
        counts,
      );
      if (!p.ok) {
        const where = r.pin ? ` (${r.pin.hostId ? `host ${r.pin.hostId}` : `zone ${r.pin.zone}`} only)` : '';
        r.reject(new NinesError('NINES_E_NO_CAPACITY', p.reason + where));
        continue;
      }
      const now = Date.now();
      // Short ids are for people; at a thousand per service they collide now and then (~3 %).
      let id = `${release.service}-${randomBytes(3).toString('hex')}`;
      while (taken.has(id)) id = `${release.service}-${randomBytes(3).toString('hex')}`;
      taken.add(id);
      const rec: InstanceRecord = {
        id,
        service: release.service,
        releaseVersion: release.version,
        hostId: p.host.id,
        desired: 'running',
        route: 'none',
        deployId: r.deployId,
        observed: null,
        createdAt: now,
        updatedAt: now,
      };
      all.push(rec);
      // Keep the counts of every service of this batch current.
      for (const [svc, c] of countsOf) {
        if (svc === rec.service) c.mine.set(rec.hostId, (c.mine.get(rec.hostId) ?? 0) + 1);
        c.used.set(rec.hostId, (c.used.get(rec.hostId) ?? 0) + 1);
      }
      hosts.add(rec.hostId);
      placed.push([r, rec]);
    }
    if (placed.length === 0) return;
    // The whole batch in one transaction with one generation bump per host: one commit, and each agent
    // gets every new instance at once. Placing 1,000 instances one commit each took seconds (bench/fleet).
    try {
      await this.store.transaction(async (tx) => {
        for (const [, rec] of placed) await tx.insertInstance(rec);
        for (const h of hosts) await tx.nextCounter(hostCounter(h));
      });
    } catch {
      // Something in the batch failed (e.g. a service deleted meanwhile): each on its own says what.
      await this.placeOneByOne(placed);
      return;
    }
    for (const [, rec] of placed)
      this.placed.set(rec.id, { service: rec.service, hostId: rec.hostId, release: rec.releaseVersion });
    for (const h of hosts) this.hub.signal(hostCounter(h));
    for (const [r, rec] of placed) r.resolve(rec);
  }

  private async placeOneByOne(batch: Array<[PlacementRequest, InstanceRecord]>): Promise<void> {
    const placed: Array<[PlacementRequest, InstanceRecord]> = [];
    const hosts = new Set<string>();
    for (const [r, rec] of batch) {
      try {
        await this.store.insertInstance(rec);
      } catch (err) {
        r.reject(err);
        continue;
      }
      this.placed.set(rec.id, { service: rec.service, hostId: rec.hostId, release: rec.releaseVersion });
      hosts.add(rec.hostId);
      placed.push([r, rec]);
    }
    const bumped = new Map<string, unknown>();
    for (const h of hosts) {
      await this.bumpHost(h).catch((err: unknown) => bumped.set(h, err));
    }
    for (const [r, rec] of placed) {
      if (bumped.has(rec.hostId)) r.reject(bumped.get(rec.hostId));
      else r.resolve(rec);
    }
  }

  /**
   * Routes set in the same turn share one transaction and one routing version: a heal or deploy of a
   * thousand instances routed each one with its own write and version, and every version woke every
   * proxy to rebuild its whole snapshot. Resolves once the route is written, with a version that has it.
   */
  setRoute(instance: InstanceRecord, route: InstanceRecord['route']): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.toRoute.push({ id: instance.id, route, resolve, reject });
      if (this.toRoute.length === 1) setImmediate(() => void this.routeQueued());
    });
  }

  private toRoute: Array<{
    id: string;
    route: InstanceRecord['route'];
    resolve(version: number): void;
    reject(err: unknown): void;
  }> = [];

  private async routeQueued(): Promise<void> {
    const batch = this.toRoute;
    this.toRoute = [];
    const alone = async (r: (typeof batch)[number]) => {
      try {
        await this.store.updateInstance(r.id, { route: r.route });
        r.resolve(await this.bumpRouting());
      } catch (err) {
        r.reject(err);
      }
    };
    if (batch.length === 1 && batch[0]) return alone(batch[0]);
    try {
      await this.store.transaction(async (tx) => {
        for (const r of batch) await tx.updateInstance(r.id, { route: r.route });
      });
    } catch {
      // Which one failed is not known: each on its own says.
      for (const r of batch) await alone(r);
      return;
    }
    try {
      const version = await this.bumpRouting();
      for (const r of batch) r.resolve(version);
    } catch (err) {
      for (const r of batch) r.reject(err);
    }
  }

  /** Several routes in one routing snapshot (an in-place switch: new instances in, old ones draining). */
  async setRoutes(
    changes: ReadonlyArray<readonly [InstanceRecord, InstanceRecord['route']]>,
  ): Promise<number> {
    await this.store.transaction(async (tx) => {
      for (const [i, route] of changes) await tx.updateInstance(i.id, { route });
    });
    for (const [i, route] of changes) i.route = route;
    return this.bumpRouting();
  }

  async setDesired(instance: InstanceRecord, desired: InstanceRecord['desired']): Promise<void> {
    await this.store.updateInstance(instance.id, { desired });
    await this.bumpHost(instance.hostId);
  }

  async removeInstance(instance: InstanceRecord): Promise<void> {
    await this.store.deleteInstance(instance.id);
    this.placed.delete(instance.id);
    await this.bumpHost(instance.hostId);
    if (instance.route !== 'none') await this.bumpRouting();
  }

  async bumpRouting(): Promise<number> {
    const v = await this.store.nextCounter(ROUTING);
    this.hub.signal(ROUTING);
    return v;
  }

  private async bumpHost(hostId: string): Promise<void> {
    await this.store.nextCounter(hostCounter(hostId));
    this.hub.signal(hostCounter(hostId));
  }

  private async releasesOf(instances: readonly InstanceRecord[]): Promise<Map<string, ReleaseRecord>> {
    const out = new Map<string, ReleaseRecord>();
    for (const i of instances) {
      const key = releaseKey(i.service, i.releaseVersion);
      if (out.has(key)) continue;
      // Releases are immutable (artifact + config); only `stable` changes, which agents do not use.
      const r = this.releases.get(key) ?? (await this.store.getRelease(i.service, i.releaseVersion));
      if (r) {
        out.set(key, r);
        this.releases.set(key, r);
      }
    }
    return out;
  }
}

export { hostCounter, ROUTING };

function pinnedState(state: FleetState, pin: PlacementPin): FleetState {
  return {
    ...state,
    hosts: state.hosts.filter(
      (h) =>
        (pin.zone === undefined || h.zone === pin.zone) && (pin.hostId === undefined || h.id === pin.hostId),
    ),
  };
}

function sameObserved(a: ObservedInstance | null, b: ObservedInstance): boolean {
  if (!a) return false;
  return (
    a.state === b.state &&
    a.healthy === b.healthy &&
    a.pid === b.pid &&
    a.port === b.port &&
    a.restarts === b.restarts &&
    a.message === b.message
  );
}
