import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import type { ProxyReport } from '../core/protocol.js';
import { type SvcInput, sleep, snapshot, TestClient, testEnv, waitFor } from './test-helpers.js';

function inst(r: ProxyReport, id: string) {
  const s = r.instances.find((i) => i.id === id);
  assert.ok(s, `instance ${id} in report`);
  return s;
}

/** Raw HTTP/1.1 over a socket: full control of the request bytes; reads until the server closes. */
function rawHttp(port: number, request: string | string[], gapMs = 0): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts = Array.isArray(request) ? [...request] : [request];
    const sock = connect(port, '127.0.0.1', () => {
      const next = () => {
        const p = parts.shift();
        if (p === undefined || sock.destroyed) return;
        sock.write(p);
        setTimeout(next, gapMs);
      };
      next();
    });
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('error', () => resolve(Buffer.concat(chunks).toString('latin1')));
    sock.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    sock.setTimeout(10_000, () => sock.destroy(new Error('raw request timed out')));
    void reject;
  });
}

test('read-only mode: 100 GETs pass, 100 POSTs get 503 NINES_E_READ_ONLY with Retry-After (JSON or HTML)', async (t) => {
  const e = testEnv(t);
  const b = await e.backend('a');
  const { proxy, client } = await e.proxy();
  const svc = (v: number, mode: SvcInput['mode']) =>
    snapshot(v, [{ name: 'web', mode, retryAfterSeconds: 7, instances: [{ id: 'a', port: b.port }] }]);
  proxy.applySnapshot(svc(1, 'read-only'));
  const gets = await Promise.all(Array.from({ length: 100 }, (_, i) => client.req(`/r${i}`)));
  assert.ok(gets.every((r) => r.status === 200));
  const posts = await Promise.all(
    Array.from({ length: 100 }, (_, i) => client.req(`/w${i}`, { method: 'POST', body: 'x' })),
  );
  for (const r of posts) {
    assert.equal(r.status, 503);
    assert.equal(r.headers['retry-after'], '7');
    assert.equal(JSON.parse(r.text).error.code, 'NINES_E_READ_ONLY');
  }
  assert.equal(b.hits, 100, 'no POST reached the instance');
  const html = await client.req('/x', { method: 'DELETE', headers: { accept: 'text/html,*/*' } });
  assert.equal(html.status, 503);
  assert.match(String(html.headers['content-type']), /text\/html/);
  assert.match(html.text, /<html/);
  proxy.applySnapshot(svc(2, 'live'));
  assert.equal((await client.req('/w', { method: 'POST', body: 'x' })).status, 200);
});

test('maintenance mode: 503 page (custom HTML / message); the proxy health path stays 200 in every mode', async (t) => {
  const e = testEnv(t);
  const b = await e.backend('a');
  const { proxy, client } = await e.proxy();
  const svc = (v: number, mode: SvcInput['mode']) =>
    snapshot(v, [
      {
        mode,
        maintenance: { message: 'Back at 10:00 UTC', html: '<h1>We are upgrading</h1>' },
        instances: [{ id: 'a', port: b.port }],
      },
    ]);
  proxy.applySnapshot(svc(1, 'maintenance'));
  const j = await client.req('/');
  assert.equal(j.status, 503);
  assert.ok(j.headers['retry-after']);
  assert.deepEqual(JSON.parse(j.text).error, { code: 'NINES_E_MAINTENANCE', message: 'Back at 10:00 UTC' });
  const h = await client.req('/', { headers: { accept: 'text/html' } });
  assert.equal(h.text, '<h1>We are upgrading</h1>');
  assert.equal(b.hits, 0);
  let v = 2;
  for (const mode of ['maintenance', 'read-only', 'pause', 'live'] as const) {
    proxy.applySnapshot(svc(v++, mode));
    const r = await client.req('/_nines/health');
    assert.equal(r.status, 200, mode);
  }
});

test('pause mode: requests are held, released when the mode returns to live, else 503 after pauseTimeoutMs', async (t) => {
  const e = testEnv(t);
  const b = await e.backend('a');
  const { proxy, client } = await e.proxy();
  const svc = (v: number, mode: SvcInput['mode'], pauseTimeoutMs = 5000) =>
    snapshot(v, [{ mode, pauseTimeoutMs, instances: [{ id: 'a', port: b.port }] }]);
  proxy.applySnapshot(svc(1, 'pause'));
  const held = Array.from({ length: 10 }, (_, i) => client.req(`/h${i}`));
  await sleep(200);
  assert.equal(b.hits, 0, 'held, not forwarded');
  proxy.applySnapshot(svc(2, 'live'));
  const rs = await Promise.all(held);
  assert.ok(rs.every((r) => r.status === 200));
  assert.equal(b.hits, 10);

  proxy.applySnapshot(svc(3, 'pause', 200));
  const started = Date.now();
  const r = await client.req('/late');
  assert.equal(r.status, 503);
  assert.equal(JSON.parse(r.text).error.code, 'NINES_E_PAUSED');
  assert.ok(Date.now() - started >= 180);
  assert.ok(r.headers['retry-after']);
});

test('draining: the response from a draining instance carries Connection: close; maintenance state', async (t) => {
  const e = testEnv(t);
  let release: (() => void) | null = null;
  const a = await e.backend('a', (req, res, s) => {
    if (req.url === '/slow') release = () => res.end(s.name);
    else res.end(s.name);
  });
  const b = await e.backend('b', (_q, res, s) => res.end(s.name));
  const { proxy, client } = await e.proxy();
  const svc = (v: number, sa: 'ready' | 'draining' | 'maintenance') =>
    snapshot(v, [
      {
        instances: [
          { id: 'a', port: a.port, state: sa },
          { id: 'b', port: b.port },
        ],
      },
    ]);
  proxy.applySnapshot(snapshot(1, [{ instances: [{ id: 'a', port: a.port }] }]));
  const slow = rawHttp(proxy.port, 'GET /slow HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitFor('slow at a', () => release !== null);
  proxy.applySnapshot(svc(2, 'draining'));
  // a keep-alive response from b on another connection stays keep-alive
  const fromB = await client.req('/x');
  assert.equal(fromB.text, 'b');
  assert.notEqual(fromB.headers.connection, 'close');
  release!();
  const res = await slow; // the proxy closed the connection after answering
  assert.match(res, /^HTTP\/1\.1 200/);
  assert.match(res, /\r\nconnection: close\r\n/i);
  await waitFor('a drained', () => inst(proxy.report(), 'a').drained);

  // maintenance: no traffic, no health checks, reported drained; back to ready → traffic
  proxy.applySnapshot(svc(3, 'ready'));
  proxy.applySnapshot(svc(4, 'maintenance'));
  await waitFor('a drained in maintenance', () => inst(proxy.report(), 'a').drained);
  const checks = a.healthChecks;
  const hits = a.hits;
  for (let i = 0; i < 10; i++) assert.equal((await client.req('/')).text, 'b');
  assert.equal(a.hits, hits);
  await sleep(50);
  assert.equal(a.healthChecks, checks);
  proxy.applySnapshot(svc(5, 'ready'));
  const seen = new Set<string>();
  for (let i = 0; i < 10; i++) seen.add((await client.req('/')).text);
  assert.deepEqual([...seen].sort(), ['a', 'b']);
});

test('limits: 431 for oversized headers, 413 for oversized bodies (content-length and chunked)', async (t) => {
  const e = testEnv(t);
  const b = await e.backend('a');
  const { proxy, client } = await e.proxy({ maxHeaderBytes: 4096, maxBodyBytes: 1000 });
  proxy.applySnapshot(snapshot(1, [{ instances: [{ id: 'a', port: b.port }] }]));
  const big = await rawHttp(proxy.port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(8000)}\r\n\r\n`);
  assert.match(big, /^HTTP\/1\.1 431 /);
  assert.match(big, /NINES_E_HEADERS_TOO_LARGE/);
  const cl = await client.req('/', { method: 'POST', body: Buffer.alloc(2000) });
  assert.equal(cl.status, 413);
  assert.equal(JSON.parse(cl.text).error.code, 'NINES_E_PAYLOAD_TOO_LARGE');
  assert.equal(b.hits, 0);
  const chunked = new TestClient(proxy.port);
  e.defer(() => chunked.close());
  const r = await chunked.pool
    .request({
      path: '/',
      method: 'POST',
      body: Readable.from(
        (async function* () {
          for (let i = 0; i < 10; i++) {
            yield Buffer.alloc(500);
            await sleep(20);
          }
        })(),
      ),
    })
    .then(
      async (x) => ({ status: x.statusCode, text: await x.body.text() }),
      (err: Error) => ({ status: 0, text: err.message }),
    );
  // either the 413 arrives, or the connection is cut while the client still sends
  if (r.status !== 0) assert.equal(r.status, 413);
  assert.equal((await client.req('/', { method: 'POST', body: Buffer.alloc(900) })).status, 200);
});

test('timeouts: slowloris headers cut; total timeout 504 with a code', async (t) => {
  const e = testEnv(t);
  const b = await e.backend('a', (req, res, s) => {
    if (req.url === '/trickle') {
      res.writeHead(200);
      const iv = setInterval(() => res.write('.'), 50);
      res.on('close', () => clearInterval(iv));
      return;
    }
    if (req.url === '/never') return;
    res.end(s.name);
  });
  const { proxy, client } = await e.proxy({ clientHeadersTimeoutMs: 300, upstreamTotalTimeoutMs: 400 });
  proxy.applySnapshot(snapshot(1, [{ instances: [{ id: 'a', port: b.port }] }]));
  const started = Date.now();
  const parts = [
    'GET / HTTP/1.1\r\n',
    'Host: x\r\n',
    ...Array.from({ length: 40 }, (_, i) => `X-${i}: y\r\n`),
  ];
  const slow = await rawHttp(proxy.port, parts, 100);
  const took = Date.now() - started;
  assert.ok(took < 2000, `slowloris cut after ${took} ms`);
  assert.ok(slow === '' || /^HTTP\/1\.1 408/.test(slow), slow.slice(0, 40));
  const never = await client.req('/never');
  assert.equal(never.status, 504);
  assert.equal(JSON.parse(never.text).error.code, 'NINES_E_UPSTREAM_TIMEOUT');
  // past the total timeout with the answer under way, the connection is cut
  await assert.rejects(client.req('/trickle'));
});

test('forwarding headers: Forwarded (RFC 7239) and X-Forwarded-*; client values trusted only from trustedNetworks', async (t) => {
  const e = testEnv(t);
  const b = await e.backend('a');
  const untrusted = await e.proxy({ trustedNetworks: ['10.0.0.0/8'] });
  untrusted.proxy.applySnapshot(snapshot(1, [{ instances: [{ id: 'a', port: b.port }] }]));
  const spoof = {
    'x-forwarded-for': '6.6.6.6',
    'x-forwarded-proto': 'https',
    'x-forwarded-host': 'evil.test',
    forwarded: 'for=6.6.6.6',
    host: 'app.test',
  };
  let h = (await untrusted.client.json('/', { headers: spoof })).body.headers;
  assert.equal(h['x-forwarded-for'], '127.0.0.1');
  assert.equal(h['x-forwarded-proto'], 'http');
  assert.equal(h['x-forwarded-host'], 'app.test');
  assert.equal(h.forwarded, 'for=127.0.0.1;host="app.test";proto=http');

  const trusted = await e.proxy({ trustedNetworks: ['127.0.0.0/8'] });
  trusted.proxy.applySnapshot(snapshot(1, [{ instances: [{ id: 'a', port: b.port }] }]));
  h = (await trusted.client.json('/', { headers: spoof })).body.headers;
  assert.equal(h['x-forwarded-for'], '6.6.6.6, 127.0.0.1');
  assert.equal(h['x-forwarded-proto'], 'https');
  assert.equal(h['x-forwarded-host'], 'evil.test');
  assert.equal(h.forwarded, 'for=6.6.6.6, for=127.0.0.1;host="app.test";proto=http');
});

test('routing: *. wildcard hosts', async (t) => {
  const e = testEnv(t);
  const w = await e.backend('wild');
  const d = await e.backend('default');
  const { proxy, client } = await e.proxy();
  proxy.applySnapshot(
    snapshot(1, [
      { name: 'wild', hosts: ['*.apps.test'], instances: [{ id: 'w', port: w.port }] },
      { name: 'default', instances: [{ id: 'd', port: d.port }] },
    ]),
  );
  assert.equal((await client.json('/', { headers: { host: 'x.apps.test' } })).body.name, 'wild');
  assert.equal((await client.json('/', { headers: { host: 'a.b.APPS.test:8080' } })).body.name, 'wild');
  assert.equal((await client.json('/', { headers: { host: 'apps.test' } })).body.name, 'default');
});
