import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { NinesError } from '../core/errors.js';
import { createToken, type Principal } from './auth.js';
import type { Hub } from './hub.js';
import type { Store, TokenRecord } from './store/types.js';
import type { WebApp } from './web.js';

/**
 * Proxies' own credentials. A proxy joins like an agent, with a join token (`nines proxy --join-token`):
 * `POST /v1/proxy/register {name}` answers, once, a bearer token of role `proxy` named after it, which the
 * proxy keeps in `<data-dir>/proxy/credentials.json` (0600). That token may only call `/v1/proxy/*`, and
 * only report as its own proxy (its name, or `<name>-w<n>` for the workers of `--workers`). Registering a
 * name again (a lost credentials file) replaces its token; `nines proxies revoke NAME` cuts it off at once.
 * Only the token's sha256 is stored, like every token. The shared `node` token still works (the
 * embedded platform, and proxies started before this existed).
 *
 *   POST /v1/proxy/register            { name }  (join token)  → { name, token }
 *   GET  /v1/proxies                                            → { proxies: ProxyCredentialView[] }
 *   POST /v1/proxies/:name/revoke                               → { name, revoked }
 */

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

export interface ProxyCredentialView {
  name: string;
  tokenId: string;
  createdAt: number;
  revokedAt: number | null;
  /** Reported within the last few seconds (any of its workers). */
  up: boolean;
  appliedVersion: number | null;
}

/** A proxy token reports only as its own proxy (or one of its cluster workers). */
export function mayReportAs(p: Principal | null, proxyId: string): boolean {
  if (p?.role !== 'proxy') return true;
  return (
    proxyId === p.name ||
    (proxyId.startsWith(`${p.name}-w`) && /^\d+$/.test(proxyId.slice(p.name.length + 2)))
  );
}

export function registerProxyRoutes(app: WebApp, deps: { store: Store; hub: Hub }): void {
  const { store, hub } = deps;

  const proxyTokens = async (): Promise<TokenRecord[]> =>
    (await store.listTokens()).filter((t) => t.role === 'proxy');

  app.post('/v1/proxy/register', async (req, reply) => {
    const r = z.strictObject({ name: z.string().regex(NAME_RE) }).safeParse(req.body);
    if (!r.success) {
      throw new NinesError('NINES_E_VALIDATION', 'invalid proxy registration: name: letters, digits, . _ -');
    }
    const { name } = r.data;
    const now = Date.now();
    // Whoever holds a join token may (re)introduce a proxy: the old credential of that name stops working.
    const replaced: string[] = [];
    for (const t of await proxyTokens()) {
      if (t.name === name && t.revokedAt === null && (await store.revokeToken(t.id, now)))
        replaced.push(t.id);
    }
    const { token, record } = await createToken(store, 'proxy', name);
    await store.appendEvent({
      at: now,
      kind: replaced.length ? 'proxy.rekeyed' : 'proxy.registered',
      subject: name,
      message: `proxy ${name} ${replaced.length ? 'registered again and got a new credential' : 'joined'} (by ${who(req)})`,
      data: { tokenId: record.id, replaced },
    });
    req.log.info({ proxy: name }, 'proxy registered');
    return reply.status(201).send({ name, token });
  });

  app.get('/v1/proxies', async () => {
    const live = hub.liveProxies();
    const proxies: ProxyCredentialView[] = (await proxyTokens()).map((t) => {
      const mine = live.filter((p) => mayReportAs({ role: 'proxy', name: t.name }, p.proxyId));
      return {
        name: t.name,
        tokenId: t.id,
        createdAt: t.createdAt,
        revokedAt: t.revokedAt,
        up: t.revokedAt === null && mine.length > 0,
        appliedVersion: mine.length ? Math.min(...mine.map((p) => p.appliedVersion)) : null,
      };
    });
    return { proxies };
  });

  app.post('/v1/proxies/:name/revoke', async (req) => {
    const { name } = z.object({ name: z.string().min(1) }).parse(req.params);
    const mine = (await proxyTokens()).filter((t) => t.name === name);
    if (mine.length === 0) throw new NinesError('NINES_E_NOT_FOUND', `no proxy named "${name}"`);
    const now = Date.now();
    for (const t of mine) if (t.revokedAt === null) await store.revokeToken(t.id, now);
    // Deploys stop waiting for it at once (it can no longer report).
    for (const id of [...hub.proxies.keys()]) {
      if (mayReportAs({ role: 'proxy', name }, id)) hub.proxies.delete(id);
    }
    await store.appendEvent({
      at: now,
      kind: 'proxy.revoked',
      subject: name,
      message: `proxy ${name} revoked by ${who(req)}`,
      data: null,
    });
    return { name, revoked: true };
  });
}

function who(req: FastifyRequest): string {
  return req.principal ? `${req.principal.name} (${req.principal.role})` : 'anonymous';
}
