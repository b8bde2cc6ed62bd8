import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { type CheckSpec, checkSchema } from '../core/checks.js';
import { runCheck } from './checks.js';

/** Every probe against a real server on 127.0.0.1. */

function spec(name: string, input: Record<string, unknown>): CheckSpec {
  return { ...checkSchema.parse(input), name } as CheckSpec;
}

async function listen(server: {
  listen(port: number, host: string, cb: () => void): unknown;
  address(): unknown;
}) {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

test('probe http: status, body, JSON path, timeout, refused', async () => {
  let status = 200;
  let delay = 0;
  const srv = createServer((req, res) => {
    setTimeout(() => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ db: 'up', path: req.url, ua: req.headers['user-agent'] }));
    }, delay);
  });
  const port = await listen(srv);
  try {
    const s = spec('api', {
      type: 'http',
      url: `http://127.0.0.1:${port}/healthz`,
      json: { path: '$.db', equals: 'up' },
      bodyContains: 'nines-check',
      timeout: 300,
    });
    const ok = await runCheck(s);
    assert.equal(ok.ok, true, ok.message);
    assert.equal(ok.status, 200);
    assert.equal(ok.check, 'api');
    status = 500;
    const bad = await runCheck(s);
    assert.equal(bad.ok, false);
    assert.equal(bad.message, 'status 500, expected 2xx/3xx');
    status = 200;
    delay = 3000;
    const slow = await runCheck(s);
    assert.equal(slow.ok, false);
    assert.match(slow.message, /no answer within 300 ms/);
    assert.ok(
      slow.latencyMs >= 290 && slow.latencyMs < 2500,
      `gave up at the timeout (${slow.latencyMs} ms)`,
    );
  } finally {
    srv.closeAllConnections();
    await new Promise((r) => srv.close(r));
  }
  const refused = await runCheck(spec('gone', { type: 'http', url: `http://127.0.0.1:${port}/` }));
  assert.equal(refused.ok, false);
  assert.match(refused.message, /ECONNREFUSED/);
});

test('probe https: certificate days left; a certificate expiring soon fails', async (t) => {
  if (spawnSync('sh', ['-c', 'command -v openssl']).status !== 0) {
    t.skip('openssl not found: apt-get install openssl');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'nines-check-tls-'));
  try {
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
        join(dir, 'k'),
        '-out',
        join(dir, 'c'),
        '-days',
        '5',
        '-subj',
        '/CN=localhost',
      ],
      { stdio: 'ignore' },
    );
    const srv = createHttpsServer(
      { key: readFileSync(join(dir, 'k')), cert: readFileSync(join(dir, 'c')) },
      (_q, res) => res.end('ok'),
    );
    const port = await listen(srv);
    try {
      const url = `https://127.0.0.1:${port}/`;
      const soon = await runCheck(spec('tls', { type: 'http', url, insecure: true }));
      assert.equal(soon.ok, false);
      assert.ok(
        soon.certDaysLeft !== undefined && soon.certDaysLeft > 4 && soon.certDaysLeft <= 5,
        String(soon.certDaysLeft),
      );
      assert.match(soon.message, /certificate expires in 4 days \(limit 14\)/);
      const relaxed = await runCheck(spec('tls', { type: 'http', url, insecure: true, certDaysLeft: 3 }));
      assert.equal(relaxed.ok, true, relaxed.message);
      // Without `insecure`, a self-signed certificate does not verify.
      const strict = await runCheck(spec('tls', { type: 'http', url }));
      assert.equal(strict.ok, false);
      assert.match(strict.message, /self.signed/i);
    } finally {
      srv.closeAllConnections();
      await new Promise((r) => srv.close(r));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('probe tcp: connect passes, refused fails', async () => {
  const srv = createTcpServer((s) => s.end());
  const port = await listen(srv);
  try {
    const ok = await runCheck(spec('db', { type: 'tcp', host: '127.0.0.1', port }));
    assert.equal(ok.ok, true);
  } finally {
    await new Promise((r) => srv.close(r));
  }
  const no = await runCheck(spec('db', { type: 'tcp', host: '127.0.0.1', port, timeout: 1000 }));
  assert.equal(no.ok, false);
  assert.match(no.message, /ECONNREFUSED/);
});

/** A minimal DNS server: answers every A question with `addr` (or NXDOMAIN for names starting "nx"). */
function dnsServer(addr: string) {
  const sock = createSocket('udp4');
  sock.on('message', (msg, rinfo) => {
    const id = msg.subarray(0, 2);
    let i = 12;
    const labels: string[] = [];
    while (msg[i] !== 0 && i < msg.length) {
      const len = msg[i] ?? 0;
      labels.push(msg.subarray(i + 1, i + 1 + len).toString());
      i += len + 1;
    }
    const question = msg.subarray(12, i + 5);
    const nx = labels[0]?.toLowerCase().startsWith('nx') === true; // c-ares may randomize the case (0x20)
    const header = Buffer.from([0, 0, 0x81, nx ? 0x83 : 0x80, 0, 1, 0, nx ? 0 : 1, 0, 0, 0, 0]);
    id.copy(header, 0);
    const answer = nx
      ? Buffer.alloc(0)
      : Buffer.concat([
          Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]),
          Buffer.from(addr.split('.').map(Number)),
        ]);
    sock.send(Buffer.concat([header, question, answer]), rinfo.port, rinfo.address);
  });
  return sock;
}

test('probe dns: an A record from a given resolver, expected value, NXDOMAIN', async () => {
  const sock = dnsServer('10.1.2.3');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const server = `127.0.0.1:${sock.address().port}`;
  try {
    const ok = await runCheck(
      spec('dns', { type: 'dns', query: 'api.example.test', server, expect: '10.1.2.3' }),
    );
    assert.equal(ok.ok, true, ok.message);
    assert.equal(ok.message, '10.1.2.3');
    const wrong = await runCheck(
      spec('dns', { type: 'dns', query: 'api.example.test', server, expect: '10.9.9.9' }),
    );
    assert.equal(wrong.ok, false);
    assert.match(wrong.message, /no A answer contains "10\.9\.9\.9" \(got 10\.1\.2\.3\)/);
    const nx = await runCheck(spec('dns', { type: 'dns', query: 'nx.example.test', server }));
    assert.equal(nx.ok, false);
    assert.match(nx.message, /ENOTFOUND/);
  } finally {
    sock.close();
  }
});
