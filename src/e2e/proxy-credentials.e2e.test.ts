import assert from 'node:assert/strict';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { Client } from '../cli/client.js';
import type { ProxyCredentialView } from '../controller/proxies.js';
import { cleanup, cli, fixture, type Proc, sleep, spawnCli, tempDir } from './harness.js';

/**
 * Proxies with their own credentials: a proxy joins with a join token (no shared node token), keeps its
 * token in a 0600 file, routes traffic, is listed by `nines proxies`; its token reaches only the proxy
 * protocol and only as itself; `nines proxies revoke` cuts it off at once, and a restart reuses the file.
 */
describe('proxy credentials', () => {
  const root = tempDir();
  const ctlDir = join(root, 'controller');
  const proxyDir = join(root, 'proxy');
  let controller: Proc | undefined;
  let agent: Proc | undefined;
  let proxy: Proc | undefined;
  let url = '';
  let client: Client;

  const joinToken = async () => {
    const jt = await cli(ctlDir, '--json', 'join-token', 'create', '--ttl', '10m');
    assert.equal(jt.code, 0, jt.stderr);
    return (JSON.parse(jt.stdout) as { token: string }).token;
  };
  const call = async (token: string, method: 'GET' | 'POST', path: string, body?: unknown) => {
    const r = await request(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await r.body.text();
    return {
      status: r.statusCode,
      code: text ? ((JSON.parse(text) as { error?: { code: string } }).error?.code ?? '') : '',
    };
  };

  before(async () => {
    controller = await spawnCli(['--data-dir', ctlDir, 'controller', '--port', '0']);
    url = controller.ready;
    client = new Client({ url, token: readFileSync(join(ctlDir, 'admin-token'), 'utf8').trim() });
    agent = await spawnCli([
      '--data-dir',
      join(root, 'agent'),
      'agent',
      '--controller',
      url,
      '--join-token',
      await joinToken(),
    ]);
    await client.put('/v1/services/web', {
      command: 'node server.js',
      instances: 1,
      health: { path: '/healthz', interval: 200, timeout: 500, rise: 2, fall: 2 },
      drainTimeout: 5000,
      healthyDeadline: 20_000,
    });
    assert.equal((await cli(ctlDir, 'release', 'web', fixture('graceful'), '--version', 'v1')).code, 0);
  });
  after(async () => {
    await proxy?.stop();
    await agent?.stop();
    await controller?.stop();
    cleanup(root);
  });

  test('joins with a join token, serves, is listed; its token is limited to itself; revoke cuts it off', async () => {
    proxy = await spawnCli([
      '--data-dir',
      proxyDir,
      'proxy',
      '--controller',
      url,
      '--join-token',
      await joinToken(),
      '--id',
      'edge-1',
      '--port',
      '0',
    ]);
    const file = join(proxyDir, 'proxy', 'credentials.json');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const token = (JSON.parse(readFileSync(file, 'utf8')) as { token: string }).token;
    assert.match(token, /^nines_proxy_/);

    const d = await cli(ctlDir, 'deploy', 'web', 'v1');
    assert.equal(d.code, 0, d.stdout + d.stderr); // the deploy waited for this proxy to route the instance
    assert.equal(await (await request(`${proxy.ready}/`)).body.text(), 'v1');

    const list = await cli(ctlDir, '--json', 'proxies');
    const proxies = (JSON.parse(list.stdout) as { proxies: ProxyCredentialView[] }).proxies;
    assert.ok(
      proxies.some((p) => p.name === 'edge-1' && p.up && p.revokedAt === null),
      list.stdout,
    );

    // Only the proxy protocol, only as itself.
    assert.equal((await call(token, 'GET', '/v1/proxy/snapshot')).status, 200);
    assert.equal((await call(token, 'GET', '/v1/status')).code, 'NINES_E_FORBIDDEN');
    assert.equal((await call(token, 'GET', '/v1/agent/desired?hostId=x')).code, 'NINES_E_FORBIDDEN');
    const spoof = await call(token, 'POST', '/v1/proxy/report', {
      proxyId: 'someone-else',
      appliedVersion: 0,
      instances: [],
    });
    assert.equal(spoof.code, 'NINES_E_FORBIDDEN');

    const rev = await cli(ctlDir, 'proxies', 'revoke', 'edge-1');
    assert.equal(rev.code, 0, rev.stderr);
    const after = await call(token, 'GET', '/v1/proxy/snapshot');
    assert.equal(after.status, 401);
    assert.equal(after.code, 'NINES_E_AUTH_INVALID');
    // Static stability: cut off from the controller, it still serves its last snapshot.
    assert.equal(await (await request(`${proxy.ready}/`)).body.text(), 'v1');
    const listed = (
      JSON.parse((await cli(ctlDir, '--json', 'proxies')).stdout) as { proxies: ProxyCredentialView[] }
    ).proxies;
    assert.ok(listed.every((p) => p.name !== 'edge-1' || (p.revokedAt !== null && !p.up)));
    const unknown = await cli(ctlDir, 'proxies', 'revoke', 'nope');
    assert.match(unknown.stderr, /NINES_E_NOT_FOUND/);
  });

  test('a join token joins again under the same name (new credential, the old one stops); a restart reuses the file', async () => {
    await proxy?.stop();
    const file = join(proxyDir, 'proxy', 'credentials.json');
    const old = (JSON.parse(readFileSync(file, 'utf8')) as { token: string }).token;
    // Re-joining after a revoke: remove the kept credential, start with a new join token.
    rmSync(file);
    proxy = await spawnCli([
      '--data-dir',
      proxyDir,
      'proxy',
      '--controller',
      url,
      '--join-token',
      await joinToken(),
      '--id',
      'edge-1',
      '--port',
      '0',
    ]);
    const fresh = (JSON.parse(readFileSync(file, 'utf8')) as { token: string }).token;
    assert.notEqual(fresh, old);
    assert.equal((await call(fresh, 'GET', '/v1/proxy/snapshot')).status, 200);
    assert.equal((await call(old, 'GET', '/v1/proxy/snapshot')).status, 401);
    await proxy.stop();
    proxy = await spawnCli([
      '--data-dir',
      proxyDir,
      'proxy',
      '--controller',
      url,
      '--id',
      'edge-1',
      '--port',
      '0',
    ]);
    for (let i = 0; i < 50; i++) {
      const l = (
        JSON.parse((await cli(ctlDir, '--json', 'proxies')).stdout) as { proxies: ProxyCredentialView[] }
      ).proxies;
      if (l.some((p) => p.name === 'edge-1' && p.up)) return;
      await sleep(200);
    }
    assert.fail('the restarted proxy did not report with its kept credential');
  });
});
