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

/**
 * Scheduled drills on a real controller (the leader of its own SQLite store): schedules through the API,
 * the leader's decision, the drill run through the controller's own API, the result stored.
 */
describe('drill schedules', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nines-drill-schedules-'));
  let store: Store;
  let controller: Controller;
  let admin = '';

  before(async () => {
    store = await openSqliteStore({ file: ':memory:' });
    controller = new Controller({
      store,
      dataDir: dir,
      logger: pino({ level: 'silent' }),
      host: '127.0.0.1',
      port: 0,
      drillTickMs: 3_600_000,
    });
    ({ admin } = await controller.bootstrapTokens());
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
    if (o.json !== undefined) headers['content-type'] = 'application/json';
    const res = await request(`${controller.url}${path}`, {
      method: method as 'GET',
      headers,
      ...(o.json !== undefined ? { body: JSON.stringify(o.json) } : {}),
    });
    const text = await res.body.text();
    return { status: res.statusCode, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  }

  test('declared, listed, validated; writes are admin-only', async () => {
    const spec = { scenario: 'instance-kill', service: 'web', every: '1h', proxy: 'http://127.0.0.1:9' };
    const put = await call('PUT', '/v1/drill-schedules/hourly', { json: spec });
    assert.equal(put.status, 201, JSON.stringify(put.body));
    assert.equal((await call('PUT', '/v1/drill-schedules/hourly', { json: spec })).status, 200);
    const list = await call('GET', '/v1/drill-schedules');
    const [s] = list.body.schedules as Array<{ name: string; nextDueAt: number; createdAt: number }>;
    assert.equal(s?.name, 'hourly');
    assert.equal(s?.nextDueAt, (s?.createdAt ?? 0) + 3_600_000);

    const bad = await call('PUT', '/v1/drill-schedules/x', { json: { ...spec, every: undefined } });
    assert.equal(bad.status, 400);
    assert.match(JSON.stringify(bad.body), /NINES_E_VALIDATION.*give exactly one of every or cron/);
    const unknown = await call('PUT', '/v1/drill-schedules/x', { json: { ...spec, service: 'nope' } });
    assert.equal(unknown.status, 404);
    const badName = await call('PUT', '/v1/drill-schedules/Bad_Name', { json: spec });
    assert.equal(badName.status, 400);
    assert.equal(((await call('GET', '/v1/drill-schedules')).body.schedules as unknown[]).length, 1);
    assert.equal((await call('DELETE', '/v1/drill-schedules/nope')).status, 404);
  });

  test('the leader runs a due drill once through its own API and stores the result', async () => {
    // Not due yet: created just now, hourly.
    assert.equal(await controller.drillScheduler.tick(), undefined);
    // Last run two hours ago: due. The drill runs through the API with the controller's token; with no
    // instance running it is refused — and that is recorded as the scheduled drill's result.
    await controller.drillSchedules.markRun('hourly', Date.now() - 2 * 3_600_000, null);
    assert.equal(await controller.drillScheduler.tick(), 'hourly');
    assert.equal(await controller.drillScheduler.tick(), undefined, 'one at a time');
    await controller.drillScheduler.idle();
    const { drills } = (await call('GET', '/v1/drills?service=web')).body as {
      drills: Array<{ id: string; outcome: string; createdBy: string; result: Record<string, unknown> }>;
    };
    assert.equal(drills.length, 1);
    const d = drills[0]!;
    assert.equal(d.outcome, 'error');
    assert.equal(d.createdBy, 'schedule hourly');
    assert.deepEqual(d.result.error, {
      code: 'NINES_E_DRILL_REFUSED',
      message: 'web has no healthy routed instance to drill on',
    });
    const s = (
      (await call('GET', '/v1/drill-schedules')).body.schedules as Array<Record<string, unknown>>
    )[0]!;
    assert.equal(s.lastDrillId, d.id);
    assert.ok((s.lastRunAt as number) > Date.now() - 60_000);
    // Ran: not due again for an hour.
    assert.equal(await controller.drillScheduler.tick(), undefined);
    assert.equal((await call('DELETE', '/v1/drill-schedules/hourly')).status, 204);
  });
});
