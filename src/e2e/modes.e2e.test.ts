import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { request } from 'undici';
import { cleanup, cli, fixture, serviceYaml, startUp, tempDir, type Up } from './harness.js';

/**
 * Service modes end to end (seed 001's read-only switch): `nines mode` on the controller reaches the
 * proxy, which refuses writes with 503 + Retry-After while reads pass, serves a maintenance page, and
 * goes back to live — through a real `nines up`.
 */
describe('service modes through the controller and the proxy', () => {
  const root = tempDir();
  const dataDir = join(root, 'data');
  let up: Up | undefined;
  after(() => cleanup(root, up));

  async function hit(method: 'GET' | 'POST', headers: Record<string, string> = {}) {
    const r = await request(`${up!.info.proxyUrl}/`, {
      method,
      headers,
      ...(method === 'POST' ? { body: 'x' } : {}),
    });
    return { status: r.statusCode, retryAfter: r.headers['retry-after'], body: await r.body.text() };
  }

  test('read-only lets 100 GETs through and refuses 100 POSTs; maintenance; back to live', async (t) => {
    up = await startUp({ dataDir, config: serviceYaml({ source: fixture('graceful'), instances: 2 }) });
    assert.equal((await hit('POST')).status, 200, 'writes pass while live');

    const ro = await cli(dataDir, 'mode', 'web', 'read-only', '--retry-after', '7');
    assert.equal(ro.code, 0, ro.stderr);
    const applied = /applied by 1 proxy in (\d+) ms/.exec(ro.stdout);
    assert.ok(applied, ro.stdout);
    t.diagnostic(`read-only applied by the proxy ${applied[1]} ms after the controller recorded it`);
    const gets = await Promise.all(Array.from({ length: 100 }, () => hit('GET')));
    assert.deepEqual(
      gets.map((g) => g.status),
      Array(100).fill(200),
    );
    const posts = await Promise.all(Array.from({ length: 100 }, () => hit('POST')));
    for (const p of posts) {
      assert.equal(p.status, 503);
      assert.equal(p.retryAfter, '7');
      assert.equal(JSON.parse(p.body).error.code, 'NINES_E_READ_ONLY');
    }
    assert.match((await cli(dataDir, 'status')).stdout, /mode READ-ONLY/);
    assert.match((await cli(dataDir, 'mode', 'web')).stdout, /^web is read-only$/m);

    assert.equal(
      (await cli(dataDir, 'mode', 'web', 'maintenance', '--message', 'Back at 10:00 UTC')).code,
      0,
    );
    const page = await hit('GET', { accept: 'text/html' });
    assert.equal(page.status, 503);
    assert.match(page.body, /Back at 10:00 UTC/);
    const json = await hit('GET', { accept: 'application/json' });
    assert.equal(JSON.parse(json.body).error.code, 'NINES_E_MAINTENANCE');

    assert.equal((await cli(dataDir, 'mode', 'web', 'live')).code, 0);
    assert.equal((await hit('POST')).status, 200);
    assert.equal((await hit('GET')).status, 200);
  });

  test('a bad mode is refused with its code and changes nothing', async () => {
    const r = await cli(dataDir, 'mode', 'web', 'closed');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /NINES_E_VALIDATION/);
    assert.match((await cli(dataDir, 'mode', 'web')).stdout, /^web is live$/m);
  });
});
