import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { signRequest } from '../core/signing.js';
import { cleanup, cli, type Proc, sleep, spawnCli, tempDir } from './harness.js';

/**
 * Signed agent requests against a real controller process: a host joins with a join token and gets
 * its key (read here from the agent's host.json, as an attacker with a captured request would have the
 * request, not the key). A captured request sent again is refused with NINES_E_REPLAY, one signed 10
 * minutes ago with NINES_E_SIGNATURE_EXPIRED, a forged signature with NINES_E_SIGNATURE_INVALID, and
 * once the host is revoked even a fresh one with NINES_E_HOST_REVOKED — each logged as a warning.
 */
describe('signed requests: replay, age, revocation (real processes)', () => {
  const root = tempDir();
  const ctlDir = join(root, 'controller');
  const agentDir = join(root, 'agent');
  let controller: Proc | undefined;
  let agent: Proc | undefined;
  let url = '';
  let host: { hostId: string; key: string };

  const send = (headers: Record<string, string>, path: string) =>
    request(`${url}${path}`, { method: 'GET', headers }).then(async (r) => ({
      status: r.statusCode,
      body: (await r.body.json().catch(() => ({}))) as { error?: { code: string } },
    }));

  before(async () => {
    controller = await spawnCli(['--data-dir', ctlDir, 'controller', '--port', '0', '--log-level', 'info']);
    url = controller.ready;
    const jt = await cli(ctlDir, '--json', 'join-token', 'create', '--ttl', '5m');
    assert.equal(jt.code, 0, jt.stderr);
    const token = (JSON.parse(jt.stdout) as { token: string }).token;
    agent = await spawnCli([
      '--data-dir',
      agentDir,
      'agent',
      '--controller',
      url,
      '--join-token',
      token,
      '--name',
      'h1',
    ]);
    const file = join(agentDir, 'agent', 'agent', 'host.json');
    for (let i = 0; i < 100; i++) {
      try {
        host = JSON.parse(readFileSync(file, 'utf8')) as { hostId: string; key: string };
        if (host.key) break;
      } catch {}
      await sleep(100);
    }
    assert.ok(host?.key, 'the agent registered and kept its key');
  });
  after(async () => {
    await agent?.stop();
    await controller?.stop();
    cleanup(root);
  });

  test('a replayed request and one 10 minutes old are refused with their codes', async () => {
    const path = `/v1/agent/desired?hostId=${host.hostId}&after=0&wait=0`;
    const captured = signRequest(host.hostId, host.key, 'GET', path, undefined);
    const first = await send(captured, path);
    assert.equal(first.status, 200, JSON.stringify(first.body));

    const replay = await send(captured, path);
    assert.equal(replay.status, 401);
    assert.equal(replay.body.error?.code, 'NINES_E_REPLAY');

    const old = signRequest(host.hostId, host.key, 'GET', path, undefined, Date.now() - 10 * 60_000);
    const stale = await send(old, path);
    assert.equal(stale.status, 401);
    assert.equal(stale.body.error?.code, 'NINES_E_SIGNATURE_EXPIRED');

    const forged = signRequest(host.hostId, 'ab'.repeat(32), 'GET', path, undefined);
    const bad = await send(forged, path);
    assert.equal(bad.status, 401);
    assert.equal(bad.body.error?.code, 'NINES_E_SIGNATURE_INVALID');

    // Another path with the captured signature: the signature covers the path and query.
    const other = `/v1/agent/desired?hostId=${host.hostId}&after=1&wait=0`;
    const moved = await send(signRequest(host.hostId, host.key, 'GET', path, undefined), other);
    assert.equal(moved.body.error?.code, 'NINES_E_SIGNATURE_INVALID');

    const rev = await cli(ctlDir, 'hosts', 'revoke', 'h1');
    assert.equal(rev.code, 0, rev.stderr);
    const revoked = await send(signRequest(host.hostId, host.key, 'GET', path, undefined), path);
    assert.equal(revoked.status, 403);
    assert.equal(revoked.body.error?.code, 'NINES_E_HOST_REVOKED');

    // Each refusal is logged as a warning with its code.
    let log = '';
    for (let i = 0; i < 50; i++) {
      log = readFileSync(join(ctlDir, 'logs', 'nines.log'), 'utf8');
      if (log.includes('NINES_E_HOST_REVOKED')) break;
      await sleep(100);
    }
    for (const code of [
      'NINES_E_REPLAY',
      'NINES_E_SIGNATURE_EXPIRED',
      'NINES_E_SIGNATURE_INVALID',
      'NINES_E_HOST_REVOKED',
    ]) {
      assert.match(log, new RegExp(`"level":40[^\\n]*"code":"${code}"`), `no warning for ${code}`);
    }
  });
});
