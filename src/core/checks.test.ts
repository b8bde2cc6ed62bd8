import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkSchema, httpCheckSchema, jsonPathGet, judgeHttp } from './checks.js';
import { parseConfig } from './config.js';

test('checks: nines.yaml checks parse with defaults; bad ones name the field', () => {
  const cfg = parseConfig(`
services: {}
checks:
  api:
    type: http
    url: https://api.example.com/healthz
    json: { path: $.status, equals: ok }
    maxResponseTime: 2s
  db:
    type: tcp
    host: 10.0.0.5
    port: 5432
    quorum: 2
  stripe-dns:
    type: dns
    query: api.stripe.com
    dependency: true
`);
  const api = cfg.checks.api;
  assert.equal(api?.type, 'http');
  if (api?.type !== 'http') return;
  assert.equal(api.interval, 30_000);
  assert.equal(api.timeout, 5_000);
  assert.equal(api.maxResponseTime, 2000);
  assert.equal(api.certDaysLeft, 14);
  assert.equal(cfg.checks['stripe-dns']?.dependency, true);
  assert.throws(
    () => parseConfig('services: {}\nchecks:\n  Bad_Name:\n    type: tcp\n    host: x\n    port: 1\n'),
    (e: Error & { code?: string }) =>
      e.code === 'NINES_E_CONFIG_INVALID' && /checks\.Bad_Name/.test(e.message),
  );
  assert.throws(
    () => parseConfig('services: {}\nchecks:\n  x:\n    type: http\n    url: ftp://example.com\n'),
    (e: Error & { code?: string }) => e.code === 'NINES_E_CONFIG_INVALID' && /checks\.x\.url/.test(e.message),
  );
  assert.equal(checkSchema.safeParse({ type: 'smtp', host: 'x' }).success, false);
});

test('checks: JSON path', () => {
  const doc = { a: { b: [{ c: 'ok' }, { 'd-e': 2 }] }, 'x y': true };
  assert.equal(jsonPathGet(doc, '$.a.b[0].c'), 'ok');
  assert.equal(jsonPathGet(doc, '$.a.b[1]["d-e"]'), 2);
  assert.equal(jsonPathGet(doc, "$['x y']"), true);
  assert.deepEqual(jsonPathGet(doc, '$'), doc);
  assert.equal(jsonPathGet(doc, '$.a.b[2].c'), undefined);
  assert.equal(jsonPathGet(doc, '$.a.zz'), undefined);
  assert.equal(jsonPathGet(doc, 'a.b'), undefined);
  assert.equal(jsonPathGet(doc, '$.a..b'), undefined);
});

test('checks: HTTP judgement — status, body, JSON path, response time, certificate', () => {
  const spec = httpCheckSchema.parse({
    type: 'http',
    url: 'https://x.example/h',
    bodyContains: 'healthy',
    json: { path: '$.db', equals: 'up' },
    maxResponseTime: 500,
  });
  const good = { status: 200, body: '{"db":"up","s":"healthy"}', latencyMs: 30, certDaysLeft: 60 };
  assert.deepEqual(judgeHttp(spec, good), { ok: true, message: 'status 200' });
  assert.match(judgeHttp(spec, { ...good, status: 503 }).message, /status 503, expected 2xx\/3xx/);
  assert.match(judgeHttp(spec, { ...good, body: '{"db":"up"}' }).message, /does not contain "healthy"/);
  assert.match(judgeHttp(spec, { ...good, body: '{"db":"down","s":"healthy"}' }).message, /\$\.db is "down"/);
  assert.match(judgeHttp(spec, { ...good, body: 'healthy' }).message, /not JSON/);
  assert.match(judgeHttp(spec, { ...good, latencyMs: 900 }).message, /900 ms, limit 500 ms/);
  assert.match(judgeHttp(spec, { ...good, certDaysLeft: 3.5 }).message, /expires in 3 days \(limit 14\)/);
  const only404 = httpCheckSchema.parse({ type: 'http', url: 'http://x/', status: [404] });
  assert.equal(judgeHttp(only404, { status: 404, body: '', latencyMs: 1 }).ok, true);
  assert.equal(judgeHttp(only404, { status: 200, body: '', latencyMs: 1 }).ok, false);
});
