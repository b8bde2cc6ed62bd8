import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { alertingConfigSchema, checkAlertingRefs, span } from '../core/alerting-config.js';
import { parseInput as parse, zodIssues } from '../core/config.js';
import { NinesError } from '../core/errors.js';
import { verifyAckToken } from './alerting/channels/ack.js';
import { htmlEscape } from './alerting/channels/email.js';
import { nextHandoff, onCallAt } from './alerting/escalation.js';
import { parseMatcher } from './alerting/grouping.js';
import type { AlertRuntime } from './alerting/runtime.js';
import type { AlertStore } from './alerting/store.js';
import type { buildApi } from './api.js';

export interface AlertsApiDeps {
  runtime: AlertRuntime;
  alerts: AlertStore;
  ackSecret: () => string;
  now?: () => number;
}

/** The signed acknowledge link is its own credential: no bearer token (people open it from a phone). */
export function isAlertAckPath(method: string, url: string): boolean {
  return (method === 'GET' || method === 'POST') && (url.split('?')[0] ?? '') === '/v1/alerts/ack';
}

function who(req: FastifyRequest): string {
  return req.principal ? `${req.principal.name} (${req.principal.role})` : 'anonymous';
}

const keyParams = z.object({
  key: z.string().regex(/^[0-9a-f]{32}$/, 'an alert id is its 32-hex dedup key'),
});

const silenceBody = z.strictObject({
  matchers: z
    .array(
      z.string().refine((s) => {
        try {
          parseMatcher(s);
          return true;
        } catch {
          return false;
        }
      }, 'a matcher is name=value, name!=value, name=~regex or name!~regex (with a valid regex)'),
    )
    .min(1, 'a silence needs at least one matcher'),
  /** How long from now (`2h`), or an end time. */
  duration: span.optional(),
  endsAt: z.iso.datetime({ offset: true }).optional(),
  startsAt: z.iso.datetime({ offset: true }).optional(),
  comment: z.string().max(1024).optional(),
});

const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'content-security-policy':
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
};

function page(title: string, body: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${htmlEscape(title)}</title><style>body{font-family:system-ui,sans-serif;max-width:36em;margin:3em auto;padding:0 1em}button{font-size:1.2em;padding:.5em 1.5em}</style></head><body><h1>${htmlEscape(title)}</h1>${body}</body></html>`;
}

/**
 * Alerting routes: config (from `nines up`), alerts and acks, the signed ack link, silences, on-call,
 * channel tests. Registered on the controller's API app, behind its authentication except the ack link.
 */
export function registerAlertsApi(app: ReturnType<typeof buildApi>, deps: AlertsApiDeps): void {
  const { runtime, alerts } = deps;
  const now = deps.now ?? Date.now;

  // The ack confirm page posts an empty form; accept that content type and ignore the body.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, _body, done) =>
    done(null, {}),
  );

  app.put('/v1/alerting/config', async (req, reply) => {
    const r = alertingConfigSchema.superRefine((c, ctx) => checkAlertingRefs(c, ctx)).safeParse(req.body);
    if (!r.success) {
      const issues = zodIssues(r.error);
      throw new NinesError(
        'NINES_E_CONFIG_INVALID',
        `alerting config is invalid:\n${issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')}`,
        { issues },
      );
    }
    await alerts.putConfig(r.data, who(req), now());
    await runtime.refreshModel();
    return reply.status(204).send();
  });

  app.get('/v1/alerting/config', async () => {
    const c = await alerts.getConfig();
    return c ?? { config: alertingConfigSchema.parse({}), updatedAt: null, updatedBy: null };
  });

  app.get('/v1/alerts', async (req) => {
    const q = parse(z.object({ all: z.enum(['0', '1', 'true', 'false']).optional() }), req.query, 'query');
    const all = q.all === '1' || q.all === 'true';
    const list = await alerts.listAlerts(all ? {} : { states: ['pending', 'firing'] });
    return { alerts: list };
  });

  // The signed link: GET shows a confirm page (mail scanners and link previews fetch GETs; they must
  // not acknowledge), POST acknowledges.
  const verify = (req: FastifyRequest) => {
    const { token } = parse(z.object({ token: z.string().min(1).max(2048) }), req.query, 'query');
    const v = verifyAckToken(deps.ackSecret(), token, now());
    if (!v.ok) throw new NinesError(v.code, `acknowledge link: ${v.reason}`);
    return { token, dedupKey: v.dedupKey };
  };
  app.get('/v1/alerts/ack', async (req, reply) => {
    const { token, dedupKey } = verify(req);
    const a = await alerts.getAlert(dedupKey);
    if (!a) throw new NinesError('NINES_E_ALERT_NOT_FOUND', `no alert ${dedupKey}`);
    const state = a.acknowledged ? `acknowledged by ${a.acknowledgedBy ?? 'someone'}` : a.state;
    const form =
      a.state === 'firing' && !a.acknowledged
        ? `<form method="post" action="/v1/alerts/ack?token=${encodeURIComponent(token)}"><button type="submit">Acknowledge</button></form>`
        : '';
    return reply
      .headers(PAGE_HEADERS)
      .send(
        page(
          'Acknowledge alert',
          `<p><b>${htmlEscape(a.summary)}</b></p><p>Severity: ${htmlEscape(a.severity)} · state: ${htmlEscape(state)}</p>${form}`,
        ),
      );
  });
  app.post('/v1/alerts/ack', async (req, reply) => {
    const { dedupKey } = verify(req);
    const a = await runtime.acknowledge(dedupKey, 'signed link');
    if ((req.headers.accept ?? '').includes('application/json'))
      return { alert: await alerts.getAlert(a.dedupKey) };
    return reply
      .headers(PAGE_HEADERS)
      .send(page('Acknowledged', `<p>${htmlEscape(a.summary)}</p><p>Escalation stopped.</p>`));
  });

  app.get('/v1/alerts/:key', async (req) => {
    const { key } = parse(keyParams, req.params, 'path');
    const a = await alerts.getAlert(key);
    if (!a) throw new NinesError('NINES_E_ALERT_NOT_FOUND', `no alert ${key}`);
    const deliveries = await Promise.all(
      (await alerts.listDeliveries(key)).map(async (d) => ({
        ...d,
        attempts: (await alerts.listAttempts(d.key)).map((x) => ({
          delivery: Number(x.delivery),
          n: Number(x.n),
          startedAt: Number(x.started_at),
          durationMs: Number(x.duration_ms),
          status: x.status,
          error: x.error,
          retryInMs: x.retry_in_ms === null ? null : Number(x.retry_in_ms),
          controller: x.controller,
        })),
      })),
    );
    return { alert: a, events: await alerts.listEvents(key), deliveries };
  });

  app.post('/v1/alerts/:key/ack', async (req) => {
    const { key } = parse(keyParams, req.params, 'path');
    return { alert: await runtime.acknowledge(key, who(req)).then((a) => alerts.getAlert(a.dedupKey)) };
  });

  app.get('/v1/silences', async () => ({ silences: await alerts.listSilences(now()) }));

  app.post('/v1/silences', async (req, reply) => {
    const b = parse(silenceBody, req.body, 'silence');
    const t = now();
    const startsAt = b.startsAt ? Date.parse(b.startsAt) : t;
    const endsAt = b.endsAt
      ? Date.parse(b.endsAt)
      : b.duration !== undefined
        ? startsAt + b.duration
        : undefined;
    if (endsAt === undefined)
      throw new NinesError('NINES_E_VALIDATION', 'invalid silence: give duration (e.g. "2h") or endsAt');
    if (endsAt <= Math.max(t, startsAt))
      throw new NinesError(
        'NINES_E_VALIDATION',
        'invalid silence: it would end before it starts (or in the past)',
      );
    const silence = {
      id: `sil-${t.toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
      matchers: b.matchers.map(parseMatcher),
      startsAt,
      endsAt,
      createdBy: who(req),
      ...(b.comment ? { comment: b.comment } : {}),
    };
    await alerts.addSilence(silence, t);
    return reply.status(201).send({ silence });
  });

  app.delete('/v1/silences/:id', async (req) => {
    const { id } = parse(z.object({ id: z.string().min(1).max(200) }), req.params, 'path');
    if (!(await alerts.expireSilence(id, now())))
      throw new NinesError('NINES_E_SILENCE_NOT_FOUND', `no active silence ${id}`);
    return { expired: id };
  });

  app.get('/v1/oncall', async () => {
    const m = await runtime.refreshModel();
    const t = now();
    const schedules = [...m.schedules.values()].map((s) => {
      const handoffs = s.rotations.map((r) => nextHandoff(r, t)).filter((h) => Number.isFinite(h));
      const next = handoffs.length > 0 ? Math.min(...handoffs) : null;
      return {
        schedule: s.id,
        onCall: onCallAt(s, t) ?? null,
        nextHandoff: next,
        next: next === null ? null : (onCallAt(s, next) ?? null),
      };
    });
    const policies = [...m.policies.values()].map((p) => ({
      policy: p.id,
      repeat: p.repeat,
      levels: p.levels.map((l) => ({
        targets: l.targets.map((x) => `${x.kind}:${x.id}`),
        escalateAfterMs: l.escalateAfterMs,
      })),
    }));
    return { schedules, policies };
  });

  app.post('/v1/channels/:name/test', async (req) => {
    const { name } = parse(z.object({ name: z.string().min(1).max(63) }), req.params, 'path');
    const result = await runtime.testChannel(name, who(req));
    if (!result.ok)
      throw new NinesError('NINES_E_DELIVERY_FAILED', `channel ${name}: ${result.error ?? 'not accepted'}`, {
        result,
      });
    return { result };
  });
}
