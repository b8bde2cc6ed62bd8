import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { NinesError } from '../core/errors.js';
import { fleetSpec } from '../core/fleet-config.js';
import type { HostAdminState } from '../core/host-lifecycle.js';
import { type CapacityService, relocate, type ZoneCapacity, zoneCapacity } from './capacity.js';
import type { Fleet } from './fleet.js';
import {
  type FleetHost,
  type FleetState,
  findHost,
  loadFleetState,
  setHostAdminState,
  setZoneEvacuated,
} from './fleet-state.js';
import type { Hub } from './hub.js';
import type { Store } from './store/types.js';
import type { HostTasks } from './tasks.js';

export interface HostView {
  id: string;
  name: string;
  zone: string;
  address: string;
  state: FleetHost['state'];
  admin: HostAdminState;
  slots: number | null;
  instances: number;
  lastSeenAt: number;
}

export interface PatchHostStep {
  host: string;
  zone: string;
  step: 'waiting' | 'draining' | 'running' | 'restarting-agent' | 'waiting-healthy' | 'done' | 'failed';
  exitCode?: number | null;
  error?: string;
}

export interface PatchJob {
  id: string;
  command: string;
  maxUnavailable: number;
  zone: string | null;
  state: 'running' | 'succeeded' | 'failed';
  hosts: PatchHostStep[];
  error: string | null;
  /** The host the patch stopped at. */
  failedHost: string | null;
  startedAt: number;
  finishedAt: number | null;
  by: string;
}

export interface PatchRequest {
  command: string;
  maxUnavailable: number;
  zone?: string | undefined;
  /** Per step: drain, command, back to healthy. */
  drainTimeoutMs: number;
  commandTimeoutMs: number;
  healthyTimeoutMs: number;
  /** After the command, restart the host's agent (a new nines version) and wait for the new one. */
  restartAgent?: boolean;
}

/**
 * Host and zone operations: cordon, drain (the reconciler moves the instances, surge-first), rolling
 * patches through the agents, zone evacuation, and the N+1 capacity check. Every state change is an
 * event in the store; the patch jobs themselves live in memory (a controller restart fails them,
 * leaving the host being patched cordoned — safe, and visible in `nines hosts`).
 */
export class HostOps {
  private readonly patches = new Map<string, PatchJob>();
  private readonly abort = new AbortController();

  constructor(
    private readonly d: { store: Store; hub: Hub; fleet: Fleet; tasks: HostTasks; logger: Logger },
  ) {}

  close(): void {
    this.abort.abort();
  }

  async state(): Promise<FleetState> {
    return loadFleetState(this.d.store, this.d.fleet.hostDownAfterMs);
  }

  async hosts(): Promise<{ hosts: HostView[]; evacuatedZones: string[] }> {
    const [state, instances] = await Promise.all([this.state(), this.d.store.listInstances()]);
    return {
      evacuatedZones: [...state.evacuated].sort(),
      hosts: state.hosts.map((h) => ({
        id: h.id,
        name: h.name,
        zone: h.zone,
        address: h.address,
        state: h.state,
        admin: h.admin,
        slots: h.slots ?? null,
        instances: instances.filter((i) => i.hostId === h.id).length,
        lastSeenAt: h.lastSeenAt,
      })),
    };
  }

  async cordon(name: string, by: string): Promise<FleetHost> {
    const h = findHost(await this.state(), name);
    await setHostAdminState(this.d.store, h, 'cordoned', by);
    await this.note('host.cordoned', h.id, `host ${h.name} cordoned by ${by}: it takes no new instances`);
    return { ...h, admin: 'cordoned' };
  }

  async uncordon(name: string, by: string): Promise<FleetHost> {
    const h = findHost(await this.state(), name);
    await setHostAdminState(this.d.store, h, 'ready', by);
    await this.note('host.uncordoned', h.id, `host ${h.name} uncordoned by ${by}: it takes instances again`);
    return { ...h, admin: 'ready' };
  }

  /**
   * Start draining a host. Refused (nothing changed) with NINES_E_DISRUPTION_BUDGET when the rest of
   * the fleet cannot take its instances and stopping them would leave a service below minAvailable.
   */
  async drain(name: string, by: string): Promise<FleetHost> {
    const state = await this.state();
    const h = findHost(state, name);
    await this.checkBudget(state, new Set([h.id]), `drain host ${h.name}`);
    await setHostAdminState(this.d.store, h, 'draining', by);
    await this.note(
      'host.draining',
      h.id,
      `host ${h.name} draining (by ${by}): its instances move elsewhere`,
    );
    return { ...h, admin: 'draining' };
  }

  /** Resolves once the host runs nothing and is cordoned (the reconciler finished the drain). */
  async waitDrained(hostId: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const [state, instances] = await Promise.all([this.state(), this.d.store.listInstances({ hostId })]);
      const h = state.hosts.find((x) => x.id === hostId);
      if (!h) throw new NinesError('NINES_E_HOST_NOT_FOUND', `host ${hostId} is gone`);
      if (instances.length === 0 && h.admin !== 'draining') return;
      if (h.admin === 'ready') {
        throw new NinesError('NINES_E_INVALID_TRANSITION', `host ${h.name} was uncordoned while draining`);
      }
      if (Date.now() > until || signal?.aborted) {
        const blocked = (await this.d.store.listEvents({ limit: 20, kind: 'service.heal-failed' }))[0];
        throw new NinesError(
          'NINES_E_DISRUPTION_BUDGET',
          `host ${h.name} still runs ${instances.length} instance(s) after ${timeoutMs} ms` +
            (blocked ? `; last healing problem: ${blocked.message}` : ''),
          { host: h.name, instances: instances.map((i) => i.id) },
        );
      }
      await this.d.hub.waitSignal('routing', 500, signal);
    }
  }

  async evacuate(zone: string, by: string): Promise<{ zone: string; capacity: ZoneCapacity | undefined }> {
    const state = await this.state();
    if (!state.hosts.some((h) => h.zone === zone)) {
      throw new NinesError('NINES_E_ZONE_NOT_FOUND', `no host is in zone ${zone}`, { zone });
    }
    await setZoneEvacuated(this.d.store, zone, true, by);
    await this.note(
      'zone.evacuated',
      zone,
      `zone ${zone} evacuated by ${by}: its instances move to other zones and it stays empty until restored`,
    );
    return { zone, capacity: (await this.capacity()).zones.find((z) => z.zone === zone) };
  }

  async restore(zone: string, by: string): Promise<{ zone: string }> {
    const state = await this.state();
    if (!state.hosts.some((h) => h.zone === zone) && !state.evacuated.has(zone)) {
      throw new NinesError('NINES_E_ZONE_NOT_FOUND', `no host is in zone ${zone}`, { zone });
    }
    await setZoneEvacuated(this.d.store, zone, false, by);
    await this.note('zone.restored', zone, `zone ${zone} restored by ${by}: it takes instances again`);
    return { zone };
  }

  async capacity(): Promise<{ zones: ZoneCapacity[]; ok: boolean }> {
    const [state, instances, services] = await Promise.all([
      this.state(),
      this.d.store.listInstances(),
      this.capacityServices(),
    ]);
    // What runs where now, judged against the hosts that can take instances.
    const zones = zoneCapacity(
      state.hosts.filter((h) => h.state !== 'down'),
      instances.filter((i) => i.desired === 'running'),
      services,
    );
    return { zones, ok: zones.every((z) => z.survivable) };
  }

  // ---- rolling patch -----------------------------------------------------------------------------

  getPatch(id: string): PatchJob {
    const p = this.patches.get(id);
    if (!p)
      throw new NinesError(
        'NINES_E_PATCH_NOT_FOUND',
        `no patch ${id} (patches are kept until the controller restarts)`,
      );
    return p;
  }

  async startPatch(req: PatchRequest, by: string): Promise<PatchJob> {
    const state = await this.state();
    if (req.zone !== undefined && !state.hosts.some((h) => h.zone === req.zone)) {
      throw new NinesError('NINES_E_ZONE_NOT_FOUND', `no host is in zone ${req.zone}`, { zone: req.zone });
    }
    const targets = state.hosts
      .filter((h) => req.zone === undefined || h.zone === req.zone)
      .sort((a, b) => a.zone.localeCompare(b.zone) || a.name.localeCompare(b.name));
    const down = targets.filter((h) => h.state === 'down');
    if (down.length > 0) {
      throw new NinesError(
        'NINES_E_HOST_DOWN',
        `cannot patch while host(s) ${down.map((h) => h.name).join(', ')} are down; nothing was changed`,
      );
    }
    if (targets.length === 0) throw new NinesError('NINES_E_HOST_NOT_FOUND', 'no host to patch');
    const job: PatchJob = {
      id: `patch-${randomBytes(4).toString('hex')}`,
      command: req.command,
      maxUnavailable: req.maxUnavailable,
      zone: req.zone ?? null,
      state: 'running',
      hosts: targets.map((h) => ({ host: h.name, zone: h.zone, step: 'waiting' })),
      error: null,
      failedHost: null,
      startedAt: Date.now(),
      finishedAt: null,
      by,
    };
    this.patches.set(job.id, job);
    await this.note(
      'patch.started',
      job.id,
      `${by} started patching ${targets.length} host(s), ${req.maxUnavailable} at a time: ${req.command}`,
    );
    void this.runPatch(job, targets, req).catch((err) =>
      this.d.logger.error({ err, patch: job.id }, 'patch crashed'),
    );
    return job;
  }

  private async runPatch(job: PatchJob, targets: FleetHost[], req: PatchRequest): Promise<void> {
    const signal = this.abort.signal;
    for (let k = 0; k < targets.length; k += req.maxUnavailable) {
      const batch = targets.slice(k, k + req.maxUnavailable);
      const results = await Promise.allSettled(batch.map((h) => this.patchHost(job, h, req, signal)));
      const bad = results.findIndex((r) => r.status === 'rejected');
      if (bad >= 0) {
        const host = batch[bad]?.name ?? '?';
        const err = (results[bad] as PromiseRejectedResult).reason as Error;
        job.state = 'failed';
        job.failedHost = host;
        job.error = err.message;
        job.finishedAt = Date.now();
        await this.note('patch.failed', job.id, `patch stopped at host ${host}: ${err.message}`);
        this.d.hub.signal(`patch:${job.id}`);
        return;
      }
    }
    job.state = 'succeeded';
    job.finishedAt = Date.now();
    await this.note('patch.succeeded', job.id, `patched ${targets.length} host(s): ${job.command}`);
    this.d.hub.signal(`patch:${job.id}`);
  }

  private async patchHost(
    job: PatchJob,
    h: FleetHost,
    req: PatchRequest,
    signal: AbortSignal,
  ): Promise<void> {
    const step = job.hosts.find((s) => s.host === h.name);
    if (!step) return;
    const set = (s: PatchHostStep['step']) => {
      step.step = s;
      this.d.hub.signal(`patch:${job.id}`);
    };
    try {
      set('draining');
      await this.drain(h.id, `patch ${job.id}`);
      await this.waitDrained(h.id, req.drainTimeoutMs, signal);
      set('running');
      const r = await this.d.tasks.run(h.id, h.name, req.command, req.commandTimeoutMs);
      step.exitCode = r.exitCode;
      if (r.exitCode !== 0) {
        const tail = r.output.trim().split('\n').slice(-5).join(' | ');
        throw new NinesError(
          'NINES_E_HOST_TASK_FAILED',
          `host ${h.name}: \`${req.command}\` ` +
            (r.exitCode === null ? `was killed (${r.signal ?? 'timeout'})` : `exited with ${r.exitCode}`) +
            (tail ? `: ${tail}` : ''),
          { host: h.name, exitCode: r.exitCode },
        );
      }
      if (req.restartAgent) {
        set('restarting-agent');
        const asked = Date.now();
        const r2 = await this.d.tasks.run(h.id, h.name, 'restart the agent', 30_000, 'restart-agent');
        if (r2.exitCode !== 0) {
          throw new NinesError(
            'NINES_E_HOST_TASK_FAILED',
            `host ${h.name}: its agent did not restart: ${r2.output.trim() || `exit ${r2.exitCode}`}`,
            { host: h.name },
          );
        }
        // The new agent registers when it starts; the report wait below then hears from it.
        await this.d.hub
          .waitUntil(
            `${h.name} agent restarted`,
            () => ((this.d.hub.agentStarts.get(h.id) ?? 0) > asked ? true : undefined),
            req.healthyTimeoutMs,
            signal,
          )
          .catch(() => {
            throw new NinesError(
              'NINES_E_HOST_TASK_FAILED',
              `host ${h.name}: no new agent registered within ${req.healthyTimeoutMs} ms (is it run by a service manager that restarts it? see docs/operations.md)`,
              { host: h.name },
            );
          });
      }
      set('waiting-healthy');
      const after = Date.now();
      await this.d.hub
        .waitUntil(
          `${h.name} reporting`,
          () => ((this.d.hub.agents.get(h.id)?.at ?? 0) > after ? true : undefined),
          req.healthyTimeoutMs,
          signal,
        )
        .catch(() => {
          throw new NinesError(
            'NINES_E_HOST_TASK_FAILED',
            `host ${h.name}: its agent did not report within ${req.healthyTimeoutMs} ms after the command`,
            { host: h.name },
          );
        });
      await this.uncordon(h.id, `patch ${job.id}`);
      set('done');
    } catch (err) {
      step.step = 'failed';
      step.error = (err as Error).message;
      this.d.hub.signal(`patch:${job.id}`);
      throw err;
    }
  }

  // ---- helpers -----------------------------------------------------------------------------------

  private async capacityServices(): Promise<CapacityService[]> {
    return (await this.d.store.listServices()).map((s) => {
      const f = fleetSpec(s.spec);
      return {
        name: s.name,
        placement: f.placement,
        minAvailable: f.placement.minAvailable ?? s.spec.instances,
      };
    });
  }

  private async checkBudget(state: FleetState, leaving: ReadonlySet<string>, what: string): Promise<void> {
    const [instances, services] = await Promise.all([this.d.store.listInstances(), this.capacityServices()]);
    const running = instances.filter((i) => i.desired === 'running');
    const ready = state.hosts.filter((h) => h.state !== 'down');
    const problems: string[] = [];
    for (const s of relocate(ready, running, leaving, services)) {
      const total = running.filter((i) => i.service === s.service).length;
      const min = services.find((x) => x.name === s.service)?.minAvailable ?? total;
      if (total - s.missing < min) {
        problems.push(
          `${s.service}: ${s.missing} instance(s) have nowhere to go (${s.reason}) and ` +
            `${total - s.missing} serving would be below minAvailable ${min}`,
        );
      }
    }
    if (problems.length > 0) {
      throw new NinesError(
        'NINES_E_DISRUPTION_BUDGET',
        `cannot ${what}: ${problems.join('; ')}; nothing was changed`,
        {
          problems,
        },
      );
    }
  }

  private async note(kind: string, subject: string, message: string): Promise<void> {
    this.d.logger.info({ kind, subject }, message);
    await this.d.store.appendEvent({ at: Date.now(), kind, subject, message, data: null });
  }
}
