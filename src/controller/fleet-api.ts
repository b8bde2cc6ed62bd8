import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { duration, parseInput as parse } from '../core/config.js';
import { NinesError } from '../core/errors.js';
import { hostTaskResultSchema } from '../core/tasks-protocol.js';
import type { HostOps } from './hostops.js';
import type { Hub } from './hub.js';
import { type HostTasks, taskTopic } from './tasks.js';
import type { WebApp } from './web.js';

/**
 * The fleet's HTTP API: host states, cordon/uncordon/drain, rolling patches, zone evacuation, the
 * N+1 capacity check, and the agents' side of host tasks. Mounted next to the core API
 * (`controller.ts`); authentication and roles come from its hooks (admin for changes, read for GETs,
 * the host's own signature for /v1/agent/*).
 */
export function registerFleetApi(app: WebApp, d: { hostOps: HostOps; tasks: HostTasks; hub: Hub }): void {
  const { hostOps, tasks, hub } = d;
  const nameParams = z.object({ name: z.string().min(1).max(253) });
  const zoneParams = z.object({ zone: z.string().min(1).max(63) });
  const waitBody = z.strictObject({ wait: z.number().min(0).max(3600).default(0) }).default({ wait: 0 });

  app.get('/v1/fleet/hosts', async () => hostOps.hosts());

  app.post('/v1/hosts/:name/cordon', async (req) => {
    const { name } = parse(nameParams, req.params, 'path');
    return { host: view(await hostOps.cordon(name, who(req))) };
  });

  app.post('/v1/hosts/:name/uncordon', async (req) => {
    const { name } = parse(nameParams, req.params, 'path');
    return { host: view(await hostOps.uncordon(name, who(req))) };
  });

  // Drain: refused up front when the budget cannot be kept; with `wait` (seconds), answers once drained.
  app.post('/v1/hosts/:name/drain', async (req, reply) => {
    const { name } = parse(nameParams, req.params, 'path');
    const body = parse(waitBody, req.body ?? {}, 'body');
    const h = await hostOps.drain(name, who(req));
    if (body.wait > 0) await hostOps.waitDrained(h.id, body.wait * 1000, closeSignal(reply));
    const now = (await hostOps.hosts()).hosts.find((x) => x.id === h.id);
    return { host: now ?? view(h) };
  });

  app.post('/v1/hosts/patch', async (req, reply) => {
    const body = parse(
      z.strictObject({
        command: z.string().min(1).max(4096),
        maxUnavailable: z.number().int().min(1).max(1000).default(1),
        zone: z.string().min(1).max(63).optional(),
        drainTimeout: duration.default(300_000),
        commandTimeout: duration.default(600_000),
        healthyTimeout: duration.default(120_000),
        restartAgent: z.boolean().default(false),
      }),
      req.body,
      'patch request',
    );
    const job = await hostOps.startPatch(
      {
        command: body.command,
        maxUnavailable: body.maxUnavailable,
        zone: body.zone,
        drainTimeoutMs: body.drainTimeout,
        commandTimeoutMs: body.commandTimeout,
        healthyTimeoutMs: body.healthyTimeout,
        restartAgent: body.restartAgent,
      },
      who(req),
    );
    return reply.status(202).send({ patch: job });
  });

  // Long poll: answers when the patch changed (or ended), or after `wait` seconds.
  app.get('/v1/patches/:id', async (req, reply) => {
    const { id } = parse(z.object({ id: z.string().min(1) }), req.params, 'path');
    const q = parse(z.object({ wait: z.coerce.number().min(0).max(30).default(0) }), req.query, 'query');
    const job = hostOps.getPatch(id);
    if (q.wait > 0 && job.state === 'running')
      await hub.waitSignal(`patch:${id}`, q.wait * 1000, closeSignal(reply));
    return { patch: hostOps.getPatch(id) };
  });

  app.get('/v1/zones', async () => {
    const { hosts, evacuatedZones } = await hostOps.hosts();
    const zones = [...new Set([...hosts.map((h) => h.zone), ...evacuatedZones])].sort();
    return {
      zones: zones.map((zone) => {
        const mine = hosts.filter((h) => h.zone === zone);
        return {
          zone,
          evacuated: evacuatedZones.includes(zone),
          hosts: mine.length,
          up: mine.filter((h) => h.state !== 'down').length,
          instances: mine.reduce((n, h) => n + h.instances, 0),
        };
      }),
    };
  });

  app.post('/v1/zones/:zone/evacuate', async (req) => {
    const { zone } = parse(zoneParams, req.params, 'path');
    return hostOps.evacuate(zone, who(req));
  });

  app.post('/v1/zones/:zone/restore', async (req) => {
    const { zone } = parse(zoneParams, req.params, 'path');
    return hostOps.restore(zone, who(req));
  });

  app.get('/v1/capacity', async () => hostOps.capacity());

  // ---- the agent's side of host tasks -------------------------------------------------------------

  app.get('/v1/agent/tasks', async (req, reply) => {
    const q = parse(
      z.object({
        hostId: z.string().min(1),
        have: z.string().max(10_000).default(''),
        wait: z.coerce.number().min(0).max(30).default(0),
      }),
      req.query,
      'query',
    );
    ownHost(req, q.hostId);
    const have = new Set(q.have === '' ? [] : q.have.split(','));
    const nothingNew = () => tasks.forHost(q.hostId).every((t) => have.has(t.id));
    if (nothingNew() && q.wait > 0)
      await hub.waitSignal(taskTopic(q.hostId), q.wait * 1000, closeSignal(reply));
    return { tasks: tasks.forHost(q.hostId) };
  });

  app.post('/v1/agent/tasks/:id', async (req, reply) => {
    const { id } = parse(z.object({ id: z.string().min(1) }), req.params, 'path');
    const { hostId } = parse(z.object({ hostId: z.string().min(1) }), req.query, 'query');
    ownHost(req, hostId);
    tasks.complete(hostId, id, parse(hostTaskResultSchema, req.body, 'task result'));
    return reply.status(204).send();
  });
}

function view(h: { id: string; name: string; zone: string; state: string; admin: string }) {
  return { id: h.id, name: h.name, zone: h.zone, state: h.state, admin: h.admin };
}

function who(req: FastifyRequest): string {
  return req.principal ? `${req.principal.name} (${req.principal.role})` : 'anonymous';
}

/** A signed host acts only for itself. */
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
