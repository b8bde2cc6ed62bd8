import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { request } from 'undici';
import { ackToken } from './alerting/channels/ack.js';
import { createToken } from './auth.js';
import { Controller } from './controller.js';
import { openSqliteStore } from './store/sqlite.js';
import type { Store } from './store/types.js';

/** Alerting API: auth, bad input (clear code, right status, nothing changed), the signed ack link. */

describe('alerting API', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nines-alerts-api-'));
  let store: Store;
  let controller: Controller;
  let admin = '';
  let reader = '';

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
  });
  after(async () => {
    await controller.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function call(method: string, path: string, o: { token?: string; json?: unknown } = {}) {
    const headers: Record<string, string> = {};
    if (o.token) headers.authorization = `Bearer ${o.token}`;
    if (o.json !== undefined) headers['content-type'] = 'application/json';
    const res = await request(`${controller.url}${path}`, {
      method: method as 'GET',
      headers,
      ...(o.json === undefined ? {} : { body: JSON.stringify(o.json) }),
    });
    const text = await res.body.text();
    let json: { error?: { code: string; message: string } } & Record<string, unknown> = {};
    try {
      json = JSON.parse(text);
    } catch {}
    return { status: res.statusCode, json, text, headers: res.headers };
  }

  const good = {
    alerts: { host_down: { signal: 'host_up', condition: '== 0', for: '1m' } },
    channels: { hook: { kind: 'webhook', url: 'http://127.0.0.1:9/hook' } },
    alerting: { notify: ['hook'] },
  };

  test('every alerting route needs a token; a reader may look but not change', async () => {
    for (const [m, p] of [
      ['GET', '/v1/alerts'],
      ['GET', '/v1/silences'],
      ['GET', '/v1/oncall'],
      ['PUT', '/v1/alerting/config'],
      ['POST', '/v1/channels/hook/test'],
    ] as const) {
      const r = await call(m, p, m === 'GET' ? {} : { json: {} });
      assert.equal(r.status, 401, `${m} ${p}`);
    }
    assert.equal((await call('GET', '/v1/alerts', { token: reader })).status, 200);
    const put = await call('PUT', '/v1/alerting/config', { token: reader, json: good });
    assert.equal(put.status, 403);
    assert.equal(put.json.error?.code, 'NINES_E_FORBIDDEN');
  });

  test('a bad alerting config is refused with the field named, and changes nothing', async () => {
    assert.equal((await call('PUT', '/v1/alerting/config', { token: admin, json: good })).status, 204);
    const before = await call('GET', '/v1/alerting/config', { token: admin });
    const bad = await call('PUT', '/v1/alerting/config', {
      token: admin,
      json: { ...good, alerts: { host_down: { signal: 'host_up', condition: 'zero', notify: ['nope'] } } },
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error?.code, 'NINES_E_CONFIG_INVALID');
    assert.match(bad.json.error?.message ?? '', /alerts\.host_down\.condition: "zero" is not a condition/);
    const after = await call('GET', '/v1/alerting/config', { token: admin });
    assert.deepEqual(after.json, before.json);
  });

  test('silences: bad matchers and end times are refused; an unknown one cannot be removed', async () => {
    const r1 = await call('POST', '/v1/silences', {
      token: admin,
      json: { matchers: ['service'], duration: '1h' },
    });
    assert.equal(r1.status, 400);
    assert.equal(r1.json.error?.code, 'NINES_E_VALIDATION');
    const r2 = await call('POST', '/v1/silences', {
      token: admin,
      json: { matchers: ['instance=~"(("'], duration: '1h' },
    });
    assert.equal(r2.status, 400);
    const r3 = await call('POST', '/v1/silences', { token: admin, json: { matchers: ['service=web'] } });
    assert.match(r3.json.error?.message ?? '', /give duration/);
    const r4 = await call('POST', '/v1/silences', {
      token: admin,
      json: { matchers: ['service=web'], endsAt: '2001-01-01T00:00:00Z' },
    });
    assert.equal(r4.status, 400);
    assert.deepEqual((await call('GET', '/v1/silences', { token: admin })).json.silences, []);
    const r5 = await call('DELETE', '/v1/silences/nope', { token: admin });
    assert.equal(r5.status, 404);
    assert.equal(r5.json.error?.code, 'NINES_E_SILENCE_NOT_FOUND');
  });

  test('the ack link: forged, expired and unknown tokens get their own codes; no token needed', async () => {
    const forged = await call(
      'GET',
      `/v1/alerts/ack?token=${encodeURIComponent(ackToken('wrong', 'a'.repeat(32), Date.now() + 60_000))}`,
    );
    assert.equal(forged.status, 401);
    assert.equal(forged.json.error?.code, 'NINES_E_ACK_INVALID');
    const secret = await controller.alerts.ackSecret(Date.now());
    const expired = await call(
      'POST',
      `/v1/alerts/ack?token=${encodeURIComponent(ackToken(secret, 'a'.repeat(32), Date.now() - 1000))}`,
    );
    assert.equal(expired.status, 410);
    assert.equal(expired.json.error?.code, 'NINES_E_ACK_EXPIRED');
    const unknown = await call(
      'GET',
      `/v1/alerts/ack?token=${encodeURIComponent(ackToken(secret, 'a'.repeat(32), Date.now() + 60_000))}`,
    );
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json.error?.code, 'NINES_E_ALERT_NOT_FOUND');
    const malformed = await call('POST', `/v1/alerts/${'z'.repeat(32)}/ack`, { token: admin });
    assert.equal(malformed.status, 400);
    assert.equal(malformed.json.error?.code, 'NINES_E_VALIDATION');
  });
});
