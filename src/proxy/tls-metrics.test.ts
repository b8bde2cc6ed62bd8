import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { snapshot, testEnv, waitFor } from './test-helpers.js';

function have(bin: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
}

function makeCert(
  dir: string,
  name: string,
  cn: string,
  sans: string[],
): { certFile: string; keyFile: string } {
  const keyFile = join(dir, `${name}.key`);
  const certFile = join(dir, `${name}.crt`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '2',
      '-subj',
      `/CN=${cn}`,
      '-addext',
      `subjectAltName=${sans.map((s) => `DNS:${s}`).join(',')}`,
    ],
    { stdio: 'ignore' },
  );
  return { certFile, keyFile };
}

function tlsOpen(port: number, servername: string): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ port, host: '127.0.0.1', servername, rejectUnauthorized: false }, () =>
      resolve(s),
    );
    s.once('error', reject);
  });
}

/** One HTTP/1.1 keep-alive request on an open socket; resolves with the raw response. */
function ask(s: TLSSocket, host: string): Promise<string> {
  return new Promise((resolve) => {
    let buf = '';
    const onData = (c: Buffer) => {
      buf += c.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      const m = /content-length: (\d+)/i.exec(buf);
      if (m && buf.length >= end + 4 + Number(m[1])) {
        s.off('data', onData);
        resolve(buf);
      }
    };
    s.on('data', onData);
    s.write(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  });
}

test('TLS: SNI per host, reload (explicit and on file change) without dropping connections', async (t) => {
  if (!have('openssl')) {
    t.skip('openssl not found: apt-get install openssl');
    return;
  }
  const e = testEnv(t);
  const dir = mkdtempSync(join(tmpdir(), 'nines-tls-'));
  e.defer(async () => rmSync(dir, { recursive: true, force: true }));
  const a = makeCert(dir, 'a', 'a.test', ['a.test']);
  const w = makeCert(dir, 'w', 'wild', ['*.w.test']);
  const b = await e.backend('b');
  const { proxy } = await e.proxy({ tls: { certificates: [a, w] } });
  proxy.applySnapshot(snapshot(1, [{ instances: [{ id: 'b', port: b.port }] }]));
  const cn = (s: TLSSocket) => s.getPeerCertificate().subject?.CN;
  const s1 = await tlsOpen(proxy.port, 'a.test');
  e.defer(async () => s1.destroy());
  assert.equal(cn(s1), 'a.test');
  const s2 = await tlsOpen(proxy.port, 'x.w.test');
  e.defer(async () => s2.destroy());
  assert.equal(cn(s2), 'wild');
  const res = await ask(s1, 'a.test');
  assert.match(res, /^HTTP\/1\.1 200/);
  assert.match(res, /"x-forwarded-proto":"https"/);

  // new certificate for a.test; explicit reload
  const fp1 = s1.getPeerCertificate().fingerprint256;
  const a2 = makeCert(dir, 'a2', 'a.test', ['a.test']);
  renameSync(a2.keyFile, a.keyFile);
  renameSync(a2.certFile, a.certFile);
  proxy.reloadTls();
  assert.match(await ask(s1, 'a.test'), /^HTTP\/1\.1 200/, 'the open connection keeps working');
  const s3 = await tlsOpen(proxy.port, 'a.test');
  e.defer(async () => s3.destroy());
  const fp2 = s3.getPeerCertificate().fingerprint256;
  assert.notEqual(fp2, fp1, 'a new connection gets the new certificate');

  // a file change alone triggers a reload
  const a3 = makeCert(dir, 'a3', 'a.test', ['a.test']);
  writeFileSync(a.keyFile, readFileSync(a3.keyFile));
  writeFileSync(a.certFile, readFileSync(a3.certFile));
  await waitFor(
    'reload on file change',
    async () => {
      const s = await tlsOpen(proxy.port, 'a.test');
      const fp = s.getPeerCertificate().fingerprint256;
      s.destroy();
      return fp !== fp2;
    },
    8000,
  );
  assert.match(await ask(s2, 'x.w.test'), /^HTTP\/1\.1 200/);
});

test('metrics: /metrics on the admin listener passes promtool check metrics', async (t) => {
  const e = testEnv(t);
  const a = await e.backend('a');
  const { proxy, client } = await e.proxy({ adminPort: 0 });
  proxy.applySnapshot(
    snapshot(1, [
      { name: 'web', instances: [{ id: 'a', port: a.port }] },
      { name: 'ro', hosts: ['ro.test'], mode: 'read-only', instances: [{ id: 'a', port: a.port }] },
    ]),
  );
  for (let i = 0; i < 20; i++) await client.req('/');
  await client.req('/', { method: 'POST', body: 'x', headers: { host: 'ro.test' } });
  const res = await fetch(`http://127.0.0.1:${proxy.adminPort}/metrics`);
  assert.equal(res.status, 200);
  assert.match(String(res.headers.get('content-type')), /text\/plain; version=0\.0\.4/);
  const text = await res.text();
  assert.match(text, /nines_proxy_requests_total\{service="web",instance="a",class="2xx"\} 20/);
  assert.match(text, /nines_proxy_requests_total\{service="ro",instance="",class="5xx"\} 1/);
  assert.match(text, /nines_proxy_request_duration_seconds_count\{service="web",instance="a"\} 20/);
  assert.match(text, /nines_proxy_service_mode\{service="ro",mode="read-only"\} 1/);
  assert.match(text, /nines_proxy_upstream_up\{service="web",instance="a"\} 1/);
  assert.equal((await fetch(`http://127.0.0.1:${proxy.adminPort}/health`)).status, 200);
  if (!have('promtool')) {
    t.skip('promtool not found: apt-get install prometheus');
    return;
  }
  const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(check.status, 0, `promtool: ${check.stdout}${check.stderr}`);
});
