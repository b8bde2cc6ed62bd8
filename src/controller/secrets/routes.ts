import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
// parseInput's issues carry paths and messages only: a secret's value is never echoed back.
import { parseInput as parse } from '../../core/config.js';
import { NinesError } from '../../core/errors.js';
import type { Store } from '../store/types.js';
import type { WebApp } from '../web.js';
import type { Secrets } from './index.js';

/**
 * The secrets API. Setting answers with the name and the new version, never the value; listing shows
 * names, kinds and versions (and the values of plain variables only). Admin tokens set and remove;
 * read tokens list.
 *
 *   GET    /v1/services/:name/secrets[?env=E]          → { environment, secrets: SecretView[] }
 *   PUT    /v1/services/:name/secrets/:key             { value, kind?: secret|var, env? } → SecretView
 *   DELETE /v1/services/:name/secrets/:key[?env=E]     → { removed: true }
 *   POST   /v1/secrets/rotate-key                      → { keyId, resealed }
 */
export function registerSecretRoutes(app: WebApp, deps: { store: Store; secrets: Secrets }): void {
  const { store, secrets } = deps;

  const params = z.object({ name: z.string().min(1), key: z.string().min(1) });
  const envQuery = z.object({ env: z.string().min(1).optional() });

  app.get('/v1/services/:name/secrets', async (req) => {
    const { name } = parse(z.object({ name: z.string().min(1) }), req.params, 'path');
    const { env } = parse(envQuery, req.query, 'query');
    await mustService(store, name);
    const environment = env ?? secrets.environment;
    return { environment, secrets: await secrets.list(name, environment) };
  });

  app.put('/v1/services/:name/secrets/:key', async (req, reply) => {
    const { name, key } = parse(params, req.params, 'path');
    const body = parse(
      z.strictObject({
        value: z.string(),
        kind: z.enum(['secret', 'var']).default('secret'),
        env: z.string().min(1).optional(),
      }),
      req.body,
      'secret',
    );
    await mustService(store, name);
    const v = await secrets.set({
      service: name,
      name: key,
      kind: body.kind,
      value: body.value,
      by: who(req),
      ...(body.env ? { environment: body.env } : {}),
    });
    return reply.status(v.version === 1 ? 201 : 200).send({ secret: v });
  });

  app.delete('/v1/services/:name/secrets/:key', async (req) => {
    const { name, key } = parse(params, req.params, 'path');
    const { env } = parse(envQuery, req.query, 'query');
    await mustService(store, name);
    await secrets.remove(name, env, key, who(req));
    return { service: name, name: key, environment: env ?? secrets.environment, removed: true };
  });

  app.post('/v1/secrets/rotate-key', async (req) => secrets.rotateKey(who(req)));
}

function who(req: FastifyRequest): string {
  return req.principal ? `${req.principal.name} (${req.principal.role})` : 'anonymous';
}

async function mustService(store: Store, name: string): Promise<void> {
  if (!(await store.getService(name))) {
    throw new NinesError('NINES_E_SERVICE_NOT_FOUND', `no service named "${name}"`);
  }
}
