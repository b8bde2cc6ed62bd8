import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { request } from 'undici';
import { createToken } from '../auth.js';
import { Controller } from '../controller.js';
import { openSqliteStore } from '../store/sqlite.js';
import type { Store } from '../store/types.js';

interface Answer {
  error?: { code: string };
  secret?: { version: number };
  environment?: string;
  secrets?: Array<{ name: string; version: number; value?: string }>;
}

/** The secrets API on a real controller socket: roles, bad input, and values never echoed. */
describe('secrets API', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nines-secrets-api-'));
  let store: Store;
  let controller: Controller;
  let admin = '';
  let reader = '';
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
    reader = (await createToken(store, 'read', 'viewer')).token;
    await controller.start();
    await store.upsertService('api', { command: 'x' } as unknown as Parameters<Store['upsertService']>[1]);
  });
  after(async () => {
    await controller.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function call(
    method: 'GET' | 'PUT' | 'DELETE' | 'POST',
    path: string,
    token: string,
    json?: unknown,
  ) {
    const r = await request(`${controller.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(json === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(json === undefined ? {} : { body: JSON.stringify(json) }),
    });
    const text = await r.body.text();
    return { status: r.statusCode, text, body: (text ? JSON.parse(text) : {}) as Answer };
  }

  test('admin sets (201, then 200 with a new version), answers never carry the value', async () => {
    const a = await call('PUT', '/v1/services/api/secrets/DB', admin, { value: 'v-one-secret' });
    assert.equal(a.status, 201);
    assert.equal(a.body.secret?.version, 1);
    assert.ok(!a.text.includes('v-one-secret'));
    const b = await call('PUT', '/v1/services/api/secrets/DB', admin, { value: 'v-two-secret' });
    assert.equal(b.status, 200);
    assert.equal(b.body.secret?.version, 2);
    const l = await call('GET', '/v1/services/api/secrets', reader);
    assert.equal(l.status, 200);
    assert.equal(l.body.environment, 'production');
    assert.ok(!l.text.includes('v-two-secret'));
    assert.deepEqual(
      (l.body.secrets ?? []).map((s) => s.name),
      ['DB'],
    );
  });

  test('read and node tokens may not set; node may not list; bad input is refused with codes and changes nothing', async () => {
    assert.equal(
      (await call('PUT', '/v1/services/api/secrets/X', reader, { value: 'a' })).body.error?.code,
      'NINES_E_FORBIDDEN',
    );
    assert.equal((await call('GET', '/v1/services/api/secrets', node)).body.error?.code, 'NINES_E_FORBIDDEN');
    assert.equal(
      (await call('POST', '/v1/secrets/rotate-key', reader)).body.error?.code,
      'NINES_E_FORBIDDEN',
    );
    const badName = await call('PUT', '/v1/services/api/secrets/9lives', admin, { value: 'a' });
    assert.equal(badName.status, 400);
    assert.equal(badName.body.error?.code, 'NINES_E_VALIDATION');
    const badBody = await call('PUT', '/v1/services/api/secrets/OK', admin, { value: 42, extra: 'leak-me' });
    assert.equal(badBody.body.error?.code, 'NINES_E_VALIDATION');
    assert.ok(!badBody.text.includes('leak-me'));
    const noSvc = await call('PUT', '/v1/services/nope/secrets/A', admin, { value: 'a' });
    assert.equal(noSvc.status, 404);
    assert.equal(noSvc.body.error?.code, 'NINES_E_SERVICE_NOT_FOUND');
    const gone = await call('DELETE', '/v1/services/api/secrets/NOPE', admin);
    assert.equal(gone.status, 404);
    assert.equal(gone.body.error?.code, 'NINES_E_SECRET_NOT_FOUND');
    const l = await call('GET', '/v1/services/api/secrets', admin);
    assert.deepEqual(
      (l.body.secrets ?? []).map((s) => [s.name, s.version]),
      [['DB', 2]],
    );
  });

  test('variables are listed with their values; other environments apart', async () => {
    assert.equal(
      (await call('PUT', '/v1/services/api/secrets/LEVEL', admin, { value: 'debug', kind: 'var' })).status,
      201,
    );
    assert.equal(
      (await call('PUT', '/v1/services/api/secrets/DB', admin, { value: 's', env: 'staging' })).status,
      201,
    );
    const prod = await call('GET', '/v1/services/api/secrets', admin);
    assert.deepEqual(prod.body.secrets?.find((s) => s.name === 'LEVEL')?.value, 'debug');
    const staging = await call('GET', '/v1/services/api/secrets?env=staging', admin);
    assert.deepEqual(
      (staging.body.secrets ?? []).map((s) => [s.name, s.version]),
      [['DB', 1]],
    );
    assert.equal((await call('DELETE', '/v1/services/api/secrets/DB?env=staging', admin)).status, 200);
  });
});
