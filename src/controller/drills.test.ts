import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { request } from 'undici';
import { Controller } from './controller.js';
import { openSqliteStore } from './store/sqlite.js';
import type { Store } from './store/types.js';

/** The controller's drill API on a real socket: faults, the agent channel, the controller-loss gate, results. */
describe('drill API', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nines-drills-'));
  let store: Store;
  let controller: Controller;
  let admin = '';
  let node = '';

  before(async () => {
    store = await openSqliteStore({ file: ':memory:' });
    controller = new Controller({
      store,
      dataDir: dir,
      logger: pino({ level: 'silent' }),
      host: '127.0.0.1',
      port: 0,
    });
    ({ admin, node } = await controller.bootstrapTokens());
    await controller.start();
    await call('PUT', '/v1/services/web', { json: { command: 'node server.js', instances: 1 } });
  });
  after(async () => {
    await controller.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function call(method: string, path: string, o: { token?: string; json?: unknown } = {}) {
    const headers: Record<string, string> = { authorization: `Bearer ${o.token ?? admin}` };
    let body: string | undefined;
    if (o.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(o.json);
    }
    const res = await request(`${controller.url}${path}`, { method: method as 'GET', headers, body });
    const text = await res.body.text();
    return { status: res.statusCode, body: text ? JSON.parse(text) : undefined };
  }

  test('a fault for a service nines does not manage, or with nothing to kill, is refused (409) and changes nothing', async () => {
    const events = (await store.listEvents()).length;
    const r = await call('POST', '/v1/drills/faults', {
      json: { kind: 'kill-instance', service: 'elsewhere' },
    });
    assert.equal(r.status, 409);
    assert.equal(r.body.error.code, 'NINES_E_DRILL_REFUSED');
    const none = await call('POST', '/v1/drills/faults', { json: { kind: 'kill-instance', service: 'web' } });
    assert.equal(none.status, 409);
    assert.match(none.body.error.message, /no running instance/);
    const named = await call('POST', '/v1/drills/faults', {
      json: { kind: 'kill-instance', service: 'web', instance: 'db-primary' },
    });
    assert.equal(named.status, 409);
    const host = await call('POST', '/v1/drills/faults', {
      json: { kind: 'host-loss', service: 'web', durationMs: 20_000 },
    });
    assert.equal(host.status, 409);
    assert.equal(host.body.error.code, 'NINES_E_DRILL_REFUSED');
    assert.equal((await store.listEvents()).length, events);
  });

  test('bad fault payloads are 400 with the field named', async () => {
    const r = await call('POST', '/v1/drills/faults', { json: { kind: 'rm-rf', service: 'web' } });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'NINES_E_VALIDATION');
    assert.match(r.body.error.message, /kind/);
    const short = await call('POST', '/v1/drills/faults', {
      json: { kind: 'host-loss', service: 'web', durationMs: 5 },
    });
    assert.equal(short.status, 400);
    assert.match(short.body.error.message, /durationMs/);
    const outage = await call('POST', '/v1/drills/controller-loss', { json: { durationMs: 10_000_000 } });
    assert.equal(outage.status, 400);
  });

  test('drills are admin-only; a read token may list them', async () => {
    const { createToken } = await import('./auth.js');
    const reader = (await createToken(store, 'read', 'viewer')).token;
    const r = await call('POST', '/v1/drills/controller-loss', { token: reader, json: { durationMs: 1000 } });
    assert.equal(r.status, 403);
    assert.equal((await call('GET', '/v1/drills', { token: reader })).status, 200);
    const n = await call('POST', '/v1/drills/faults', {
      token: node,
      json: { kind: 'kill-instance', service: 'web' },
    });
    assert.equal(n.status, 403);
  });

  test('results are stored, listed newest first, and fetched by id; unknown ids are 404', async () => {
    const base = { service: 'web', scenario: 'instance-kill', result: { sent: 10, failed: 0 } };
    const a = await call('POST', '/v1/drills', {
      json: { ...base, outcome: 'passed', startedAt: 1000, finishedAt: 2000 },
    });
    assert.equal(a.status, 201, JSON.stringify(a.body));
    assert.match(a.body.id, /^dr-/);
    assert.equal(a.body.createdBy, 'admin (admin)');
    const b = await call('POST', '/v1/drills', {
      json: { ...base, outcome: 'failed', startedAt: 3000, finishedAt: 4000 },
    });
    const list = await call('GET', '/v1/drills?service=web');
    assert.deepEqual(
      list.body.drills.map((d: { id: string }) => d.id),
      [b.body.id, a.body.id],
    );
    assert.deepEqual((await call('GET', `/v1/drills/${a.body.id}`)).body, a.body);
    const missing = await call('GET', '/v1/drills/dr-nope');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'NINES_E_DRILL_NOT_FOUND');
    const unknown = await call('POST', '/v1/drills', {
      json: { ...base, service: 'nope', outcome: 'passed', startedAt: 1, finishedAt: 2 },
    });
    assert.equal(unknown.status, 404);
    const bad = await call('POST', '/v1/drills', {
      json: { ...base, outcome: 'meh', startedAt: 1, finishedAt: 2 },
    });
    assert.equal(bad.status, 400);
  });

  test('controller-loss: agents and proxies get 503 for the duration, people do not; then all is back', async () => {
    const r = await call('POST', '/v1/drills/controller-loss', { json: { durationMs: 400 } });
    assert.equal(r.status, 200);
    assert.ok(r.body.until - r.body.from === 400);
    const snap = await call('GET', '/v1/proxy/snapshot', { token: node });
    assert.equal(snap.status, 503);
    assert.equal(snap.body.error.code, 'NINES_E_UNAVAILABLE');
    assert.equal((await call('GET', '/v1/status')).status, 200);
    await new Promise((res) => setTimeout(res, 450));
    assert.equal((await call('GET', '/v1/proxy/snapshot', { token: node })).status, 200);
  });

  test('the agent fault channel: an empty long poll waits, then answers', async () => {
    const t0 = Date.now();
    const r = await call('GET', '/v1/agent/faults?hostId=h-1&wait=0.3', { token: node });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { faults: [] });
    assert.ok(Date.now() - t0 >= 250, 'waited for a change');
    const done = await call('POST', '/v1/agent/faults/f-unknown?hostId=h-1', {
      token: node,
      json: { ok: true, message: 'x', at: 1 },
    });
    assert.equal(done.status, 204, 'a late answer to a withdrawn fault is accepted and ignored');
    const bad = await call('POST', '/v1/agent/faults/f-1?hostId=h-1', { token: node, json: { ok: 'yes' } });
    assert.equal(bad.status, 400);
  });
});
