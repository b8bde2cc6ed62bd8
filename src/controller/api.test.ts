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
import { signRequest } from '../core/signing.js';
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
    reader = (await createToken(store, 'read', 'viewer')).token;
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

  test('a release’s config diff: field by field against the release before it, or a named one', async () => {
    const put = await call('PUT', '/v1/services/web', { token: admin, json: { ...spec, instances: 5 } });
    assert.ok(put.status === 200 || put.status === 201, JSON.stringify(put.body));
    assert.equal((await upload('v2', goodTgz)).status, 201);
    const d = await call('GET', '/v1/services/web/releases/v2/diff', { token: reader });
    assert.equal(d.status, 200, JSON.stringify(d.body));
    assert.equal(d.body.from, 'v1');
    assert.deepEqual(
      d.body.changes.filter((c: { path: string }) => c.path === 'instances'),
      [{ path: 'instances', from: spec.instances, to: 5 }],
    );
    const first = await call('GET', '/v1/services/web/releases/v1/diff', { token: reader });
    assert.equal(first.body.from, null, 'the first release is all new');
    const back = await call('GET', '/v1/services/web/releases/v1/diff?from=v2', { token: reader });
    assert.deepEqual(
      back.body.changes.filter((c: { path: string }) => c.path === 'instances'),
      [{ path: 'instances', from: 5, to: spec.instances }],
    );
    const none = await call('GET', '/v1/services/web/releases/v9/diff', { token: reader });
    assert.equal(none.status, 404);
    assert.equal(none.body.error.code, 'NINES_E_RELEASE_NOT_FOUND');
    await call('PUT', '/v1/services/web', { token: admin, json: spec });
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
    const badStrategy = await call('POST', '/v1/services/web/deploys', {
      token: admin,
      json: { version: 'v1', strategy: 'red-black' },
    });
    assert.equal(badStrategy.status, 400);
    assert.equal(badStrategy.body.error.code, 'NINES_E_VALIDATION');
    assert.match(badStrategy.body.error.message, /strategy/);
    assert.equal((await store.listDeploys('web')).length, 0, 'a refused deploy changes nothing');

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

  describe('signed node requests', () => {
    const register = { name: 'node-1', zone: 'a', labels: {}, address: '127.0.0.1' };
    let hostId = '';
    let key = '';
    let join = '';

    async function signedCall(
      method: string,
      path: string,
      o: { body?: unknown; at?: number; k?: string; id?: string; headers?: Record<string, string> } = {},
    ) {
      const text = o.body === undefined ? undefined : JSON.stringify(o.body);
      const headers = {
        ...signRequest(o.id ?? hostId, o.k ?? key, method, path, text, o.at),
        ...(text === undefined ? {} : { 'content-type': 'application/json' }),
        ...o.headers,
      };
      const res = await request(`${controller.url}${path}`, { method: method as 'GET', headers, body: text });
      const t = await res.body.text();
      return { status: res.statusCode, body: t ? JSON.parse(t) : undefined, headers };
    }

    test('a join token registers a host once and returns its key; it can do nothing else', async () => {
      const created = await call('POST', '/v1/join-tokens', {
        token: admin,
        json: { ttl: '10m', name: 'rack-1' },
      });
      assert.equal(created.status, 201);
      join = created.body.token;
      assert.ok(created.body.expiresAt > Date.now());
      const listed = await call('GET', '/v1/join-tokens', { token: admin });
      assert.equal(listed.body.tokens.length, 1);
      assert.equal(listed.body.tokens[0].hash, undefined, 'hashes are not shown');
      const r = await call('POST', '/v1/agent/register', { token: join, json: register });
      assert.equal(r.status, 200);
      assert.match(r.body.key, /^[0-9a-f]{64}$/);
      hostId = r.body.hostId;
      key = r.body.key;
      const other = await call('GET', '/v1/status', { token: join });
      assert.equal(other.status, 403);
      assert.equal(other.body.error.code, 'NINES_E_FORBIDDEN');
    });

    test('signed requests are accepted; a signed register refreshes facts without a new key', async () => {
      const report = { hostId, generation: 0, instances: [] };
      assert.equal((await signedCall('POST', '/v1/agent/report', { body: report })).status, 204);
      const d = await signedCall('GET', `/v1/agent/desired?hostId=${hostId}&after=0&wait=0`);
      assert.equal(d.status, 200);
      assert.equal(d.body.hostId, hostId);
      const again = await signedCall('POST', '/v1/agent/register', { body: { ...register, zone: 'b' } });
      assert.equal(again.status, 200);
      assert.equal(again.body.key, undefined);
      assert.equal((await store.getHost(hostId))?.zone, 'b');
      assert.equal((await store.getHost(hostId))?.key, key);
    });

    test('a replayed request is refused with NINES_E_REPLAY', async () => {
      const report = { hostId, generation: 0, instances: [] };
      const first = await signedCall('POST', '/v1/agent/report', { body: report });
      assert.equal(first.status, 204);
      const res = await request(`${controller.url}/v1/agent/report`, {
        method: 'POST',
        headers: first.headers,
        body: JSON.stringify(report),
      });
      const body = JSON.parse(await res.body.text());
      assert.equal(res.statusCode, 401);
      assert.equal(body.error.code, 'NINES_E_REPLAY');
    });

    test('a request signed 10 minutes ago is refused with NINES_E_SIGNATURE_EXPIRED', async () => {
      const r = await signedCall('POST', '/v1/agent/report', {
        body: { hostId, generation: 0, instances: [] },
        at: Date.now() - 10 * 60_000,
      });
      assert.equal(r.status, 401);
      assert.equal(r.body.error.code, 'NINES_E_SIGNATURE_EXPIRED');
    });

    test('a wrong key, a tampered body and a foreign host id are refused', async () => {
      const wrong = await signedCall('POST', '/v1/agent/report', {
        body: { hostId, generation: 0, instances: [] },
        k: 'ab'.repeat(32),
      });
      assert.equal(wrong.status, 401);
      assert.equal(wrong.body.error.code, 'NINES_E_SIGNATURE_INVALID');
      const text = JSON.stringify({ hostId, generation: 0, instances: [] });
      const h = signRequest(hostId, key, 'POST', '/v1/agent/report', text);
      const res = await request(`${controller.url}/v1/agent/report`, {
        method: 'POST',
        headers: { ...h, 'content-type': 'application/json' },
        body: text.replace('"generation":0', '"generation":9'),
      });
      assert.equal(res.statusCode, 401);
      assert.equal(JSON.parse(await res.body.text()).error.code, 'NINES_E_SIGNATURE_INVALID');
      const foreign = await signedCall('POST', '/v1/agent/report', {
        body: { hostId: 'h-else', generation: 0, instances: [] },
      });
      assert.equal(foreign.status, 403);
      assert.equal(foreign.body.error.code, 'NINES_E_FORBIDDEN');
      const people = await signedCall('GET', '/v1/status');
      assert.equal(people.status, 403, 'a host cannot use the people API');
    });

    test('a revoked host is cut off and cannot register again; revoked and expired join tokens fail', async () => {
      const rv = await call('POST', '/v1/hosts/node-1/revoke', { token: admin });
      assert.equal(rv.status, 200);
      const r = await signedCall('POST', '/v1/agent/report', {
        body: { hostId, generation: 0, instances: [] },
      });
      assert.equal(r.status, 403);
      assert.equal(r.body.error.code, 'NINES_E_HOST_REVOKED');
      const back = await call('POST', '/v1/agent/register', { token: join, json: register });
      assert.equal(back.status, 403);
      assert.equal(back.body.error.code, 'NINES_E_HOST_REVOKED');
      const hosts = await call('GET', '/v1/hosts', { token: admin });
      assert.ok(
        hosts.body.hosts.find(
          (h: { id: string; revokedAt: number | null; key?: string }) =>
            h.id === hostId && h.revokedAt && h.key === undefined,
        ),
      );

      const tokens = await call('GET', '/v1/join-tokens', { token: admin });
      const id = tokens.body.tokens[0].id;
      assert.equal((await call('DELETE', `/v1/join-tokens/${id}`, { token: admin })).status, 200);
      const revokedJoin = await call('POST', '/v1/agent/register', {
        token: join,
        json: { ...register, name: 'node-2' },
      });
      assert.equal(revokedJoin.status, 401);
      assert.equal(revokedJoin.body.error.code, 'NINES_E_AUTH_INVALID');
      const { token: old } = await createToken(store, 'join', 'old', Date.now() - 1000);
      const expired = await call('POST', '/v1/agent/register', {
        token: old,
        json: { ...register, name: 'node-3' },
      });
      assert.equal(expired.status, 401);
      assert.match(expired.body.error.message, /expired/);
    });
  });
});
