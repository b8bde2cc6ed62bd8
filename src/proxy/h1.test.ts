import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { type EchoBody, snapshot, testEnv, waitFor } from './test-helpers.js';

/** A raw client connection: what it received so far, and whether the proxy closed it. */
interface Raw {
  socket: Socket;
  data(): string;
  closed(): boolean;
  send(s: string | Buffer): void;
}

async function raw(port: number): Promise<Raw> {
  const socket = connect({ port, host: '127.0.0.1' });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let got = '';
  let closed = false;
  socket.on('data', (d: Buffer) => {
    got += d.toString('latin1');
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    closed = true;
  });
  return {
    socket,
    data: () => got,
    closed: () => closed,
    send: (s) => socket.write(s),
  };
}

/** Complete HTTP/1.1 responses (Content-Length or chunked bodies) found in `s`, in order. */
function responses(s: string): { status: number; headers: Map<string, string>; body: string }[] {
  const out: { status: number; headers: Map<string, string>; body: string }[] = [];
  let i = 0;
  while (i < s.length) {
    const end = s.indexOf('\r\n\r\n', i);
    if (end === -1) break;
    const lines = s.slice(i, end).split('\r\n');
    const status = Number(lines[0]!.split(' ')[1]);
    const headers = new Map<string, string>();
    for (const l of lines.slice(1)) {
      const c = l.indexOf(':');
      headers.set(l.slice(0, c).toLowerCase(), l.slice(c + 1).trim());
    }
    let j = end + 4;
    let body = '';
    if (headers.get('transfer-encoding') === 'chunked') {
      for (;;) {
        const le = s.indexOf('\r\n', j);
        if (le === -1) return out;
        const n = Number.parseInt(s.slice(j, le), 16);
        if (n === 0) {
          j = le + 4;
          break;
        }
        body += s.slice(le + 2, le + 2 + n);
        j = le + 2 + n + 2;
      }
    } else {
      const n = Number(headers.get('content-length') ?? 0);
      if (j + n > s.length) break;
      body = s.slice(j, j + n);
      j += n;
    }
    out.push({ status, headers, body });
    i = j;
  }
  return out;
}

async function setup(
  t: import('node:test').TestContext,
  opts: Parameters<ReturnType<typeof testEnv>['proxy']>[0] = {},
) {
  const env = testEnv(t);
  const b = await env.backend('a');
  const { proxy } = await env.proxy(opts);
  proxy.applySnapshot(snapshot(1, [{ instances: [{ id: 'a', port: b.port }] }]));
  return { env, b, proxy };
}

test('fast path: keep-alive GETs, then a POST with a body moves the connection to node http, which serves the rest', async (t) => {
  const { proxy, b } = await setup(t);
  const c = await raw(proxy.port);
  t.after(() => c.socket.destroy());
  const handoffs = () => Number(/nines_proxy_client_handoffs_total (\d+)/.exec(proxy.metrics())?.[1]);
  c.send('GET /one HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitFor('first answer', () => responses(c.data()).length === 1);
  assert.equal(handoffs(), 0);
  c.send('POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello');
  await waitFor('second answer', () => responses(c.data()).length === 2);
  assert.equal(handoffs(), 1);
  c.send('GET /three HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitFor('third answer', () => responses(c.data()).length === 3);
  const rs = responses(c.data());
  const bodies = rs.map((r) => JSON.parse(r.body) as EchoBody);
  assert.deepEqual(
    bodies.map((x) => [x.method, x.url, x.bodyLength]),
    [
      ['GET', '/one', 0],
      ['POST', '/two', 5],
      ['GET', '/three', 0],
    ],
  );
  assert.ok(rs.every((r) => r.status === 200 && r.headers.get('connection') === 'keep-alive'));
  assert.equal(b.hits, 3);
  assert.equal(c.closed(), false);
});

test('fast path: pipelined requests are answered in order, one at a time', async (t) => {
  const { proxy } = await setup(t);
  const c = await raw(proxy.port);
  t.after(() => c.socket.destroy());
  let batch = '';
  for (let i = 0; i < 20; i++) batch += `GET /p${i} HTTP/1.1\r\nHost: x\r\n\r\n`;
  c.send(batch);
  await waitFor('20 answers', () => responses(c.data()).length === 20);
  const urls = responses(c.data()).map((r) => (JSON.parse(r.body) as EchoBody).url);
  assert.deepEqual(
    urls,
    Array.from({ length: 20 }, (_, i) => `/p${i}`),
  );
});

test('fast path: a request head split at every byte is parsed whole', async (t) => {
  const { proxy } = await setup(t);
  const c = await raw(proxy.port);
  t.after(() => c.socket.destroy());
  const req = 'GET /split?a=1 HTTP/1.1\r\nHost: example.test\r\nX-Thing:  spaced value \r\n\r\n';
  c.socket.setNoDelay(true);
  for (const ch of req) {
    c.send(ch);
    await new Promise((r) => setImmediate(r));
  }
  await waitFor('answer', () => responses(c.data()).length === 1);
  const body = JSON.parse(responses(c.data())[0]!.body) as EchoBody;
  assert.equal(body.url, '/split?a=1');
  assert.equal(body.headers['x-thing'], 'spaced value');
  assert.equal(body.headers['x-forwarded-host'], 'example.test');
});

test('fast path: HEAD gets the head only; Connection: close gets close and an ended connection', async (t) => {
  const { proxy } = await setup(t);
  const c = await raw(proxy.port);
  t.after(() => c.socket.destroy());
  c.send('HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitFor('head answer', () => c.data().includes('\r\n\r\n'));
  const head = c.data();
  assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(head, /content-length: \d+/i);
  assert.ok(head.endsWith('\r\n\r\n'), 'no body after a HEAD answer');
  c.send('GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  await waitFor('closed by the proxy', () => c.closed());
  const last = responses(c.data().slice(head.length));
  assert.equal(last.length, 1);
  assert.equal(last[0]!.headers.get('connection'), 'close');
});

test('fast path: a body without Content-Length is sent chunked; one given whole at the end gets a length', async (t) => {
  const env = testEnv(t);
  const b = await env.backend('s', (req, res) => {
    if (req.url === '/stream') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      let n = 0;
      const tick = setInterval(() => {
        res.write(`part${n}-`);
        if (++n === 5) {
          clearInterval(tick);
          res.end('end');
        }
      }, 5);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('x'.repeat(100_000));
  });
  const { proxy } = await env.proxy();
  proxy.applySnapshot(snapshot(1, [{ instances: [{ id: 's', port: b.port }] }]));
  const c = await raw(proxy.port);
  t.after(() => c.socket.destroy());
  c.send('GET /stream HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitFor('streamed answer', () => responses(c.data()).length === 1);
  const r = responses(c.data())[0]!;
  assert.equal(r.headers.get('transfer-encoding'), 'chunked');
  assert.equal(r.body, 'part0-part1-part2-part3-part4-end');
  const before = c.data().length;
  c.send('GET /big HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitFor('big answer', () => responses(c.data().slice(before)).length === 1, 10_000);
  assert.equal(responses(c.data().slice(before))[0]!.body.length, 100_000);
});

test('fast path: a request head not finished within the headers timeout gets 408 (slowloris)', async (t) => {
  const { proxy } = await setup(t, { clientHeadersTimeoutMs: 300 });
  const c = await raw(proxy.port);
  t.after(() => c.socket.destroy());
  c.send('GET / HTTP/1.1\r\nHost: x\r\n');
  const t0 = Date.now();
  const dripping = setInterval(() => c.send('X-Drip: 1\r\n'), 50);
  t.after(() => clearInterval(dripping));
  await waitFor('cut', () => c.closed(), 5000);
  clearInterval(dripping);
  assert.match(c.data(), /^HTTP\/1\.1 408 /);
  assert.ok(Date.now() - t0 >= 250, 'not before the timeout');
});

test('fast path: an idle keep-alive connection is closed after the idle timeout', async (t) => {
  const { proxy } = await setup(t, { clientIdleTimeoutMs: 300, clientHeadersTimeoutMs: 200 });
  const c = await raw(proxy.port);
  t.after(() => c.socket.destroy());
  c.send('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitFor('answer', () => responses(c.data()).length === 1);
  await waitFor('idle close', () => c.closed(), 3000);
  assert.equal(responses(c.data()).length, 1);
});

test('fast path: oversized head → 431; invalid requests get node http errors (400)', async (t) => {
  const { proxy } = await setup(t, { maxHeaderBytes: 1024 });
  const big = await raw(proxy.port);
  t.after(() => big.socket.destroy());
  big.send(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(2000)}\r\n\r\n`);
  await waitFor('431', () => big.closed());
  assert.match(big.data(), /^HTTP\/1\.1 431 /);
  assert.match(big.data(), /NINES_E_HEADERS_TOO_LARGE/);

  for (const bad of [
    'GET / HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: x\r\nX-Nul: a\0b\r\n\r\n',
    'GET / HTTP/1.1\r\n\r\n', // no Host
    'GET /a b HTTP/1.1\r\nHost: x\r\n\r\n',
  ]) {
    const c = await raw(proxy.port);
    t.after(() => c.socket.destroy());
    c.send(bad);
    await waitFor(`answer to ${JSON.stringify(bad)}`, () => c.closed() || c.data().includes('\r\n\r\n'));
    assert.match(c.data(), /^HTTP\/1\.1 400 /, JSON.stringify(bad));
  }
  assert.match(proxy.metrics(), /nines_proxy_client_handoffs_total 4\n/);
});

test('fast path: Expect 100-continue and HTTP/1.0 are served through node http', async (t) => {
  const { proxy } = await setup(t);
  const c = await raw(proxy.port);
  t.after(() => c.socket.destroy());
  c.send('POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n');
  await waitFor('100 Continue', () => c.data().includes('100 Continue'));
  c.send('abc');
  await waitFor('answer', () => c.data().includes('"bodyLength":3'));
  const old = await raw(proxy.port);
  t.after(() => old.socket.destroy());
  old.send('GET /old HTTP/1.0\r\nHost: x\r\n\r\n');
  await waitFor('1.0 answer and close', () => old.closed());
  assert.match(old.data(), /"url":"\/old"/);
});

test('fast path: a client gone mid-response aborts the upstream request', async (t) => {
  const env = testEnv(t);
  let upstreamClosed = false;
  const b = await env.backend('slow', (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('start');
    req.socket.on('close', () => {
      upstreamClosed = true;
    });
    const tick = setInterval(() => res.write('.'), 20);
    res.on('close', () => clearInterval(tick));
  });
  const { proxy } = await env.proxy();
  proxy.applySnapshot(snapshot(1, [{ instances: [{ id: 'slow', port: b.port }] }]));
  const c = await raw(proxy.port);
  c.send('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitFor('body started', () => c.data().includes('start'));
  c.socket.destroy();
  await waitFor('upstream connection closed', () => upstreamClosed);
  await waitFor('nothing in flight', () => proxy.report().instances.every((i) => i.inflight === 0));
});
