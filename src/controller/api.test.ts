import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { pino } from 'pino';
import { Header } from 'tar';
import { request } from 'undici';
import { packDirectory } from '../core/artifact.js';
import { createToken } from './auth.js';
import { Controller } from './controller.js';
import { openSqliteStore } from './store/sqlite.js';
import type { Store } from './store/types.js';

/** Issue 2, test 5 (bad input) and the API's auth, against a real controller on a real socket. */

const spec = { command: 'node server.js', instances: 1 };

/** A tar.gz with one regular file at an arbitrary (possibly hostile) path. */
function rawTarGz(path: string, content = 'x'): Buffer {
  const body = Buffer.from(content);
  const h = new Header({ path, mode: 0o644, size: body.length, type: 'File', mtime: new Date(0) });
  h.encode();
  const pad = Buffer.alloc((512 - (body.length % 512)) % 512);
  return gzipSync(Buffer.concat([h.block!, body, pad, Buffer.alloc(1024)]));
}

describe('controller API', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nines-api-'));
  let store: Store;
  let controller: Controller;
  let admin = '';
  let reader = '';
  let goodTgz: Buffer;

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
    reader = await createToken(store, 'read', 'viewer');
    await controller.start();
    const app = join(dir, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'server.js'), 'console.log(1)\n');
    const { readFile } = await import('node:fs/promises');
    await packDirectory(app, join(dir, 'app.tgz'));
    goodTgz = await readFile(join(dir, 'app.tgz'));
  });
  after(async () => {
    await controller.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function call(
    method: string,
    path: string,
    o: { token?: string; json?: unknown; body?: Buffer; headers?: Record<string, string> } = {},
  ) {
    const headers: Record<string, string> = { ...o.headers };
    if (o.token) headers.authorization = `Bearer ${o.token}`;
    let body: string | Buffer | undefined = o.body;
    if (o.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(o.json);
    }
    const res = await request(`${controller.url}${path}`, { method: method as 'GET', headers, body });
    const text = await res.body.text();
    return { status: res.statusCode, body: text ? JSON.parse(text) : undefined };
  }

  const upload = (version: string, body: Buffer, sha?: string) =>
    call('POST', `/v1/services/web/releases?version=${version}`, {
      token: admin,
      body,
      headers: { 'content-type': 'application/gzip', ...(sha ? { 'x-nines-sha256': sha } : {}) },
    });

  test('/healthz needs no token; everything else does', async () => {
    assert.equal((await call('GET', '/healthz')).status, 200);
    const none = await call('GET', '/v1/status');
    assert.equal(none.status, 401);
    assert.equal(none.body.error.code, 'NINES_E_AUTH_REQUIRED');
    const bad = await call('GET', '/v1/status', { token: 'nines_admin_nope' });
    assert.equal(bad.status, 401);
    assert.equal(bad.body.error.code, 'NINES_E_AUTH_INVALID');
    assert.equal((await call('GET', '/v1/agent/desired?hostId=x', {})).status, 401);
  });

  test('a read-only token reads but cannot change anything', async () => {
    assert.equal((await call('GET', '/v1/status', { token: reader })).status, 200);
    const r = await call('PUT', '/v1/services/web', { token: reader, json: spec });
    assert.equal(r.status, 403);
    assert.equal(r.body.error.code, 'NINES_E_FORBIDDEN');
    assert.equal((await store.listServices()).length, 0);
  });

  test('an invalid service spec is refused with the field and changes nothing', async () => {
    const r = await call('PUT', '/v1/services/web', { token: admin, json: { command: 'x', instances: -1 } });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'NINES_E_VALIDATION');
    assert.match(r.body.error.message, /instances/);
    assert.equal((await store.listServices()).length, 0);
    const junk = await call('PUT', '/v1/services/web', {
      token: admin,
      body: Buffer.from('{nope'),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(junk.status, 400);
    assert.equal(junk.body.error.code, 'NINES_E_BAD_REQUEST');
    assert.equal((await call('PUT', '/v1/services/web', { token: admin, json: spec })).status, 201);
  });

  test('an artifact with a wrong checksum is refused and leaves nothing behind', async () => {
    const r = await upload('v1', goodTgz, 'a'.repeat(64));
    assert.equal(r.status, 422);
    assert.equal(r.body.error.code, 'NINES_E_ARTIFACT_CHECKSUM');
    assert.equal((await store.listReleases('web')).length, 0);
    assert.deepEqual(readdirSync(join(dir, 'artifacts', 'web')), []);
  });

  test('archives with ../ or absolute entries are refused', async () => {
    for (const evil of ['../evil.sh', 'a/../../evil.sh', '/etc/evil']) {
      const r = await upload('v1', rawTarGz(evil));
      assert.equal(r.status, 422, evil);
      assert.equal(r.body.error.code, 'NINES_E_ARTIFACT_UNSAFE', evil);
    }
    const notTar = await upload('v1', Buffer.from('this is not a tarball'));
    assert.equal(notTar.status, 422);
    assert.equal(notTar.body.error.code, 'NINES_E_ARTIFACT_INVALID');
    assert.equal((await store.listReleases('web')).length, 0);
    assert.deepEqual(readdirSync(join(dir, 'artifacts', 'web')), []);
  });

  test('a good artifact becomes an immutable release with its sha256 and size', async () => {
    const r = await upload('v1', goodTgz);
    assert.equal(r.status, 201);
    assert.equal(r.body.release.size, goodTgz.length);
    assert.match(r.body.release.sha256, /^[0-9a-f]{64}$/);
    const again = await upload('v1', goodTgz);
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, 'NINES_E_RELEASE_EXISTS');
    const dl = await request(`${controller.url}/v1/services/web/releases/v1/artifact`, {
      headers: { authorization: `Bearer ${admin}` },
    });
    assert.equal(dl.statusCode, 200);
    assert.deepEqual(Buffer.from(await dl.body.arrayBuffer()), goodTgz);
  });

  test('deploys: unknown release 404, a held lock 409 naming the holder', async () => {
    const missing = await call('POST', '/v1/services/web/deploys', { token: admin, json: { version: 'v9' } });
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'NINES_E_RELEASE_NOT_FOUND');
    const noSvc = await call('POST', '/v1/services/nope/deploys', { token: admin, json: { version: 'v1' } });
    assert.equal(noSvc.body.error.code, 'NINES_E_SERVICE_NOT_FOUND');
    const badBody = await call('POST', '/v1/services/web/deploys', {
      token: admin,
      json: { version: 'v1', x: 1 },
    });
    assert.equal(badBody.status, 400);
    assert.equal(badBody.body.error.code, 'NINES_E_VALIDATION');

    assert.deepEqual(await store.acquireDeployLock('web', 'd-other'), { ok: true });
    const locked = await call('POST', '/v1/services/web/deploys', { token: admin, json: { version: 'v1' } });
    assert.equal(locked.status, 409);
    assert.equal(locked.body.error.code, 'NINES_E_DEPLOY_IN_PROGRESS');
    assert.match(locked.body.error.message, /d-other/);
    assert.equal((await store.listDeploys('web')).length, 0);
    await store.releaseDeployLock('web', 'd-other');
  });

  test('unknown routes and hosts get their codes', async () => {
    const r = await call('GET', '/v1/nothing', { token: admin });
    assert.equal(r.status, 404);
    assert.equal(r.body.error.code, 'NINES_E_NOT_FOUND');
    const rep = await call('POST', '/v1/agent/report', {
      token: admin,
      json: { hostId: 'h-none', generation: 0, instances: [] },
    });
    assert.equal(rep.status, 404);
    assert.equal(rep.body.error.code, 'NINES_E_HOST_NOT_FOUND');
  });
});
