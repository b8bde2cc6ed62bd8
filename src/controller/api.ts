import { PassThrough, type Readable } from 'node:stream';
import Fastify, { type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import { duration, parseInput as parse, STRATEGIES, serviceSchema } from '../core/config.js';
import { diffFields } from '../core/config-diff.js';
import { type ErrorCode, errorRegistry, isNinesError, NinesError } from '../core/errors.js';
import { instancesOutOfRange } from '../core/fleet-config.js';
import { type LogChunkAnswer, logChunkSchema } from '../core/logs-protocol.js';
import { agentRegisterSchema, agentReportSchema, proxyReportSchema } from '../core/protocol.js';
import { EMPTY_SHA256, sha256Hex } from '../core/signing.js';
import { isAlertAckPath } from './alerts-api.js';
import type { ArtifactStore } from './artifacts.js';
import { type Authenticator, allowed, createToken, type PendingSignature, type Principal } from './auth.js';
import { isPublicStatusPath } from './checks/routes.js';
import { DesiredReplies } from './desired-replies.js';
import { registerDrillRoutes } from './drills.js';
import type { DeployEngine } from './engine/engine.js';
import type { Fleet } from './fleet.js';
import type { Hub } from './hub.js';
import { type Leadership, needsLeader } from './leadership.js';
import { LinePrefixer, LogRelay, logTopic } from './logs.js';
import { mayReportAs } from './proxies.js';
import { LeaderRelay, mayRelay } from './relay.js';
import type { Secrets } from './secrets/index.js';
import { statusView } from './status.js';
import type { Store } from './store/types.js';
import { httpsServerFactory, type TlsFiles } from './tls.js';
import { isPublicWebPath } from './web.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
    pendingSignature: PendingSignature | null;
    bodySha256: string | null;
  }
}

export interface ApiDeps {
  store: Store;
  hub: Hub;
  fleet: Fleet;
  engine: DeployEngine;
  artifacts: ArtifactStore;
  auth: Authenticator;
  logger: Logger;
  /** Variables and secrets merged into desired states (secrets only for the host's own signed poll). */
  secrets?: Secrets;
  /** Serve HTTPS with these (controller/tls.ts); plain HTTP without. */
  tls?: TlsFiles;
  /** Several controllers: followers refuse what only the leader may do (NINES_E_NOT_LEADER). */
  leadership?: Leadership;
}

const VERSION_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const MAX_WAIT_S = 30;

const nameParams = z.object({ name: z.string().min(1) });
const LOG_ANSWER_S = 10;
const flag = z
  .enum(['1', '0', 'true', 'false'])
  .default('false')
  .transform((v) => v === '1' || v === 'true');
const logsQuery = z.object({
  instance: z.string().min(1).optional(),
  tail: z.coerce.number().int().min(0).max(10_000).default(100),
  follow: flag,
});
const agentLogsQuery = z.object({
  hostId: z.string().min(1),
  /** Comma-separated ids of the requests the agent already serves. */
  have: z.string().max(10_000).default(''),
  wait: z.coerce.number().min(0).max(MAX_WAIT_S).default(0),
});

function sameIds(open: { id: string }[], have: string): boolean {
  const known = have === '' ? [] : have.split(',');
  return open.length === known.length && open.every((r) => known.includes(r.id));
}
const releaseParams = z.object({ name: z.string().min(1), version: z.string().min(1) });
const deployBody = z.strictObject({
  version: z.string().regex(VERSION_RE),
  strategy: z.enum(STRATEGIES).optional(),
  autoRevert: z.boolean().optional(),
});
const rollbackBody = z.strictObject({ to: z.string().regex(VERSION_RE).optional() }).default({});
const pollQuery = z.object({
  after: z.coerce.number().int().nonnegative().default(0),
  wait: z.coerce.number().min(0).max(MAX_WAIT_S).default(0),
});

/** The controller's HTTP API. Every route but /healthz authenticates; errors carry registry codes. */
export function buildApi(deps: ApiDeps) {
  const { store, hub, fleet, engine, artifacts, auth } = deps;
  const app = Fastify({
    loggerInstance: deps.logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024 * 1024,
    // Long polls hold requests for up to MAX_WAIT_S; keep connections open a little longer than that.
    keepAliveTimeout: (MAX_WAIT_S + 5) * 1000,
    ...(deps.tls ? { serverFactory: httpsServerFactory(deps.tls) } : {}),
  });
  app.decorateRequest('principal', null);
  app.decorateRequest('pendingSignature', null);
  app.decorateRequest('bodySha256', null);

  // JSON bodies are hashed as received, for signed requests (the signature covers the body's sha256).
  const defaultJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    req.bodySha256 = sha256Hex(body as string);
    defaultJson(req, body as string, done);
  });

  // Artifacts are streamed to disk, not buffered: the parser hands the raw stream to the route.
  app.addContentTypeParser(['application/gzip', 'application/octet-stream'], (_req, payload, done) => {
    done(null, payload);
  });

  app.addHook('onRequest', async (req) => {
    if (req.url === '/healthz' || isPublicWebPath(req.method, req.url)) return;
    if (isPublicStatusPath(req.method, req.url) || isAlertAckPath(req.method, req.url)) return;
    const { principal, pending } = await auth.authenticate(req.headers.authorization);
    if (!allowed(principal, req.method, req.url)) {
      throw new NinesError(
        'NINES_E_FORBIDDEN',
        `a ${principal.role} ${principal.hostId ? 'host' : 'token'} may not ${req.method} ${req.url.split('?')[0]}`,
      );
    }
    req.principal = principal;
    req.pendingSignature = pending ?? null;
  });

  const leadership = deps.leadership;
  if (leadership) {
    // After authentication, so that only callers with credentials learn where the leader is.
    const relay = new LeaderRelay(() => leadership.id);
    app.addHook('onClose', () => relay.close());
    app.addHook('onRequest', async (req, reply) => {
      if (leadership.isLeader || !needsLeader(req.method, req.url)) return;
      const leader = leadership.leaderUrl;
      if (leader && mayRelay(req)) return relay.relay(req, reply, leader);
      throw new NinesError(
        'NINES_E_NOT_LEADER',
        leader
          ? `this controller is a follower; the leader is ${leader}`
          : 'this controller is a follower and no leader holds the lease right now (a takeover is under way); retry in a moment',
        { leader },
      );
    });
  }

  app.addHook('preHandler', async (req) => {
    if (req.pendingSignature) {
      await auth.verifySigned(req.pendingSignature, req.method, req.url, req.bodySha256 ?? EMPTY_SHA256);
    }
  });

  registerDrillRoutes(app, { store, hub });

  app.setErrorHandler((err, req, reply) => {
    if (isNinesError(err)) {
      if (err.status >= 500) req.log.error({ err }, 'request failed');
      else if (err.status === 401 || err.status === 403) {
        // Refused credentials are worth a warning: replays and revoked hosts are how attacks look.
        req.log.warn({ code: err.code, url: req.url.split('?')[0], ip: req.ip }, err.message);
      } else req.log.info({ code: err.code, url: req.url }, err.message);
      return reply.status(err.status).send(err.toBody());
    }
    const fe = err as { statusCode?: number; code?: string; message: string };
    const code = fastifyCode(fe.statusCode, fe.code);
    if (errorRegistry[code].status >= 500) req.log.error({ err }, 'request failed');
    return reply.status(errorRegistry[code].status).send(new NinesError(code, fe.message).toBody());
  });

  app.setNotFoundHandler((req, reply) => {
    const e = new NinesError('NINES_E_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`);
    return reply.status(e.status).send(e.toBody());
  });

  app.get('/healthz', async () => ({ ok: true }));

  // Leadership: which controller leads, with which fencing token (any controller answers).
  app.get('/v1/leader', async () => leadership?.status() ?? null);

  // Backup: every table of the store as one consistent snapshot. It holds host keys and token hashes,
  // so only an admin may read it (`nines backup` encrypts it before it touches a disk).
  app.get('/v1/backup/state', async (req) => {
    if (req.principal?.role !== 'admin') {
      throw new NinesError('NINES_E_FORBIDDEN', 'only an admin token may read a backup of the store');
    }
    return store.exportSnapshot();
  });

  // ---- people: status, services, releases, deploys, events ----------------------------------------

  app.get('/v1/status', async () => statusView(store, hub));

  app.get('/v1/services', async () => ({ services: await store.listServices() }));

  app.get('/v1/services/:name', async (req) => {
    const { name } = parse(nameParams, req.params, 'path');
    return { service: await mustService(store, name) };
  });

  app.put('/v1/services/:name', async (req, reply) => {
    const { name } = parse(nameParams, req.params, 'path');
    if (!/^[a-z][a-z0-9-]{0,62}$/.test(name)) {
      throw new NinesError(
        'NINES_E_VALIDATION',
        'service names are lowercase, a-z 0-9 and -, up to 63 characters',
      );
    }
    const spec = parse(serviceSchema, req.body, 'service spec');
    const outOfRange = instancesOutOfRange(spec.instances, spec.scaling);
    if (outOfRange) throw new NinesError('NINES_E_VALIDATION', `invalid service spec: ${outOfRange}`);
    const existed = await store.getService(name);
    const svc = await store.upsertService(name, spec);
    hub.signal('services'); // the reconciler acts on a new instance count at once
    if (existed) await fleet.bumpRouting();
    await store.appendEvent({
      at: Date.now(),
      kind: existed ? 'service.updated' : 'service.created',
      subject: name,
      message: `service ${name} ${existed ? 'updated' : 'created'} by ${who(req)}`,
      data: null,
    });
    return reply.status(existed ? 200 : 201).send({ service: svc });
  });

  // Service mode: live / read-only / maintenance / pause, applied by every proxy within milliseconds.
  // Answers once the live proxies have it (or after 5 s), saying how long that took.
  app.put('/v1/services/:name/mode', async (req) => {
    const { name } = parse(nameParams, req.params, 'path');
    const body = parse(
      z.strictObject({
        mode: z.enum(['live', 'read-only', 'maintenance', 'pause']),
        retryAfter: z.number().int().min(0).max(86_400).optional(),
        message: z.string().max(2000).optional(),
        pauseTimeout: duration.optional(),
      }),
      req.body,
      'mode change',
    );
    await mustService(store, name);
    const options = {
      ...(body.retryAfter !== undefined ? { retryAfterSeconds: body.retryAfter } : {}),
      ...(body.message !== undefined ? { message: body.message } : {}),
      ...(body.pauseTimeout !== undefined ? { pauseTimeoutMs: body.pauseTimeout } : {}),
    };
    await store.setServiceMode(name, body.mode, Object.keys(options).length ? options : null);
    const t0 = Date.now();
    const version = await fleet.bumpRouting();
    await store.appendEvent({
      at: t0,
      kind: 'service.mode',
      subject: name,
      message: `service ${name} is ${body.mode} (set by ${who(req)})`,
      data: options,
    });
    const proxies = await hub
      .waitUntil(
        `proxies apply mode of ${name}`,
        () => {
          const live = hub.liveProxies();
          return live.every((p) => p.appliedVersion >= version) ? live.length : undefined;
        },
        5000,
      )
      .catch(() => null);
    return {
      service: await mustService(store, name),
      proxies: proxies ?? 0,
      appliedInMs: proxies === null ? null : Date.now() - t0,
    };
  });

  app.get('/v1/services/:name/releases', async (req) => {
    const { name } = parse(nameParams, req.params, 'path');
    await mustService(store, name);
    return { releases: await store.listReleases(name) };
  });

  // What changed in a release's config, field by field: against `from`, else the release before it.
  app.get('/v1/services/:name/releases/:version/diff', async (req) => {
    const { name, version } = parse(
      z.object({ name: z.string().min(1), version: z.string().min(1) }),
      req.params,
      'path',
    );
    const q = parse(z.object({ from: z.string().min(1).optional() }), req.query, 'query');
    await mustService(store, name);
    const releases = await store.listReleases(name);
    const find = (v: string) => {
      const r = releases.find((x) => x.version === v);
      if (!r) throw new NinesError('NINES_E_RELEASE_NOT_FOUND', `${name} has no release ${v}`);
      return r;
    };
    const to = find(version);
    const from =
      q.from !== undefined
        ? find(q.from)
        : releases.filter((r) => r.seq < to.seq).sort((a, b) => b.seq - a.seq)[0];
    return {
      service: name,
      from: from?.version ?? null,
      to: to.version,
      changes: diffFields('', from?.spec ?? {}, to.spec),
    };
  });

  app.post('/v1/services/:name/releases', async (req, reply) => {
    const { name } = parse(nameParams, req.params, 'path');
    const { version } = parse(z.object({ version: z.string().regex(VERSION_RE) }), req.query, 'query');
    const svc = await mustService(store, name);
    if (await store.getRelease(name, version)) {
      throw new NinesError(
        'NINES_E_RELEASE_EXISTS',
        `${name} already has a release ${version}; releases are immutable`,
      );
    }
    if (!req.body || typeof (req.body as Readable).pipe !== 'function') {
      throw new NinesError(
        'NINES_E_UNSUPPORTED_MEDIA_TYPE',
        'send the artifact as the body with content-type application/gzip',
      );
    }
    const sha = req.headers['x-nines-sha256'];
    const got = await artifacts.receive(
      name,
      req.body as Readable,
      typeof sha === 'string' ? sha : undefined,
    );
    let release: Awaited<ReturnType<Store['insertRelease']>>;
    try {
      await artifacts.commit(got.tmp, name, version, got.sha256);
      release = await store.insertRelease({
        service: name,
        version,
        sha256: got.sha256,
        size: got.size,
        spec: svc.spec,
        createdBy: who(req),
        createdAt: Date.now(),
      });
    } catch (err) {
      await artifacts.discard(got.tmp);
      throw err;
    }
    await store.appendEvent({
      at: Date.now(),
      kind: 'release.created',
      subject: name,
      message: `release ${name} ${version} (${got.size} bytes, sha256 ${got.sha256.slice(0, 12)}…) by ${who(req)}`,
      data: { version, sha256: got.sha256, size: got.size },
    });
    return reply.status(201).send({ release });
  });

  app.get('/v1/services/:name/releases/:version/artifact', async (req, reply) => {
    const { name, version } = parse(releaseParams, req.params, 'path');
    const release = await store.getRelease(name, version);
    if (!release)
      throw new NinesError('NINES_E_RELEASE_NOT_FOUND', `service "${name}" has no release "${version}"`);
    const { stream, size } = await artifacts.open(name, version);
    return reply
      .header('content-type', 'application/gzip')
      .header('content-length', size)
      .header('x-nines-sha256', release.sha256)
      .send(stream);
  });

  app.post('/v1/services/:name/deploys', async (req, reply) => {
    const { name } = parse(nameParams, req.params, 'path');
    const { version, strategy, autoRevert } = parse(deployBody, req.body, 'deploy request');
    const deploy = await engine.create(name, version, {
      createdBy: who(req),
      ...(strategy ? { strategy } : {}),
      ...(autoRevert !== undefined ? { autoRevert } : {}),
    });
    return reply.status(202).send({ deploy });
  });

  app.get('/v1/services/:name/deploys', async (req) => {
    const { name } = parse(nameParams, req.params, 'path');
    await mustService(store, name);
    return { deploys: await store.listDeploys(name, 100) };
  });

  app.post('/v1/services/:name/rollback', async (req, reply) => {
    const { name } = parse(nameParams, req.params, 'path');
    const { to } = parse(rollbackBody, req.body ?? {}, 'rollback request');
    const target = to ?? (await engine.rollbackTarget(name)).version;
    const deploy = await engine.create(name, target, { createdBy: who(req), kind: 'rollback' });
    return reply.status(202).send({ deploy });
  });

  app.get('/v1/deploys', async () => ({ deploys: await store.listDeploys(undefined, 100) }));

  app.get('/v1/deploys/:id', async (req) => {
    const { id } = parse(z.object({ id: z.string().min(1) }), req.params, 'path');
    const deploy = await mustDeploy(store, id);
    return { deploy, events: await store.listDeployEvents(id) };
  });

  // Deploy controls: pause holds at the next step boundary, resume continues, abort reverts.
  for (const action of ['pause', 'resume', 'abort', 'promote'] as const) {
    app.post(`/v1/deploys/:id/${action}`, async (req) => {
      const { id } = parse(z.object({ id: z.string().min(1) }), req.params, 'path');
      const deploy = await engine[action](id, who(req));
      return { deploy };
    });
  }

  // Live progress: long poll for events after `after` (a seq); returns at once when there are some.
  app.get('/v1/deploys/:id/events', async (req, reply) => {
    const { id } = parse(z.object({ id: z.string().min(1) }), req.params, 'path');
    const q = parse(pollQuery, req.query, 'query');
    await mustDeploy(store, id);
    let events = await store.listDeployEvents(id, q.after);
    if (events.length === 0 && q.wait > 0) {
      await hub.waitSignal(`deploy:${id}`, q.wait * 1000, closeSignal(reply));
      events = await store.listDeployEvents(id, q.after);
    }
    return { deploy: await mustDeploy(store, id), events };
  });

  app.get('/v1/instances', async () => ({ instances: (await statusView(store, hub)).instances }));

  app.get('/v1/events', async (req) => {
    const q = parse(
      z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100), kind: z.string().optional() }),
      req.query,
      'query',
    );
    return { events: await store.listEvents({ limit: q.limit, ...(q.kind ? { kind: q.kind } : {}) }) };
  });

  // ---- hosts and join tokens ------------------------------------------------------------------------

  app.get('/v1/hosts', async () => ({
    hosts: (await store.listHosts()).map(({ key: _key, ...h }) => ({
      ...h,
      signed: _key !== null,
      up: (hub.agents.get(h.id)?.at ?? 0) >= Date.now() - fleet.hostDownAfterMs,
    })),
  }));

  app.post('/v1/hosts/:name/revoke', async (req) => {
    const { name } = parse(nameParams, req.params, 'path');
    const host = (await store.listHosts()).find((h) => h.id === name || h.name === name);
    if (!host) throw new NinesError('NINES_E_HOST_NOT_FOUND', `no host named or with id "${name}"`);
    const revoked = await store.revokeHost(host.id, Date.now());
    auth.forgetHost(host.id); // cut off from the next request on
    if (revoked) {
      await store.appendEvent({
        at: Date.now(),
        kind: 'host.revoked',
        subject: host.id,
        message: `host ${host.name} revoked by ${who(req)}`,
        data: null,
      });
    }
    return { host: { id: host.id, name: host.name, revoked: true } };
  });

  app.post('/v1/join-tokens', async (req, reply) => {
    const body = parse(
      z.strictObject({ ttl: duration.default(3_600_000), name: z.string().min(1).max(100).default('join') }),
      req.body ?? {},
      'join token request',
    );
    const expiresAt = body.ttl === 0 ? null : Date.now() + body.ttl;
    const { token, record } = await createToken(store, 'join', body.name, expiresAt);
    await store.appendEvent({
      at: Date.now(),
      kind: 'token.created',
      subject: record.id,
      message: `join token ${record.id} (${record.name}) created by ${who(req)}, expires ${expiresAt ? new Date(expiresAt).toISOString() : 'never'}`,
      data: null,
    });
    return reply.status(201).send({ id: record.id, token, expiresAt });
  });

  app.get('/v1/join-tokens', async () => ({
    tokens: (await store.listTokens()).filter((t) => t.role === 'join').map(({ hash: _hash, ...t }) => t),
  }));

  app.delete('/v1/join-tokens/:id', async (req) => {
    const { id } = parse(z.object({ id: z.string().min(1) }), req.params, 'path');
    const t = (await store.listTokens()).find((x) => x.id === id && x.role === 'join');
    if (!t) throw new NinesError('NINES_E_NOT_FOUND', `no join token ${id}`);
    await store.revokeToken(id, Date.now());
    return { id, revoked: true };
  });

  // ---- nodes: the agent and proxy protocol (src/core/protocol.ts) -------------------------------------

  // With a token (join, node or admin): a new key for the host, returned once. Signed by the host
  // itself: its facts (zone, labels, address) are refreshed and its key stays.
  app.post('/v1/agent/register', async (req) => {
    const body = parse(agentRegisterSchema, req.body, 'agent registration');
    const hostId = req.principal?.hostId;
    if (hostId) {
      const host = await fleet.refresh(hostId, body);
      auth.forgetHost(host.id);
      // An agent registers at every start: `hosts patch --restart-agent` waits for this.
      hub.agentStarts.set(host.id, Date.now());
      return { hostId: host.id };
    }
    const host = await fleet.register(body);
    auth.forgetHost(host.id); // a new key
    hub.agentStarts.set(host.id, Date.now());
    return { hostId: host.id, key: host.key };
  });

  const desiredReplies = new DesiredReplies({ fleet, artifacts, secrets: deps.secrets, leadership });
  app.get('/v1/agent/desired', async (req, reply) => {
    const q = parse(pollQuery.extend({ hostId: z.string().min(1) }), req.query, 'query');
    ownHost(req, q.hostId);
    if (!(await fleet.hostExists(q.hostId)))
      throw new NinesError('NINES_E_HOST_NOT_FOUND', `unknown host ${q.hostId}`);
    if (q.wait > 0) {
      // Listening before reading the generation: a bump between the read and the wait still wakes it.
      const newer = new AbortController();
      const woken = hub.waitSignal(
        `host:${q.hostId}`,
        q.wait * 1000,
        AbortSignal.any([closeSignal(reply), newer.signal]),
      );
      if ((await fleet.hostGeneration(q.hostId)) > q.after) newer.abort();
      await woken;
    }
    // Serialised once per host and generation (desired-replies.ts), fencing token included.
    return reply
      .type('application/json; charset=utf-8')
      .send(await desiredReplies.reply(q.hostId, req.principal?.hostId));
  });

  app.post('/v1/agent/report', async (req, reply) => {
    const report = parse(agentReportSchema, req.body, 'agent report');
    ownHost(req, report.hostId);
    await fleet.agentReport(report);
    return reply.status(204).send();
  });

  // ---- logs: relayed from the agents on demand (src/controller/logs.ts) ------------------------------

  const logs = new LogRelay(hub);

  app.get('/v1/services/:name/logs', async (req, reply) => {
    const { name } = parse(nameParams, req.params, 'path');
    const q = parse(logsQuery, req.query, 'query');
    await mustService(store, name);
    const all = await store.listInstances({ service: name });
    const instances = q.instance ? all.filter((i) => i.id === q.instance) : all;
    if (q.instance && instances.length === 0) {
      throw new NinesError('NINES_E_INSTANCE_NOT_FOUND', `${name} has no instance ${q.instance}`);
    }
    const out = new PassThrough();
    const prefix = new LinePrefixer((t) => out.write(t));
    const waiting = new Map<string, string>(); // request id → instance id
    const finish = (requestId: string, instanceId: string) => {
      if (!waiting.delete(requestId)) return;
      prefix.flush(instanceId);
      if (waiting.size === 0 && !q.follow) out.end();
    };
    for (const inst of instances) {
      const id = logs.request(inst.hostId, inst.id, q.tail, q.follow, {
        chunk(instanceId, c) {
          if (c.data) prefix.push(instanceId, c.data);
          if (c.error) out.write(`[${instanceId}] (${c.error})\n`);
          if (c.done) finish(id, instanceId);
        },
      });
      waiting.set(id, inst.id);
    }
    if (instances.length === 0 && !q.follow) out.end();
    // A host that is down never answers: without --follow the reader gets what the others sent.
    const timer = q.follow
      ? undefined
      : setTimeout(() => {
          for (const [id, instanceId] of waiting) {
            out.write(`[${instanceId}] (no answer from its host within ${LOG_ANSWER_S} s)\n`);
            logs.close(id);
            finish(id, instanceId);
          }
        }, LOG_ANSWER_S * 1000);
    reply.raw.once('close', () => {
      if (timer) clearTimeout(timer);
      for (const id of waiting.keys()) logs.close(id);
      waiting.clear();
    });
    return reply.type('text/plain; charset=utf-8').header('cache-control', 'no-store').send(out);
  });

  // The agent's side: the log requests open for its host (long poll until the set differs from `have`).
  app.get('/v1/agent/logs', async (req, reply) => {
    const q = parse(agentLogsQuery, req.query, 'query');
    ownHost(req, q.hostId);
    const same = () => sameIds(logs.forHost(q.hostId), q.have);
    if (same() && q.wait > 0) await hub.waitSignal(logTopic(q.hostId), q.wait * 1000, closeSignal(reply));
    return { requests: logs.forHost(q.hostId) };
  });

  app.post('/v1/agent/logs/:id', async (req): Promise<LogChunkAnswer> => {
    const { id } = parse(z.object({ id: z.string().min(1) }), req.params, 'path');
    const { hostId } = parse(z.object({ hostId: z.string().min(1) }), req.query, 'query');
    ownHost(req, hostId);
    return { open: logs.deliver(id, hostId, parse(logChunkSchema, req.body, 'log chunk')) };
  });

  app.get('/v1/proxy/snapshot', async (req, reply) => {
    const q = parse(pollQuery, req.query, 'query');
    if ((await fleet.routingVersion()) <= q.after && q.wait > 0) {
      await hub.waitSignal('routing', q.wait * 1000, closeSignal(reply));
    }
    return fleet.snapshot();
  });

  app.post('/v1/proxy/report', async (req, reply) => {
    const report = parse(proxyReportSchema, req.body, 'proxy report');
    if (!mayReportAs(req.principal, report.proxyId)) {
      throw new NinesError(
        'NINES_E_FORBIDDEN',
        `proxy ${req.principal?.name} may not report as ${report.proxyId}`,
      );
    }
    fleet.proxyReport(report);
    return reply.status(204).send();
  });

  return app;
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

async function mustService(store: Store, name: string) {
  const svc = await store.getService(name);
  if (!svc) throw new NinesError('NINES_E_SERVICE_NOT_FOUND', `no service named "${name}"`);
  return svc;
}

async function mustDeploy(store: Store, id: string) {
  const d = await store.getDeploy(id);
  if (!d) throw new NinesError('NINES_E_DEPLOY_NOT_FOUND', `no deploy ${id}`);
  return d;
}

/** Aborts when the client goes away, so an abandoned long poll does not hold its waiter. */
function closeSignal(reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  // The response's 'close' fires once per request (done or client gone); the socket's would pile up
  // listeners on a keep-alive connection that long-polls forever.
  reply.raw.once('close', () => ac.abort());
  return ac.signal;
}

function fastifyCode(status: number | undefined, code: string | undefined): ErrorCode {
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return 'NINES_E_UNSUPPORTED_MEDIA_TYPE';
  if (status === 413) return 'NINES_E_PAYLOAD_TOO_LARGE';
  if (status === 415) return 'NINES_E_UNSUPPORTED_MEDIA_TYPE';
  if (status === 405) return 'NINES_E_METHOD_NOT_ALLOWED';
  if (status === 404) return 'NINES_E_NOT_FOUND';
  if (status !== undefined && status >= 400 && status < 500) return 'NINES_E_BAD_REQUEST';
  return 'NINES_E_INTERNAL';
}
