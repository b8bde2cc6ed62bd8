import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { request } from 'undici';
import { serviceSchema } from '../core/config.js';
import { createToken } from './auth.js';
import { Controller } from './controller.js';
import { openSqliteStore } from './store/sqlite.js';
import type { HostRecord, Store } from './store/types.js';

/** Host and zone operations through the API of a real controller: states, budgets, bad input. */
describe('fleet API', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nines-fleet-api-'));
  let store: Store;
  let controller: Controller;
  let admin = '';
  let reader = '';

  const host = (id: string, zone: string, slots: number): HostRecord => ({
    id,
    name: id,
    zone,
    labels: { slots: String(slots) },
    address: '127.0.0.1',
    registeredAt: Date.now(),
    lastSeenAt: Date.now() + 3_600_000, // stays "up" for the test without an agent
    key: null,
    revokedAt: null,
  });

  before(async () => {
    store = await openSqliteStore({ file: ':memory:' });
    controller = new Controller({
      store,
      dataDir: dir,
      logger: pino({ level: 'silent' }),
      host: '127.0.0.1',
      port: 0,
    });
    admin = (await controller.bootstrapTokens()).admin;
    reader = (await createToken(store, 'read', 'viewer')).token;
    await controller.start();
    // a1 (1 slot, full), a2 (1 slot, full), b1 (2 slots, 1 used): web has 3 instances.
    await store.upsertHost(host('a1', 'a', 1));
    await store.upsertHost(host('a2', 'a', 1));
    await store.upsertHost(host('b1', 'b', 2));
    await store.upsertService('web', serviceSchema.parse({ command: 'node s.js', instances: 3 }));
    for (const [id, hostId] of [
      ['web-1', 'a1'],
      ['web-2', 'a2'],
      ['web-3', 'b1'],
    ] as const) {
      await store.insertInstance({
        id,
        service: 'web',
        releaseVersion: 'v1',
        hostId,
        desired: 'running',
        route: 'ready',
        deployId: null,
        observed: null,
        createdAt: Date.now(),
        updatedAt: Date.now(),
      });
    }
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
  const stateOf = async (name: string) =>
    (await call('GET', '/v1/fleet/hosts')).body.hosts.find((h: { name: string }) => h.name === name)?.state;

  test('hosts list with their scheduling state, slots and instance counts', async () => {
    const r = await call('GET', '/v1/fleet/hosts', { token: reader });
    assert.equal(r.status, 200);
    assert.deepEqual(
      r.body.hosts.map((h: { name: string; state: string; slots: number; instances: number }) => [
        h.name,
        h.state,
        h.slots,
        h.instances,
      ]),
      [
        ['a1', 'ready', 1, 1],
        ['a2', 'ready', 1, 1],
        ['b1', 'ready', 2, 1],
      ],
    );
  });

  test('cordon and uncordon: admin only, unknown host 404', async () => {
    assert.equal((await call('POST', '/v1/hosts/a1/cordon', { token: reader })).status, 403);
    assert.equal(await stateOf('a1'), 'ready', 'a refused request changes nothing');
    const r = await call('POST', '/v1/hosts/a1/cordon');
    assert.equal(r.status, 200);
    assert.equal(await stateOf('a1'), 'cordoned');
    assert.equal((await call('POST', '/v1/hosts/a1/uncordon')).status, 200);
    assert.equal(await stateOf('a1'), 'ready');
    const nf = await call('POST', '/v1/hosts/nope/cordon');
    assert.equal(nf.status, 404);
    assert.equal(nf.body.error.code, 'NINES_E_HOST_NOT_FOUND');
  });

  test('a drain that would break the budget is refused and changes nothing', async () => {
    // Draining b1 leaves a1 and a2, both full: web-3 has nowhere to go, and minAvailable is 3.
    const r = await call('POST', '/v1/hosts/b1/drain');
    assert.equal(r.status, 409);
    assert.equal(r.body.error.code, 'NINES_E_DISRUPTION_BUDGET');
    assert.match(
      r.body.error.message,
      /web: 1 instance\(s\) have nowhere to go .*2 full.*below minAvailable 3/,
    );
    assert.equal(await stateOf('b1'), 'ready');
  });

  test('a drain with room elsewhere starts; the host is draining', async () => {
    const r = await call('POST', '/v1/hosts/a1/drain', { json: { wait: 0 } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(await stateOf('a1'), 'draining');
    assert.equal((await call('POST', '/v1/hosts/a1/uncordon')).status, 200);
    const bad = await call('POST', '/v1/hosts/a1/drain', { json: { wait: -1 } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'NINES_E_VALIDATION');
  });

  test('N+1 capacity names the zone that cannot be carried', async () => {
    const r = await call('GET', '/v1/capacity', { token: reader });
    assert.equal(r.status, 200);
    const a = r.body.zones.find((z: { zone: string }) => z.zone === 'a');
    const b = r.body.zones.find((z: { zone: string }) => z.zone === 'b');
    assert.equal(a.survivable, false, 'b1 has 1 free slot for a’s 2 instances');
    assert.deepEqual(
      a.shortfall.map((s: { service: string; missing: number }) => [s.service, s.missing]),
      [['web', 1]],
    );
    assert.equal(b.survivable, false, 'a1 and a2 are full');
    assert.equal(r.body.ok, false);
  });

  test('zones: evacuate marks its hosts draining until restored; unknown zone 404', async () => {
    const nf = await call('POST', '/v1/zones/zz/evacuate');
    assert.equal(nf.status, 404);
    assert.equal(nf.body.error.code, 'NINES_E_ZONE_NOT_FOUND');
    assert.equal((await call('POST', '/v1/zones/b/evacuate')).status, 200);
    assert.equal(await stateOf('b1'), 'draining');
    const zones = (await call('GET', '/v1/zones', { token: reader })).body.zones;
    assert.deepEqual(
      zones.map((z: { zone: string; evacuated: boolean }) => [z.zone, z.evacuated]),
      [
        ['a', false],
        ['b', true],
      ],
    );
    assert.equal((await call('POST', '/v1/zones/b/restore')).status, 200);
    assert.equal(await stateOf('b1'), 'ready');
  });

  test('a service spec with instances outside scaling min/max is refused and changes nothing', async () => {
    const r = await call('PUT', '/v1/services/web', {
      json: { command: 'node s.js', instances: 1, scaling: { min: 2, max: 4 } },
    });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'NINES_E_VALIDATION');
    assert.match(
      r.body.error.message,
      /instances \(1\) must lie within scaling\.min \(2\) and scaling\.max \(4\)/,
    );
    assert.equal((await store.getService('web'))?.spec.instances, 3);
  });

  test('patch: bad input refused with its code, nothing started', async () => {
    const missing = await call('POST', '/v1/hosts/patch', { json: { maxUnavailable: 1 } });
    assert.equal(missing.status, 400);
    assert.equal(missing.body.error.code, 'NINES_E_VALIDATION');
    const zero = await call('POST', '/v1/hosts/patch', { json: { command: 'true', maxUnavailable: 0 } });
    assert.equal(zero.status, 400);
    const zone = await call('POST', '/v1/hosts/patch', { json: { command: 'true', zone: 'zz' } });
    assert.equal(zone.status, 404);
    assert.equal(zone.body.error.code, 'NINES_E_ZONE_NOT_FOUND');
    const nf = await call('GET', '/v1/patches/patch-nope', { token: reader });
    assert.equal(nf.status, 404);
    assert.equal(nf.body.error.code, 'NINES_E_PATCH_NOT_FOUND');
    assert.equal(
      (await call('POST', '/v1/hosts/patch', { token: reader, json: { command: 'true' } })).status,
      403,
    );
  });
});
