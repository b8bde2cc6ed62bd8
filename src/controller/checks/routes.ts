import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import { agentCheckResultsSchema, checkSchema, isCheckName } from '../../core/checks.js';
import { parseInput as parse } from '../../core/config.js';
import { NinesError } from '../../core/errors.js';
import type { MaintenanceWindow } from '../alerting/grouping.js';
import { createToken } from '../auth.js';
import type { Hub } from '../hub.js';
import { controllerMetricsText } from '../signals/metrics.js';
import type { Signals } from '../signals/signals.js';
import type { Store } from '../store/types.js';
import type { WebApp } from '../web.js';
import { availabilityFor, uptimeReport } from './reports.js';
import { CHECKS_TOPIC, type CheckService } from './service.js';
import { statusPageHtml, statusPageModel } from './status-page.js';
import { REPORT_WINDOWS, type ReportWindow } from './uptime.js';

/**
 * HTTP routes of checks, signals and reports, registered on the controller's API (which authenticates
 * every route but the public status page, see `isPublicStatusPath`).
 *
 *   GET    /v1/agent/checks?hostId&after&wait   node: the checks to run (long poll on their version)
 *   POST   /v1/agent/checks/results             node: results from one location
 *   GET    /v1/checks                           the checks with their state and per-location results
 *   GET    /v1/checks/:name                     one check, plus its recent transitions
 *   PUT    /v1/checks/:name                     admin: declare or change a check (nines apply)
 *   DELETE /v1/checks/:name                     admin: remove it
 *   GET    /v1/signals?signal&<label>=<value>   current signal samples (what alert rules evaluate)
 *   GET    /v1/uptime?window&objective          uptime, error budget, incidents per service and check
 *   GET    /v1/availability?service&window&objective   series/parallel composition (seed 004)
 *   GET    /metrics                             Prometheus text (read, admin or metrics token)
 *   GET    /status, /status.json                public status page (no token)
 */

export interface CheckRouteDeps {
  store: Store;
  hub: Hub;
  signals: Signals;
  checks: CheckService;
  maintenanceWindows?: () => readonly MaintenanceWindow[];
  /** Title of the status page (the environment's name). */
  statusTitle?: string;
}

const MAX_WAIT_S = 30;

/** The status page is public: no token, read-only, nothing but states and uptime. */
export function isPublicStatusPath(method: string, url: string): boolean {
  if (method !== 'GET' && method !== 'HEAD') return false;
  const path = url.split('?')[0];
  return path === '/status' || path === '/status.json';
}

const windowQuery = z.object({
  window: z.enum(Object.keys(REPORT_WINDOWS) as [ReportWindow, ...ReportWindow[]]).default('30d'),
  objective: z.coerce.number().gt(0).lt(1).default(0.999),
});

export function registerCheckRoutes(app: WebApp, d: CheckRouteDeps): void {
  const { checks, hub, signals, store } = d;

  app.get('/v1/agent/checks', async (req, reply) => {
    const q = parse(
      z.object({
        hostId: z.string().min(1),
        after: z.coerce.number().int().nonnegative().default(0),
        wait: z.coerce.number().min(0).max(MAX_WAIT_S).default(0),
      }),
      req.query,
      'query',
    );
    ownHost(req.principal?.hostId, q.hostId);
    if ((await checks.versionNow()) <= q.after && q.wait > 0) {
      await hub.waitSignal(CHECKS_TOPIC, q.wait * 1000, closeSignal(reply));
    }
    return checks.forAgents();
  });

  app.post('/v1/agent/checks/results', async (req) => {
    const body = parse(agentCheckResultsSchema, req.body, 'check results');
    ownHost(req.principal?.hostId, body.hostId);
    if (!(await store.getHost(body.hostId))) {
      throw new NinesError('NINES_E_HOST_NOT_FOUND', `unknown host ${body.hostId}`);
    }
    return checks.receive(body.hostId, body.results);
  });

  app.get('/v1/checks', async () => ({ checks: await checks.list() }));

  app.get('/v1/checks/:name', async (req) => {
    const { name } = parse(z.object({ name: z.string().min(1) }), req.params, 'path');
    const rec = await checks.get(name);
    if (!rec) throw new NinesError('NINES_E_CHECK_NOT_FOUND', `no check named "${name}"`);
    const transitions = await store
      .checks()
      .listTransitions({ subject: name, since: Date.now() - 7 * 86_400_000 });
    return { check: checks.view(rec), transitions: transitions.slice(-100) };
  });

  app.put('/v1/checks/:name', async (req, reply) => {
    const { name } = parse(z.object({ name: z.string().min(1) }), req.params, 'path');
    if (!isCheckName(name)) {
      throw new NinesError(
        'NINES_E_VALIDATION',
        'check names are lowercase, a-z 0-9 and -, starting with a letter, up to 63',
      );
    }
    const spec = parse(checkSchema, req.body, 'check');
    const { record, created } = await checks.put(name, spec);
    await store.appendEvent({
      at: Date.now(),
      kind: created ? 'check.created' : 'check.updated',
      subject: name,
      message: `check ${name} (${spec.type}) ${created ? 'created' : 'updated'} by ${who(req.principal)}`,
      data: null,
    });
    return reply.status(created ? 201 : 200).send({ check: record });
  });

  app.delete('/v1/checks/:name', async (req) => {
    const { name } = parse(z.object({ name: z.string().min(1) }), req.params, 'path');
    if (!(await checks.remove(name)))
      throw new NinesError('NINES_E_CHECK_NOT_FOUND', `no check named "${name}"`);
    await store.appendEvent({
      at: Date.now(),
      kind: 'check.deleted',
      subject: name,
      message: `check ${name} deleted by ${who(req.principal)}`,
      data: null,
    });
    return { name, deleted: true };
  });

  app.get('/v1/signals', async (req) => {
    const { signal, ...labels } = parse(z.record(z.string(), z.string()), req.query, 'query');
    return { samples: signals.query(signal, labels) };
  });

  app.get('/v1/uptime', async (req) => {
    const q = parse(windowQuery, req.query, 'query');
    return {
      window: q.window,
      objective: q.objective,
      rows: await uptimeReport(reportDeps(d), q.window, q.objective),
    };
  });

  app.get('/v1/availability', async (req) => {
    const q = parse(windowQuery.extend({ service: z.string().min(1).optional() }), req.query, 'query');
    const services = await store.listServices();
    const chosen = q.service ? services.filter((s) => s.name === q.service) : services;
    if (q.service && chosen.length === 0) {
      throw new NinesError('NINES_E_SERVICE_NOT_FOUND', `no service named "${q.service}"`);
    }
    const rows = await uptimeReport(reportDeps(d), q.window, q.objective);
    return {
      services: chosen.map((s) =>
        availabilityFor({ name: s.name, instances: s.spec.instances }, rows, q.objective, q.window),
      ),
    };
  });

  // A token that can read /metrics and nothing else (for a Prometheus scrape config), returned once.
  app.post('/v1/metrics-tokens', async (req, reply) => {
    const body = parse(
      z.strictObject({ name: z.string().min(1).max(100).default('prometheus') }),
      req.body ?? {},
      'metrics token request',
    );
    const { token, record } = await createToken(store, 'metrics', body.name);
    await store.appendEvent({
      at: Date.now(),
      kind: 'token.created',
      subject: record.id,
      message: `metrics token ${record.id} (${record.name}) created by ${who(req.principal)}`,
      data: null,
    });
    return reply.status(201).send({ id: record.id, token });
  });

  app.get('/metrics', async (_req, reply) => {
    return reply
      .type('text/plain; version=0.0.4; charset=utf-8')
      .send(controllerMetricsText(signals, { checkResultsReceived: checks.resultsReceived }));
  });

  app.get('/status.json', async () =>
    statusPageModel(await uptimeReport(reportDeps(d), '90d', 0.999), checks, d.statusTitle ?? 'nines'),
  );

  app.get('/status', async (_req, reply) => {
    const model = statusPageModel(
      await uptimeReport(reportDeps(d), '90d', 0.999),
      checks,
      d.statusTitle ?? 'nines',
    );
    return reply
      .type('text/html; charset=utf-8')
      .header('cache-control', 'public, max-age=10')
      .header(
        'content-security-policy',
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
      )
      .header('x-content-type-options', 'nosniff')
      .send(statusPageHtml(model));
  });
}

function reportDeps(d: CheckRouteDeps) {
  return { store: d.store, ...(d.maintenanceWindows ? { maintenanceWindows: d.maintenanceWindows } : {}) };
}

function who(p: { name: string; role: string } | null | undefined): string {
  return p ? `${p.name} (${p.role})` : 'anonymous';
}

function ownHost(signer: string | undefined, hostId: string): void {
  if (signer && signer !== hostId) {
    throw new NinesError('NINES_E_FORBIDDEN', `host ${signer} may not act for host ${hostId}`);
  }
}

function closeSignal(reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  reply.raw.once('close', () => ac.abort());
  return ac.signal;
}
