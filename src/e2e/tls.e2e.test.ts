import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { cleanup, cli, fixture, type Proc, spawnCli, tempDir } from './harness.js';

/**
 * The controller over TLS: a private CA and a server certificate made by openssl here, the controller
 * started with --tls-cert/--tls-key, and an agent, a proxy and the CLI that trust that CA through
 * --ca-file — a release deployed and served through the proxy. A client without the CA is refused by
 * the TLS handshake (exit 3, unreachable), and plain HTTP to the TLS port gets no API answer.
 */

function haveOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function makeCa(dir: string): { ca: string; cert: string; key: string } {
  const f = (n: string) => join(dir, n);
  const run = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  run(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=nines test CA',
    '-keyout',
    f('ca.key'),
    '-out',
    f('ca.pem'),
  );
  run(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    '/CN=127.0.0.1',
    '-keyout',
    f('server.key'),
    '-out',
    f('server.csr'),
  );
  writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  run(
    'x509',
    '-req',
    '-in',
    f('server.csr'),
    '-CA',
    f('ca.pem'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-days',
    '1',
    '-extfile',
    f('ext.cnf'),
    '-out',
    f('server.pem'),
  );
  return { ca: f('ca.pem'), cert: f('server.pem'), key: f('server.key') };
}

describe('TLS between the planes', { skip: haveOpenssl() ? false : 'openssl is not installed' }, () => {
  const root = tempDir();
  const ctlDir = join(root, 'controller');
  let controller: Proc | undefined;
  let agent: Proc | undefined;
  let proxy: Proc | undefined;
  let url = '';
  let pki: { ca: string; cert: string; key: string };

  before(async () => {
    pki = makeCa(root);
    controller = await spawnCli([
      '--data-dir',
      ctlDir,
      'controller',
      '--port',
      '0',
      '--tls-cert',
      pki.cert,
      '--tls-key',
      pki.key,
    ]);
    url = controller.ready;
  });
  after(async () => {
    await agent?.stop();
    await proxy?.stop();
    await controller?.stop();
    cleanup(root);
  });

  test('agent, proxy and CLI with --ca-file: join, release, deploy, serve', async () => {
    assert.match(url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const jt = await cli(ctlDir, '--ca-file', pki.ca, '--json', 'join-token', 'create');
    assert.equal(jt.code, 0, jt.stdout + jt.stderr);
    agent = await spawnCli([
      '--data-dir',
      join(root, 'agent'),
      '--ca-file',
      pki.ca,
      'agent',
      '--controller',
      url,
      '--join-token',
      (JSON.parse(jt.stdout) as { token: string }).token,
      '--name',
      'tls-host',
    ]);
    proxy = await spawnCli([
      '--data-dir',
      join(root, 'proxy'),
      '--ca-file',
      pki.ca,
      'proxy',
      '--controller',
      url,
      '--token-file',
      join(ctlDir, 'node-token'),
      '--port',
      '0',
    ]);
    const put = await cli(ctlDir, '--ca-file', pki.ca, 'apply', '-f', writeConfig(root));
    assert.equal(put.code, 0, put.stdout + put.stderr);
    const rel = await cli(
      ctlDir,
      '--ca-file',
      pki.ca,
      'release',
      'web',
      fixture('graceful'),
      '--version',
      'v1',
    );
    assert.equal(rel.code, 0, rel.stdout + rel.stderr);
    const d = await cli(ctlDir, '--ca-file', pki.ca, 'deploy', 'web', 'v1');
    assert.equal(d.code, 0, d.stdout + d.stderr);
    assert.equal(await (await request(`${proxy.ready}/`)).body.text(), 'v1');
    const hosts = await cli(ctlDir, '--ca-file', pki.ca, '--json', 'hosts');
    const list = (
      JSON.parse(hosts.stdout) as { hosts: Array<{ name: string; signed: boolean; up: boolean }> }
    ).hosts;
    assert.ok(
      list.some((h) => h.name === 'tls-host' && h.signed && h.up),
      hosts.stdout,
    );
  });

  test('without the CA the CLI is refused by the handshake; plain HTTP gets no API answer', async () => {
    const r = await cli(ctlDir, 'status');
    assert.equal(r.code, 3, r.stdout + r.stderr);
    assert.match(r.stderr, /NINES_E_UNREACHABLE.*(certificate|self.signed|issuer)/i);
    const plain = url.replace('https://', 'http://');
    const res = await request(`${plain}/healthz`).catch((err: Error) => err);
    assert.ok(res instanceof Error || res.statusCode === 400, 'plain HTTP must not reach the API');
    if (!(res instanceof Error)) await res.body.dump();
    assert.equal(readFileSync(join(ctlDir, 'secrets.key'), 'utf8').trim().length, 64);
  });
});

function writeConfig(dir: string): string {
  const file = join(dir, 'nines.yaml');
  writeFileSync(
    file,
    `services:
  web:
    command: node server.js
    instances: 1
    health: { path: /healthz, interval: 200ms, timeout: 500ms, rise: 2, fall: 2 }
    drainTimeout: 5s
    healthyDeadline: 20s
`,
  );
  return file;
}
