import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect, Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { test } from 'node:test';
import { pino } from 'pino';
import type { ProxyReport } from '../core/protocol.js';
import { Proxy as NinesProxy } from './proxy.js';
import {
  type Backend,
  connectionCount,
  echo,
  fastHealth,
  silentLogger,
  sleep,
  snapshot,
  TestClient,
  testEnv,
  waitFor,
} from './test-helpers.js';

const env = testEnv;

/** The instance's routing status in a report (its traffic counters are checked on their own). */
function inst(r: ProxyReport, id: string) {
  const s = r.instances.find((i) => i.id === id);
  assert.ok(s, `instance ${id} in report`);
  return { id: s.id, up: s.up, inflight: s.inflight, drained: s.drained };
}

/** Raw HTTP/1.1 over a socket: full control of the request bytes; reads until the server closes. */
function rawHttp(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1', () => sock.write(request));
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('error', reject);
    sock.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    sock.setTimeout(5000, () => sock.destroy(new Error('raw request timed out')));
  });
}

test('round-robin across 3 upstreams', async (t) => {
  const e = env(t);
  const bs = [await e.backend('a'), await e.backend('b'), await e.backend('c')];
  const { proxy, client } = await e.proxy();
  proxy.applySnapshot(snapshot(1, [{ instances: bs.map((b) => ({ id: b.name, port: b.port })) }]));
  const order: string[] = [];
  for (let i = 0; i < 30; i++) {
    const r = await client.json('/x');
    assert.equal(r.status, 200);
    order.push(r.body.name);
  }
  assert.deepEqual(
    bs.map((b) => b.hits),
    [10, 10, 10],
  );
  // strict rotation, no instance twice in a row
  for (let i = 1; i < order.length; i++) assert.notEqual(order[i], order[i - 1]);
});

test('forwards the client Host, adds X-Forwarded-* and x-request-id, strips hop-by-hop headers', async (t) => {
  const e = env(t);
  const b = await e.backend('a');
  const { proxy } = await e.proxy();
  proxy.applySnapshot(snapshot(1, [{ instances: [{ id: 'a', port: b.port }] }]));
  const res = await rawHttp(
    proxy.port,
    'GET /h?q=1 HTTP/1.1\r\nHost: App.Example.com:8080\r\nConnection: close, X-Secret\r\nX-Secret: s\r\n' +
      'Keep-Alive: timeout=5\r\nProxy-Authorization: Basic eA==\r\nTE: trailers\r\nX-Forwarded-For: 10.0.0.1\r\n' +
      'X-Custom: kept\r\n\r\n',
  );
  assert.match(res, /^HTTP\/1\.1 200 /);
  assert.match(res, /\r\nx-request-id: [0-9a-f]+-1\r\n/i);
  assert.match(res, /\r\nx-backend: a\r\n/i);
  const body = JSON.parse(res.slice(res.indexOf('\r\n\r\n') + 4));
  assert.equal(body.url, '/h?q=1');
  const h = body.headers;
  assert.equal(h.host, 'App.Example.com:8080');
  assert.equal(h['x-forwarded-for'], '10.0.0.1, 127.0.0.1');
  assert.equal(h['x-forwarded-proto'], 'http');
  assert.equal(h['x-forwarded-host'], 'App.Example.com:8080');
  assert.match(h['x-request-id'], /^[0-9a-f]+-1$/);
  assert.equal(h['x-custom'], 'kept');
  for (const gone of ['x-secret', 'keep-alive', 'proxy-authorization', 'te'])
    assert.equal(h[gone], undefined, gone);

  // A client request id is kept and echoed.
  const client = new TestClient(proxy.port);
  e.defer(() => client.close());
  const r = await client.req('/', { headers: { 'x-request-id': 'abc-123' } });
  assert.equal(r.headers['x-request-id'], 'abc-123');
  assert.equal(b.lastHeaders?.['x-request-id'], 'abc-123');
});

test('routes by host and longest path prefix; 404 NINES_E_NO_ROUTE otherwise', async (t) => {
  const e = env(t);
  const api = await e.backend('api');
  const stat = await e.backend('static');
  const web = await e.backend('web');
  const { proxy, client } = await e.proxy();
  proxy.applySnapshot(
    snapshot(1, [
      { name: 'api', hosts: ['api.example.com'], instances: [{ id: 'api', port: api.port }] },
      { name: 'static', pathPrefix: '/static', instances: [{ id: 'static', port: stat.port }] },
      { name: 'web', instances: [{ id: 'web', port: web.port }] },
    ]),
  );
  const cases: [string, string, string][] = [
    ['api.example.com', '/', 'api'],
    ['API.example.com:8443', '/v1/x', 'api'],
    ['api.example.com', '/static/app.js', 'static'], // longer prefix wins over the host-specific '/'
    ['other.example.com', '/static/app.js', 'static'],
    ['other.example.com', '/static', 'static'],
    ['other.example.com', '/static?v=2', 'static'],
    ['other.example.com', '/staticfile', 'web'], // prefixes match on a segment boundary
    ['other.example.com', '/', 'web'],
  ];
  for (const [host, path, want] of cases) {
    const r = await client.json(path, { headers: { host } });
    assert.equal(r.status, 200);
    assert.equal(r.body.name, want, `${host}${path}`);
  }

  proxy.applySnapshot(
    snapshot(2, [{ name: 'api', hosts: ['api.example.com'], instances: [{ id: 'api', port: api.port }] }]),
  );
  const r = await client.req('/', { headers: { host: 'other.example.com' } });
  assert.equal(r.status, 404);
  assert.match(String(r.headers['content-type']), /application\/json/);
  assert.equal(JSON.parse(r.text).error.code, 'NINES_E_NO_ROUTE');
  assert.equal(typeof JSON.parse(r.text).error.message, 'string');
  assert.equal((await client.req('/', { headers: { host: 'api.example.com' } })).status, 200);
});

test('503 NINES_E_NO_HEALTHY_UPSTREAM when no instance is routable', async (t) => {
  const e = env(t);
  const b = await e.backend('a');
  const { proxy, client } = await e.proxy();
  proxy.applySnapshot(snapshot(1, [{ instances: [] }]));
  let r = await client.req('/');
  assert.equal(r.status, 503);
  assert.equal(JSON.parse(r.text).error.code, 'NINES_E_NO_HEALTHY_UPSTREAM');
  proxy.applySnapshot(snapshot(2, [{ instances: [{ id: 'a', port: b.port, state: 'draining' }] }]));
  r = await client.req('/');
  assert.equal(r.status, 503);
  assert.equal(b.hits, 0);
});

test('health checks: fall → no traffic, rise → traffic again', async (t) => {
  const e = env(t);
  const a = await e.backend('a');
  const b = await e.backend('b');
  const { proxy, client } = await e.proxy();
  const reports: ProxyReport[] = [];
  proxy.onReportChange((r) => reports.push(r));
  const health = { ...fastHealth, intervalMs: 20, rise: 2, fall: 2 };
  proxy.applySnapshot(
    snapshot(1, [
      {
        health,
        instances: [
          { id: 'a', port: a.port },
          { id: 'b', port: b.port },
        ],
      },
    ]),
  );
  assert.equal(inst(proxy.report(), 'a').up, true, 'a new instance starts up');
  await waitFor('first probes', () => a.healthChecks > 0 && b.healthChecks > 0);

  a.healthy = false;
  await waitFor('a down', () => !inst(proxy.report(), 'a').up);
  await waitFor('report of a down', () => reports.some((r) => !inst(r, 'a').up));
  const before = a.hits;
  for (let i = 0; i < 20; i++) assert.equal((await client.req('/')).status, 200);
  assert.equal(a.hits, before, 'no traffic to a down instance');
  assert.equal(b.hits, 20);

  a.healthy = true;
  await waitFor('a up again', () => inst(proxy.report(), 'a').up);
  for (let i = 0; i < 20; i++) assert.equal((await client.req('/')).status, 200);
  assert.equal(a.hits, before + 10);
  assert.equal(b.hits, 30);
});

test('drain: in-flight request completes, no new requests, drained only after it finished, pool closed', async (t) => {
  const e = env(t);
  let slowFinishedAt = 0;
  const a = await e.backend('a', (req, res, self) => {
    if (req.url === '/slow') {
      setTimeout(() => {
        res.end('slow done');
        slowFinishedAt = Date.now();
      }, 500);
      return;
    }
    res.end(self.name);
  });
  const b = await e.backend('b');
  const { proxy, client } = await e.proxy();
  let drainedAt = 0;
  proxy.onReportChange((r) => {
    if (drainedAt === 0 && r.instances.find((i) => i.id === 'a')?.drained) drainedAt = Date.now();
  });
  proxy.applySnapshot(snapshot(1, [{ instances: [{ id: 'a', port: a.port }] }]));
  await waitFor('a probed', () => a.healthChecks > 0);
  // a keep-alive connection to a sits idle in the pool from the probe; the slow request opens another
  const slow = client.req('/slow');
  await waitFor('slow request at a', () => a.hits === 1);

  proxy.applySnapshot(
    snapshot(2, [
      {
        instances: [
          { id: 'a', port: a.port, state: 'draining' },
          { id: 'b', port: b.port },
        ],
      },
    ]),
  );
  assert.deepEqual(inst(proxy.report(), 'a'), { id: 'a', up: true, inflight: 1, drained: false });
  for (let i = 0; i < 20; i++) {
    const r = await client.json('/x');
    assert.equal(r.body.name, 'b');
  }
  assert.equal(a.hits, 1, 'no new request to a draining instance');
  await sleep(100);
  assert.equal(inst(proxy.report(), 'a').drained, false, 'not drained while a request is in flight');

  const r = await slow;
  assert.equal(r.status, 200);
  assert.equal(r.text, 'slow done');
  await waitFor('a drained (onReportChange)', () => drainedAt !== 0);
  assert.ok(
    drainedAt >= slowFinishedAt && slowFinishedAt > 0,
    `drained reported after the request finished (${drainedAt} vs ${slowFinishedAt})`,
  );
  assert.deepEqual(inst(proxy.report(), 'a'), { id: 'a', up: true, inflight: 0, drained: true });
  // the proxy's pooled connections to a are closed: a's server has no connection left
  await waitFor('connections to a closed', async () => (await connectionCount(a.server)) === 0);
  const checks = a.healthChecks;
  await sleep(50);
  assert.equal(a.healthChecks, checks, 'no health checks to a drained instance');

  // draining → ready again (a rollback before the app was stopped) reopens it
  proxy.applySnapshot(
    snapshot(3, [
      {
        instances: [
          { id: 'a', port: a.port },
          { id: 'b', port: b.port },
        ],
      },
    ]),
  );
  assert.equal(inst(proxy.report(), 'a').drained, false);
  const names = new Set<string>();
  for (let i = 0; i < 4; i++) names.add((await client.req('/x')).text.includes('"b"') ? 'b' : 'a');
  assert.deepEqual([...names].sort(), ['a', 'b']);
});

test('an instance removed from the snapshot is closed after its in-flight requests', async (t) => {
  const e = env(t);
  const a = await e.backend('a', (_req, res) => {
    setTimeout(() => res.end('late'), 200);
  });
  const b = await e.backend('b');
  const { proxy, client } = await e.proxy();
  proxy.applySnapshot(snapshot(1, [{ instances: [{ id: 'a', port: a.port }] }]));
  const slow = client.req('/slow');
  await waitFor('request at a', () => a.hits === 1);
  proxy.applySnapshot(snapshot(2, [{ instances: [{ id: 'b', port: b.port }] }]));
  assert.deepEqual(
    proxy.report().instances.map((i) => i.id),
    ['b'],
  );
  assert.equal((await slow).text, 'late');
  await waitFor('connections to a closed', async () => (await connectionCount(a.server)) === 0);
});

test('retry: a refused instance under 500 sequential+concurrent GETs costs 0 failed requests', async (t) => {
  const e = env(t);
  const bs = [await e.backend('a'), await e.backend('b'), await e.backend('c')];
  const { proxy, client } = await e.proxy();
  proxy.applySnapshot(snapshot(1, [{ instances: bs.map((b) => ({ id: b.name, port: b.port })) }]));
  let done = 0;
  let failed = 0;
  const statuses = new Map<number, number>();
  let killed = false;
  const deadline = Date.now() + 20_000;
  const worker = async () => {
    for (let i = 0; i < 50 && Date.now() < deadline; i++) {
      try {
        const r = await client.req(`/w${i}`);
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        if (r.status !== 200) failed++;
      } catch {
        failed++;
      }
      done++;
      if (done === 60 && !killed) {
        killed = true;
        await bs[1]!.close(); // refuses connections from now on; its pooled sockets are reset
      }
    }
  };
  await Promise.all(Array.from({ length: 10 }, worker));
  assert.equal(done, 500);
  assert.equal(failed, 0, `statuses: ${JSON.stringify([...statuses])}`);
  assert.equal(inst(proxy.report(), 'b').up, false, 'passively ejected');
  assert.equal(inst(proxy.report(), 'a').up, true);
});

test('reset before any response byte: GET is retried elsewhere, POST gets 502 NINES_E_UPSTREAM_RESET', async (t) => {
  const e = env(t);
  const bad = await e.backend('bad', (req) => {
    req.socket.destroy();
  });
  const good = await e.backend('good');
  const { proxy, client } = await e.proxy();
  proxy.applySnapshot(
    snapshot(1, [
      {
        instances: [
          { id: 'bad', port: bad.port },
          { id: 'good', port: good.port },
        ],
      },
    ]),
  );
  for (let i = 0; i < 10; i++) {
    const r = await client.json('/g');
    assert.equal(r.status, 200);
    assert.equal(r.body.name, 'good');
  }
  assert.ok(bad.hits >= 5, 'the bad instance was tried');
  assert.equal(inst(proxy.report(), 'bad').up, true, 'a reset after connecting does not eject');

  proxy.applySnapshot(snapshot(2, [{ instances: [{ id: 'bad', port: bad.port }] }]));
  const post = await client.req('/p', { method: 'POST', body: 'payload' });
  assert.equal(post.status, 502);
  assert.equal(JSON.parse(post.text).error.code, 'NINES_E_UPSTREAM_RESET');
  const hits = bad.hits;
  const get = await client.req('/g');
  assert.equal(get.status, 502, 'no other instance to retry on');
  assert.equal(JSON.parse(get.text).error.code, 'NINES_E_UPSTREAM_RESET');
  assert.equal(bad.hits, hits + 1, 'never retried on the same instance');
});

test('connection refused on the only instance: 502 NINES_E_UPSTREAM_CONNECT, ejected, then 503', async (t) => {
  const e = env(t);
  const b = await e.backend('a');
  await b.close();
  const { proxy, client } = await e.proxy();
  proxy.applySnapshot(snapshot(1, [{ instances: [{ id: 'a', port: b.port }] }]));
  const r = await client.req('/');
  assert.equal(r.status, 502);
  assert.equal(JSON.parse(r.text).error.code, 'NINES_E_UPSTREAM_CONNECT');
  assert.equal(inst(proxy.report(), 'a').up, false);
  const r2 = await client.req('/');
  assert.equal(r2.status, 503);
});

test('upstream header timeout: 504 NINES_E_UPSTREAM_TIMEOUT', async (t) => {
  const e = env(t);
  const b = await e.backend('mute', () => {});
  const { proxy, client } = await e.proxy({ upstreamHeadersTimeoutMs: 200 });
  proxy.applySnapshot(snapshot(1, [{ instances: [{ id: 'mute', port: b.port }] }]));
  const started = Date.now();
  const r = await client.req('/');
  assert.equal(r.status, 504);
  assert.equal(JSON.parse(r.text).error.code, 'NINES_E_UPSTREAM_TIMEOUT');
  assert.ok(Date.now() - started < 2000);
  assert.equal(b.hits, 1, 'a timeout is not retried');
});

test('client disconnect mid-response aborts the upstream request (no pool leak)', async (t) => {
  const e = env(t);
  let aborted = 0;
  const chunk = Buffer.alloc(64 * 1024, 120);
  const b = await e.backend('stream', (req, res, self) => {
    if (req.url !== '/stream') {
      res.end(self.name);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    let sent = 0;
    const pump = () => {
      while (sent < 200 * 1024 * 1024 && !res.destroyed) {
        sent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    res.on('close', () => {
      if (!res.writableFinished) aborted++;
    });
    pump();
  });
  const { proxy, client } = await e.proxy();
  proxy.applySnapshot(snapshot(1, [{ instances: [{ id: 's', port: b.port }] }]));
  for (let i = 0; i < 20; i++) {
    await new Promise<void>((resolve, reject) => {
      const sock = connect(proxy.port, '127.0.0.1', () =>
        sock.write('GET /stream HTTP/1.1\r\nHost: x\r\n\r\n'),
      );
      sock.once('data', () => sock.destroy());
      sock.on('close', () => resolve());
      sock.on('error', reject);
    });
  }
  await waitFor('upstream responses aborted', () => aborted === 20);
  await waitFor('in-flight back to 0', () => inst(proxy.report(), 's').inflight === 0);
  const results = await Promise.all(Array.from({ length: 50 }, () => client.req('/ok')));
  assert.ok(results.every((r) => r.status === 200 && r.text === 'stream'));
});

test('streams request and response bodies both ways (content-length and chunked)', async (t) => {
  const e = env(t);
  const big = Buffer.alloc(5 * 1024 * 1024, 97);
  const b = await e.backend('a', (req, res, self) => {
    if (req.url === '/big') {
      res.end(big);
      return;
    }
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
    });
    req.on('end', () =>
      res.end(JSON.stringify({ name: self.name, n, te: req.headers['transfer-encoding'] ?? null })),
    );
  });
  const { proxy, client } = await e.proxy();
  proxy.applySnapshot(snapshot(1, [{ instances: [{ id: 'a', port: b.port }] }]));
  const up = await client.json('/up', { method: 'POST', body: Buffer.alloc(2 * 1024 * 1024, 98) });
  assert.deepEqual(up.body, { name: 'a', n: 2 * 1024 * 1024, te: null });
  const res = await client.pool.request({
    path: '/up',
    method: 'PUT',
    body: Readable.from([Buffer.alloc(1000), Buffer.alloc(2000)]),
  });
  // (undici may send a content-length when the whole chunked body already arrived; either is fine)
  assert.equal(((await res.body.json()) as { n: number }).n, 3000);
  const down = await client.pool.request({ path: '/big', method: 'GET' });
  const got = Buffer.from(await down.body.arrayBuffer());
  assert.equal(got.length, big.length);
  assert.ok(got.equals(big));
});

test('snapshot cache: a new proxy with the cache file serves without any applySnapshot', async (t) => {
  const e = env(t);
  const dir = mkdtempSync(join(tmpdir(), 'nines-proxy-'));
  e.defer(async () => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'snapshot.json');
  const b = await e.backend('a');
  const first = new NinesProxy({
    host: '127.0.0.1',
    port: 0,
    proxyId: 'p1',
    logger: silentLogger,
    snapshotCacheFile: file,
  });
  await first.listen();
  first.applySnapshot(snapshot(7, [{ instances: [{ id: 'a', port: b.port }] }]));
  await first.close(); // waits for the cache write
  assert.equal(JSON.parse(readFileSync(file, 'utf8')).version, 7);

  const { proxy, client } = await e.proxy({ snapshotCacheFile: file });
  assert.equal(proxy.report().appliedVersion, 7);
  const r = await client.json('/');
  assert.equal(r.status, 200);
  assert.equal(r.body.name, 'a');
  // an older snapshot from a confused controller does not replace it
  proxy.applySnapshot(snapshot(3, [{ instances: [] }]));
  assert.equal((await client.req('/')).status, 200);

  // a corrupt cache is ignored: the proxy starts with no routes instead of failing
  writeFileSync(file, '{"version": "x"');
  const third = await e.proxy({ snapshotCacheFile: file });
  assert.equal(third.proxy.report().appliedVersion, 0);
  assert.equal((await third.client.req('/')).status, 404);
});

test('applySnapshot: same version is a no-op, older ignored, instances keep health state across versions', async (t) => {
  const e = env(t);
  const a = await e.backend('a');
  const b = await e.backend('b');
  await a.close(); // a refuses: the first request ejects it
  const { proxy, client } = await e.proxy();
  let changes = 0;
  proxy.onReportChange(() => changes++);
  const v1 = snapshot(1, [
    {
      instances: [
        { id: 'a', port: a.port },
        { id: 'b', port: b.port },
      ],
    },
  ]);
  proxy.applySnapshot(v1);
  for (let i = 0; i < 4; i++) assert.equal((await client.req('/')).status, 200);
  assert.equal(inst(proxy.report(), 'a').up, false);
  await sleep(20);
  const seen = changes;
  proxy.applySnapshot(v1);
  await sleep(20);
  assert.equal(changes, seen, 'the same snapshot again changes nothing');

  const v2 = snapshot(2, [
    {
      instances: [
        { id: 'a', port: a.port },
        { id: 'b', port: b.port },
      ],
    },
    { name: 'other', hosts: ['other.test'], instances: [{ id: 'b', port: b.port }] },
  ]);
  proxy.applySnapshot(v2);
  assert.equal(proxy.report().appliedVersion, 2);
  assert.equal(inst(proxy.report(), 'a').up, false, 'health state kept across snapshots');
  proxy.applySnapshot(v1);
  assert.equal(proxy.report().appliedVersion, 2, 'older snapshot ignored');
  assert.equal((await client.req('/', { headers: { host: 'other.test' } })).status, 200);
});

test('access log file: pino-format JSON lines (hand-built on the hot path), flushed on close', async (t) => {
  const e = env(t);
  const b = await e.backend('a');
  const dir = mkdtempSync(join(tmpdir(), 'nines-access-'));
  e.defer(async () => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'access.log');
  const { proxy, client } = await e.proxy({ accessLogFile: file, proxyId: 'p"1' });
  proxy.applySnapshot(snapshot(1, [{ name: 'web', instances: [{ id: 'a', port: b.port }] }]));
  await client.req('/q?x="\\', { headers: { 'x-request-id': 'rid"\\1', host: 'h.test' } });
  await client.req('/nope', { method: 'POST', body: 'x' });
  await proxy.close();
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  assert.equal(lines.length, 2);
  const first = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.deepEqual(Object.keys(first), [
    'level',
    'time',
    'proxy',
    'reqId',
    'method',
    'url',
    'host',
    'client',
    'status',
    'service',
    'instance',
    'attempts',
    'ms',
    'msg',
  ]);
  assert.equal(first.level, 30);
  assert.ok(Math.abs((first.time as number) - Date.now()) < 60_000);
  assert.equal(first.proxy, 'p"1');
  assert.equal(first.reqId, 'rid"\\1');
  assert.equal(first.url, '/q?x="\\');
  assert.equal(first.host, 'h.test');
  assert.equal(first.client, '127.0.0.1');
  assert.equal(first.status, 200);
  assert.equal(first.service, 'web');
  assert.equal(first.instance, 'a');
  assert.equal(first.attempts, 1);
  assert.equal(typeof first.ms, 'number');
  assert.equal(first.msg, 'access');
  const second = JSON.parse(lines[1]!) as Record<string, unknown>;
  assert.equal(second.method, 'POST');
  assert.equal(second.status, 200);
});

test('access log: one JSON line per request through pino when enabled, none otherwise', async (t) => {
  const e = env(t);
  const b = await e.backend('a');
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  const logger = pino({ level: 'info' }, sink);
  const { proxy, client } = await e.proxy({ logger, accessLog: true });
  proxy.applySnapshot(snapshot(1, [{ name: 'web', instances: [{ id: 'a', port: b.port }] }]));
  await client.req('/hello?x=1', { headers: { 'x-request-id': 'rid-1' } });
  await client.req('/', { headers: { host: 'nowhere' } });
  proxy.applySnapshot(
    snapshot(2, [{ name: 'web', hosts: ['only.test'], instances: [{ id: 'a', port: b.port }] }]),
  );
  await client.req('/', { headers: { host: 'nowhere' } });
  await waitFor('log lines', () => lines.filter((l) => l.msg === 'access').length === 3);
  const access = lines.filter((l) => l.msg === 'access');
  assert.equal(access[0]!.reqId, 'rid-1');
  assert.equal(access[0]!.status, 200);
  assert.equal(access[0]!.url, '/hello?x=1');
  assert.equal(access[0]!.service, 'web');
  assert.equal(access[0]!.instance, 'a');
  assert.equal(typeof access[0]!.ms, 'number');
  assert.equal(access[2]!.status, 404);
  assert.equal(access[2]!.code, 'NINES_E_NO_ROUTE');

  const quiet: string[] = [];
  const quietLogger = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        quiet.push(chunk.toString('utf8'));
        cb();
      },
    }),
  );
  const second = await e.proxy({ logger: quietLogger });
  second.proxy.applySnapshot(snapshot(1, [{ instances: [{ id: 'a', port: b.port }] }]));
  await second.client.req('/');
  await sleep(20);
  assert.ok(!quiet.some((l) => l.includes('"msg":"access"')));
});

test('an instance that goes down while requests wait on it: GETs move to another instance, POSTs do not', async (t) => {
  const e = env(t);
  // `dead` accepts requests and never answers, like a host whose links were cut after the connect.
  const dead = await e.backend('dead', () => {});
  const good = await e.backend('good');
  const { proxy, client } = await e.proxy({ upstreamHeadersTimeoutMs: 3000 });
  const health = { ...fastHealth, intervalMs: 100, timeoutMs: 200, rise: 1, fall: 1 };
  proxy.applySnapshot(
    snapshot(1, [
      {
        health,
        balance: 'round-robin',
        instances: [
          { id: 'dead', port: dead.port },
          { id: 'good', port: good.port },
        ],
      },
    ]),
  );
  await waitFor('both up', () => inst(proxy.report(), 'dead').up && inst(proxy.report(), 'good').up);
  const started = Date.now();
  const gets = Array.from({ length: 6 }, (_, i) => client.json(`/g${i}`));
  const post = client.req('/p', { method: 'POST', body: 'x' });
  await waitFor('requests waiting on dead', () => dead.hits >= 3);
  dead.healthy = false; // the next check fails: down
  const answers = await Promise.all(gets);
  assert.deepEqual(
    answers.map((a) => [a.status, a.body.name]),
    Array.from({ length: 6 }, () => [200, 'good']),
  );
  assert.ok(Date.now() - started < 5000, 'moved when the instance went down, not at the headers timeout');
  const p = await post;
  // The POST went to one of the two; on `dead` it waits for the headers timeout (never re-sent).
  if (p.status !== 200) assert.equal(JSON.parse(p.text).error.code, 'NINES_E_UPSTREAM_TIMEOUT');
});

test('instances lost together: a reset is retried on a new connection, so the next dead one is redispatched', async (t) => {
  const e = env(t);
  const dead = new Set<string>();
  const handler = (req: IncomingMessage, res: ServerResponse, b: Backend): void => {
    if (dead.has(b.name)) req.socket.destroy();
    else echo(req, res, b);
  };
  const a = await e.backend('a', handler);
  const b = await e.backend('b', handler);
  const c = await e.backend('c', handler);
  const { proxy, client } = await e.proxy();
  proxy.applySnapshot(
    snapshot(1, [
      {
        balance: 'round-robin',
        health: { ...fastHealth, intervalMs: 60_000 },
        instances: [
          { id: 'a', port: a.port },
          { id: 'b', port: b.port },
          { id: 'c', port: c.port },
        ],
      },
    ]),
  );
  // Every instance gets an idle keep-alive connection in the proxy's pools.
  for (let i = 0; i < 6; i++) assert.equal((await client.req('/warm')).status, 200);
  // a and b die together (a host): new connections are refused, and their pooled sockets reset on the
  // next request (the race a real kill leaves: a request written before the FIN was read). net's close
  // stops listening without closing the idle connections, as http's close (Node >= 19) would.
  dead.add('a');
  dead.add('b');
  NetServer.prototype.close.call(a.server);
  NetServer.prototype.close.call(b.server);
  for (let i = 0; i < 12; i++) {
    const r = await client.req('/g');
    assert.equal(r.status, 200, r.text);
  }
});
