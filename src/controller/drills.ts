import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest, RawServerDefault } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { CheckConfig } from '../core/checks.js';
import { parseInput as parse } from '../core/config.js';
import { type AgentFault, type AgentFaultResult, agentFaultResultSchema } from '../core/drill-protocol.js';
import { NinesError } from '../core/errors.js';
import type { Hub } from './hub.js';
import type { DrillRecord, InstanceRecord, Store } from './store/types.js';

/**
 * The controller's side of `nines drill` (issue 8): injecting faults into the fleet it manages, and
 * keeping drill results. The drill itself (load, timing, pass/fail) runs in the CLI (src/drill/drill.ts),
 * which sends its load only to the service's own proxy route.
 *
 *   POST /v1/drills/faults             { kind: 'kill-instance', service, instance? } → the agent's answer
 *   POST /v1/drills/controller-loss    { durationMs } → agents and proxies are refused (503) for that long
 *   POST /v1/drills                    a finished drill's report → stored
 *   GET  /v1/drills?service&limit      newest first
 *   GET  /v1/drills/:id
 *   GET  /v1/agent/faults, POST /v1/agent/faults/:id   the agents' channel (src/core/drill-protocol.ts)
 */

const FAULT_ACK_MS = 10_000;
const MAX_OUTAGE_MS = 120_000;
const MAX_WAIT_S = 30;

const faultTopic = (hostId: string) => `faults:${hostId}`;

interface OpenFault {
  fault: AgentFault;
  hostId: string;
  resolve: (r: AgentFaultResult) => void;
}

/** Faults waiting for their agent, in memory: a fault that outlives its drill must not be replayed. */
export class DrillFaults {
  private readonly open = new Map<string, OpenFault>();

  constructor(private readonly hub: Hub) {}

  forHost(hostId: string): AgentFault[] {
    return [...this.open.values()].filter((f) => f.hostId === hostId).map((f) => f.fault);
  }

  /** Hand a fault to the host's agent and wait for what it did (or time out, withdrawing the fault). */
  async inject(hostId: string, fault: AgentFault, timeoutMs = FAULT_ACK_MS): Promise<AgentFaultResult> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await new Promise<AgentFaultResult>((resolve, reject) => {
        this.open.set(fault.id, { fault, hostId, resolve });
        this.hub.signal(faultTopic(hostId));
        timer = setTimeout(
          () =>
            reject(
              new NinesError(
                'NINES_E_TIMEOUT',
                `the agent of host ${hostId} did not take fault ${fault.id} within ${timeoutMs} ms`,
              ),
            ),
          timeoutMs,
        );
      });
    } finally {
      clearTimeout(timer);
      this.open.delete(fault.id);
      this.hub.signal(faultTopic(hostId));
    }
  }

  deliver(id: string, hostId: string, result: AgentFaultResult): boolean {
    const f = this.open.get(id);
    if (f === undefined || f.hostId !== hostId) return false;
    f.resolve(result);
    return true;
  }
}

const faultBody = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('kill-instance'),
    service: z.string().min(1).max(200),
    instance: z.string().min(1).max(200).optional(),
  }),
  z.strictObject({
    kind: z.literal('zone-outage'),
    service: z.string().min(1).max(200),
    /** The zone to lose; default: the zone of one of the service's instances. */
    zone: z.string().min(1).max(63).optional(),
    durationMs: z.number().int().min(1000).max(MAX_OUTAGE_MS),
  }),
  z.strictObject({
    kind: z.literal('host-loss'),
    service: z.string().min(1).max(200),
    /** The host to lose (id or name); default: the host of one of the service's instances. */
    host: z.string().min(1).max(253).optional(),
    durationMs: z.number().int().min(1000).max(MAX_OUTAGE_MS),
  }),
  z.strictObject({
    kind: z.literal('dependency-down'),
    service: z.string().min(1).max(200),
    /** The check (declared with `dependency: true`) whose host:port goes down. */
    check: z.string().min(1).max(63),
    durationMs: z.number().int().min(1000).max(MAX_OUTAGE_MS),
  }),
]);
/** A host that reported this recently counts as live for choosing where a drill may fail over to. */
const LIVE_MS = 5000;
const outageBody = z.strictObject({ durationMs: z.number().int().min(100).max(MAX_OUTAGE_MS) });
const drillBody = z.strictObject({
  id: z
    .string()
    .regex(/^dr-[a-z0-9-]{4,60}$/)
    .optional(),
  service: z.string().min(1).max(200),
  scenario: z.string().regex(/^[a-z][a-z-]{1,40}$/),
  outcome: z.enum(['passed', 'failed', 'error']),
  startedAt: z.number().int().nonnegative(),
  finishedAt: z.number().int().nonnegative(),
  result: z.record(z.string(), z.unknown()),
});
const listQuery = z.object({
  service: z.string().min(1).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(50),
});
const agentFaultsQuery = z.object({
  hostId: z.string().min(1),
  have: z.string().max(10_000).default(''),
  wait: z.coerce.number().min(0).max(MAX_WAIT_S).default(0),
});

export interface DrillRouteDeps {
  store: Store;
  hub: Hub;
  now?: () => number;
}

/** An instance a drill may kill: the controller placed it, it serves, and its agent reports it running. */
export function killable(hub: Hub, instances: InstanceRecord[]): InstanceRecord[] {
  return instances.filter((i) => {
    if (i.desired !== 'running' || i.route !== 'ready') return false;
    const o = hub.observed(i.hostId, i.id);
    return o !== undefined && o.state === 'running' && o.pid !== undefined;
  });
}

/** Registers the drill routes and the controller-loss gate. Call before the other routes of the API. */
export function registerDrillRoutes(
  app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, Logger>,
  deps: DrillRouteDeps,
): DrillFaults {
  const { store, hub } = deps;
  const now = deps.now ?? Date.now;
  const faults = new DrillFaults(hub);
  let outageUntil = 0;
  let dependencyDownUntil = 0;

  // controller-loss: to its agents and proxies the controller is gone (they must keep serving from
  // what they have); people and the drill itself still reach the API.
  app.addHook('onRequest', async (req) => {
    if (outageUntil === 0) return;
    if (now() >= outageUntil) {
      outageUntil = 0;
      return;
    }
    if (req.url.startsWith('/v1/agent/') || req.url.startsWith('/v1/proxy/')) {
      throw new NinesError('NINES_E_UNAVAILABLE', 'controller-loss drill in progress');
    }
  });

  app.post('/v1/drills/faults', async (req) => {
    const body = parse(faultBody, req.body, 'fault');
    const svc = await store.getService(body.service);
    if (!svc)
      throw new NinesError('NINES_E_DRILL_REFUSED', `no service named "${body.service}" is managed here`);
    const candidates = killable(hub, await store.listInstances({ service: body.service }));
    if (body.kind === 'dependency-down') {
      const check = await store.checks().getCheck(body.check);
      const endpoints = check === undefined ? undefined : dependencyEndpoints(check.spec);
      if (check === undefined || !check.spec.dependency || endpoints === undefined) {
        throw new NinesError(
          'NINES_E_DRILL_REFUSED',
          check === undefined
            ? `no check named "${body.check}" is declared: a drill cuts off only a declared dependency`
            : !check.spec.dependency
              ? `check "${body.check}" is not a dependency (declare it with dependency: true)`
              : `check "${body.check}" (${check.spec.type}) names no host:port to cut off`,
        );
      }
      if (candidates.length === 0) {
        throw new NinesError('NINES_E_DRILL_REFUSED', `${body.service} has no running instance`);
      }
      // One at a time: a process can be in one drill cgroup only, so overlapping cut-offs would undo
      // each other.
      if (now() < dependencyDownUntil) {
        throw new NinesError(
          'NINES_E_DRILL_REFUSED',
          `another dependency-down drill is in progress until ${new Date(dependencyDownUntil).toISOString()}`,
        );
      }

      // Every live host: the service's processes there and every probe location see the outage.
      const live = (await store.listHosts()).filter(
        (h) => h.revokedAt === null && (hub.agents.get(h.id)?.at ?? 0) >= now() - LIVE_MS,
      );
      const sentAt = now();
      // Until the agents have answered (at most FAULT_ACK_MS), then until their cut-off ends.
      dependencyDownUntil = sentAt + FAULT_ACK_MS + body.durationMs;
      const results = await Promise.all(
        live.map(async (h) => {
          const fault: AgentFault = {
            id: `f-${randomBytes(6).toString('hex')}`,
            kind: 'dependency-down',
            check: body.check,
            endpoints,
            instances: candidates.filter((i) => i.hostId === h.id).map((i) => i.id),
            durationMs: body.durationMs,
          };
          return { hostId: h.id, host: h.name, fault, result: await faults.inject(h.id, fault) };
        }),
      );
      dependencyDownUntil = Math.max(sentAt, ...results.map((r) => r.result.at)) + body.durationMs;
      const what = `dependency-down of ${body.check} (${endpoints.map((e) => `${e.host}:${e.port}`).join(', ')})`;
      await store.appendEvent({
        at: now(),
        kind: 'drill.fault',
        subject: body.service,
        message: `drill: ${what} for ${body.durationMs} ms — ${results.map((r) => `${r.host}: ${r.result.message}`).join('; ')}`,
        data: { hosts: results, by: who(req) },
      });
      return {
        kind: body.kind,
        check: body.check,
        endpoints,
        hosts: results,
        instances: candidates.map((i) => i.id),
        sentAt,
        result: {
          ok: results.length > 0 && results.every((r) => r.result.ok),
          message: results.map((r) => `${r.host}: ${r.result.message}`).join('; '),
          at: Math.min(...results.map((r) => r.result.at), now()),
        },
      };
    }
    if (body.kind === 'host-loss' || body.kind === 'zone-outage') {
      const hosts = await store.listHosts();
      const live = hosts.filter(
        (h) => h.revokedAt === null && (hub.agents.get(h.id)?.at ?? 0) >= now() - LIVE_MS,
      );
      const mine = live.filter((h) => candidates.some((i) => i.hostId === h.id));
      let targets: typeof hosts;
      let what: string;
      if (body.kind === 'host-loss') {
        const options = mine.filter(
          (h) => body.host === undefined || h.id === body.host || h.name === body.host,
        );
        const host = options[Math.floor(Math.random() * options.length)];
        if (!host) {
          throw new NinesError(
            'NINES_E_DRILL_REFUSED',
            body.host !== undefined
              ? `host "${body.host}" is not a live host running ${body.service}`
              : `${body.service} has no running instance on a live host`,
          );
        }
        targets = [host];
        what = `host-loss of ${host.name}`;
      } else {
        const zone = body.zone ?? mine[Math.floor(Math.random() * mine.length)]?.zone;
        targets = live.filter((h) => h.zone === zone);
        if (zone === undefined || !targets.some((h) => mine.includes(h))) {
          throw new NinesError(
            'NINES_E_DRILL_REFUSED',
            body.zone !== undefined
              ? `zone "${body.zone}" has no live host running ${body.service}`
              : `${body.service} has no running instance on a live host`,
          );
        }
        what = `zone-outage of ${zone} (${targets.map((h) => h.name).join(', ')})`;
      }
      const lost = new Set(targets.map((h) => h.id));
      if (candidates.every((i) => lost.has(i.hostId))) {
        throw new NinesError(
          'NINES_E_DRILL_REFUSED',
          `${what} would take every running instance of ${body.service} down at once — an outage, not a drill`,
        );
      }
      if (!live.some((h) => !lost.has(h.id))) {
        throw new NinesError(
          'NINES_E_DRILL_REFUSED',
          `${what} would leave no live host for ${body.service} to fail over to`,
        );
      }
      const sentAt = now();
      const results = await Promise.all(
        targets.map(async (h) => {
          const fault: AgentFault = {
            id: `f-${randomBytes(6).toString('hex')}`,
            kind: 'host-loss',
            durationMs: body.durationMs,
          };
          return { hostId: h.id, host: h.name, fault, result: await faults.inject(h.id, fault) };
        }),
      );
      await store.appendEvent({
        at: now(),
        kind: 'drill.fault',
        subject: body.service,
        message: `drill: ${what} for ${body.durationMs} ms — ${results.map((r) => `${r.host}: ${r.result.message}`).join('; ')}`,
        data: { hosts: results, by: who(req) },
      });
      const first = results[0]!;
      return {
        kind: body.kind,
        ...(body.kind === 'zone-outage' ? { zone: targets[0]?.zone } : {}),
        hosts: results,
        hostId: first.hostId,
        host: first.host,
        instances: candidates.filter((i) => lost.has(i.hostId)).map((i) => i.id),
        sentAt,
        result: {
          ok: results.every((r) => r.result.ok),
          message: results.map((r) => `${r.host}: ${r.result.message}`).join('; '),
          at: Math.min(...results.map((r) => r.result.at)),
        },
      };
    }
    let target: InstanceRecord | undefined;
    if (body.instance !== undefined) {
      target = candidates.find((i) => i.id === body.instance);
      if (!target) {
        throw new NinesError(
          'NINES_E_DRILL_REFUSED',
          `instance "${body.instance}" is not a running, routed instance of ${body.service}`,
        );
      }
    } else {
      target = candidates[Math.floor(Math.random() * candidates.length)];
      if (!target)
        throw new NinesError('NINES_E_DRILL_REFUSED', `${body.service} has no running instance to kill`);
    }
    const fault: AgentFault = {
      id: `f-${randomBytes(6).toString('hex')}`,
      kind: body.kind,
      instance: target.id,
    };
    const sentAt = now();
    const result = await faults.inject(target.hostId, fault);
    await store.appendEvent({
      at: now(),
      kind: 'drill.fault',
      subject: body.service,
      message: `drill: ${body.kind} ${target.id} — ${result.message}`,
      data: { fault, hostId: target.hostId, result, by: who(req) },
    });
    return { fault, instance: target.id, hostId: target.hostId, sentAt, result };
  });

  app.post('/v1/drills/controller-loss', async (req) => {
    const body = parse(outageBody, req.body, 'controller-loss');
    const from = now();
    outageUntil = from + body.durationMs;
    await store.appendEvent({
      at: from,
      kind: 'drill.fault',
      subject: 'controller',
      message: `drill: controller-loss for ${body.durationMs} ms — agents and proxies are refused`,
      data: { durationMs: body.durationMs, by: who(req) },
    });
    return { from, until: outageUntil };
  });

  app.post('/v1/drills', async (req, reply) => {
    const body = parse(drillBody, req.body, 'drill');
    if (!(await store.getService(body.service))) {
      throw new NinesError('NINES_E_SERVICE_NOT_FOUND', `no service named "${body.service}"`);
    }
    const rec: DrillRecord = {
      id: body.id ?? `dr-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`,
      service: body.service,
      scenario: body.scenario,
      outcome: body.outcome,
      createdBy: who(req),
      startedAt: body.startedAt,
      finishedAt: body.finishedAt,
      result: body.result,
    };
    await store.transaction(async (tx) => {
      await tx.insertDrill(rec);
      await tx.appendEvent({
        at: now(),
        kind: 'drill.finished',
        subject: rec.service,
        message: `drill ${rec.scenario} of ${rec.service}: ${rec.outcome}`,
        data: { drill: rec.id },
      });
    });
    return reply.status(201).send(rec);
  });

  app.get('/v1/drills', async (req) => {
    const q = parse(listQuery, req.query, 'query');
    return {
      drills: await store.listDrills({ ...(q.service ? { service: q.service } : {}), limit: q.limit }),
    };
  });

  app.get('/v1/drills/:id', async (req) => {
    const { id } = parse(z.object({ id: z.string().min(1) }), req.params, 'path');
    const d = await store.getDrill(id);
    if (!d) throw new NinesError('NINES_E_DRILL_NOT_FOUND', `no drill ${id}`);
    return d;
  });

  app.get('/v1/agent/faults', async (req, reply) => {
    const q = parse(agentFaultsQuery, req.query, 'query');
    ownHost(req, q.hostId);
    const have = q.have === '' ? [] : q.have.split(',');
    const same = () => {
      const open = faults.forHost(q.hostId);
      return open.length === have.length && open.every((f) => have.includes(f.id));
    };
    if (same() && q.wait > 0) await hub.waitSignal(faultTopic(q.hostId), q.wait * 1000, closeSignal(reply));
    return { faults: faults.forHost(q.hostId) };
  });

  app.post('/v1/agent/faults/:id', async (req, reply) => {
    const { id } = parse(z.object({ id: z.string().min(1) }), req.params, 'path');
    const { hostId } = parse(z.object({ hostId: z.string().min(1) }), req.query, 'query');
    ownHost(req, hostId);
    faults.deliver(id, hostId, parse(agentFaultResultSchema, req.body, 'fault result'));
    return reply.status(204).send();
  });

  return faults;
}

/** The host:port a dependency check names (HTTP: its URL's; TCP: its own); DNS names none. Pure. */
export function dependencyEndpoints(spec: CheckConfig): Array<{ host: string; port: number }> | undefined {
  if (spec.type === 'tcp') return [{ host: spec.host, port: spec.port }];
  if (spec.type === 'http') {
    const u = new URL(spec.url);
    const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
    return [{ host, port: u.port !== '' ? Number(u.port) : u.protocol === 'https:' ? 443 : 80 }];
  }
  return undefined;
}

function who(req: FastifyRequest): string {
  const p = req.principal;
  return p ? `${p.name} (${p.role})` : 'anonymous';
}

function ownHost(req: FastifyRequest, hostId: string): void {
  const signer = req.principal?.hostId;
  if (signer && signer !== hostId) {
    throw new NinesError('NINES_E_FORBIDDEN', `host ${signer} may not act for host ${hostId}`);
  }
}

function closeSignal(reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  reply.raw.once('close', () => ac.abort());
  return ac.signal;
}
