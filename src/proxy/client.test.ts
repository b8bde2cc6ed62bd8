import assert from 'node:assert/strict';
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { ClientCode, type Exchange, HealthCheck, type UpstreamConn, UpstreamPool } from './client.js';
import { sleep, waitFor } from './test-helpers.js';

/** A raw TCP upstream: each request head (up to the blank line) is answered by `respond`. */
interface Raw {
  port: number;
  server: Server;
  /** Connections accepted so far. */
  connections: number;
  open: Set<Socket>;
  heads: string[];
  close(): Promise<void>;
}

type Respond = (sock: Socket, head: string, conn: number) => void;

async function raw(respond: Respond): Promise<Raw> {
  const r: Raw = {
    port: 0,
    connections: 0,
    open: new Set(),
    heads: [],
    server: createServer((sock) => {
      const n = ++r.connections;
      r.open.add(sock);
      sock.on('close', () => r.open.delete(sock));
      sock.on('error', () => {});
      let buf = '';
      sock.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        for (let end = buf.indexOf('\r\n\r\n'); end !== -1; end = buf.indexOf('\r\n\r\n')) {
          const head = buf.slice(0, end);
          buf = buf.slice(end + 4);
          r.heads.push(head);
          respond(sock, head, n);
        }
      });
    }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of r.open) s.destroy();
        r.server.close(() => resolve());
      }),
  };
  await new Promise<void>((resolve) => r.server.listen(0, '127.0.0.1', resolve));
  r.port = (r.server.address() as AddressInfo).port;
  return r;
}

interface Result {
  status: number;
  headers: string[];
  body: string;
  connected: boolean;
  error: (Error & { code?: string }) | null;
}

/** An Exchange that collects the answer. */
class Collect implements Exchange {
  readonly method: string;
  readonly path: string;
  readonly headers: string[];
  readonly body: IncomingMessage | null;
  readonly headersTimeoutMs = 0;
  readonly result: Promise<Result>;
  conn: UpstreamConn | null = null;
  pauseFirst = false;
  private resolve!: (r: Result) => void;
  private readonly r: Result = { status: 0, headers: [], body: '', connected: false, error: null };
  private readonly chunks: Buffer[] = [];

  constructor(method: string, path: string, headers: string[] = [], body: IncomingMessage | null = null) {
    this.method = method;
    this.path = path;
    this.headers = headers;
    this.body = body;
    this.result = new Promise((resolve) => {
      this.resolve = resolve;
    });
  }

  onConnect(conn: UpstreamConn): void {
    this.conn = conn;
    this.r.connected = true;
  }

  onHeaders(status: number, headers: string[]): boolean {
    this.r.status = status;
    this.r.headers = headers;
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.chunks.push(Buffer.from(chunk));
    if (this.pauseFirst) {
      this.pauseFirst = false;
      setTimeout(() => this.conn?.resume(), 50);
      return false;
    }
    return true;
  }

  onComplete(last: Buffer | null): void {
    if (last !== null) this.chunks.push(Buffer.from(last));
    this.r.body = Buffer.concat(this.chunks).toString('latin1');
    this.resolve(this.r);
  }

  onError(err: Error): void {
    this.r.error = err;
    this.r.body = Buffer.concat(this.chunks).toString('latin1');
    this.resolve(this.r);
  }
}

function pool(port: number, over: Partial<ConstructorParameters<typeof UpstreamPool>[0]> = {}): UpstreamPool {
  return new UpstreamPool({
    host: '127.0.0.1',
    port,
    connectTimeoutMs: 1000,
    headersTimeoutMs: 2000,
    bodyTimeoutMs: 2000,
    ...over,
  });
}

function get(p: UpstreamPool, path = '/', method = 'GET'): Promise<Result> {
  const ex = new Collect(method, path, ['x-test', '1']);
  p.dispatch(ex);
  return ex.result;
}

/** Writes `text` one byte per event-loop turn, so the parser sees every split. */
async function trickle(sock: Socket, text: string): Promise<void> {
  for (const ch of text) {
    if (sock.destroyed) return;
    sock.write(ch, 'latin1');
    await sleep(1);
  }
}

test('chunked body split at every byte, with extensions and trailers; 1xx skipped; connection reused', async (t) => {
  const up = await raw((sock, head) => {
    void trickle(
      sock,
      head.startsWith('GET /a')
        ? 'HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A:  spaced  \r\n\r\n' +
            '5;ext=1\r\nhello\r\nA\r\n, world!!!\r\n0\r\nX-Trailer: t\r\n\r\n'
        : 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc',
    );
  });
  const p = pool(up.port);
  t.after(async () => {
    await p.destroy();
    await up.close();
  });
  const a = await get(p, '/a');
  assert.equal(a.error, null);
  assert.equal(a.status, 200);
  assert.equal(a.body, 'hello, world!!!');
  assert.deepEqual(a.headers, ['Transfer-Encoding', 'chunked', 'X-A', 'spaced']);
  const b = await get(p, '/b');
  assert.equal(b.body, 'abc');
  assert.equal(up.connections, 1, 'one keep-alive connection for both');
  assert.match(up.heads[0]!, /^GET \/a HTTP\/1\.1\r\nx-test: 1\r\nhost: 127\.0\.0\.1:\d+$/);
});

test('responses without a body (HEAD, 204, 304) and bodies that end with the connection', async (t) => {
  const up = await raw((sock, head) => {
    if (head.startsWith('HEAD')) sock.write('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n');
    else if (head.startsWith('GET /204')) sock.write('HTTP/1.1 204 No Content\r\n\r\n');
    else if (head.startsWith('GET /304'))
      sock.write('HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n');
    else if (head.startsWith('GET /eof')) {
      sock.write('HTTP/1.1 200 OK\r\n\r\nuntil');
      setTimeout(() => sock.end(' the end'), 20);
    } else if (head.startsWith('GET /close'))
      sock.end('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok');
    else sock.write('HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n10');
  });
  const p = pool(up.port);
  t.after(async () => {
    await p.destroy();
    await up.close();
  });
  assert.equal((await get(p, '/', 'HEAD')).status, 200);
  assert.equal((await get(p, '/204')).status, 204);
  const nm = await get(p, '/304');
  assert.equal(nm.status, 304);
  assert.equal(nm.body, '');
  assert.equal(up.connections, 1, 'reused through bodiless answers');
  const eof = await get(p, '/eof');
  assert.equal(eof.error, null);
  assert.equal(eof.body, 'until the end');
  assert.equal(p.size, 0, 'an until-close connection is not reused');
  const c = await get(p, '/close');
  assert.equal(c.body, 'ok');
  const h10 = await get(p, '/h10');
  assert.equal(h10.body, '10');
  await waitFor('HTTP/1.0 and Connection: close are not kept', () => p.size === 0);
  assert.equal(up.connections, 3, '/eof reused the first; /close and /h10 one each');
});

test('errors: refused, closed before the answer, malformed head, headers timeout, bad chunk', async (t) => {
  const closed = await raw(() => {});
  await closed.close();
  const refused = pool(closed.port);
  const r = await get(refused);
  assert.equal(r.connected, false, 'a connect failure');
  assert.equal(r.error?.code, 'ECONNREFUSED');

  const up = await raw((sock, head) => {
    if (head.startsWith('GET /reset')) sock.destroy();
    else if (head.startsWith('GET /garbage')) sock.write('SMTP ready\r\n\r\n');
    else if (head.startsWith('GET /chunk'))
      sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n');
    else if (head.startsWith('GET /short')) sock.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
    // /mute: never answers
  });
  const p = pool(up.port, { headersTimeoutMs: 150 });
  t.after(async () => {
    await refused.destroy();
    await p.destroy();
    await up.close();
  });
  const reset = await get(p, '/reset');
  assert.equal(reset.connected, true);
  assert.equal(reset.error?.code, ClientCode.Closed);
  assert.equal((await get(p, '/garbage')).error?.code, ClientCode.BadResponse);
  const chunk = await get(p, '/chunk');
  assert.equal(chunk.status, 200);
  assert.equal(chunk.error?.code, ClientCode.BadResponse);
  const short = await get(p, '/short');
  assert.equal(short.body, 'abc');
  assert.equal(short.error?.code, ClientCode.Closed, 'a body cut short is an error');
  const started = Date.now();
  const mute = await get(p, '/mute');
  assert.equal(mute.error?.code, ClientCode.HeadersTimeout);
  assert.ok(Date.now() - started < 1500);
  await waitFor('every failed connection closed', () => p.size === 0 && up.open.size === 0);
});

test('keep-alive: an idle connection the server closed is dropped; the Keep-Alive hint shortens the idle time', async (t) => {
  const up = await raw((sock, head, n) => {
    if (head.startsWith('GET /bye')) {
      sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      setTimeout(() => sock.end(), 20);
    } else
      sock.write(
        `HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\nContent-Length: ${String(n).length}\r\n\r\n${n}`,
      );
  });
  const p = pool(up.port, { keepAliveMs: 60_000 });
  t.after(async () => {
    await p.destroy();
    await up.close();
  });
  assert.equal((await get(p, '/bye')).body, 'ok');
  await waitFor('closed by the server, removed', () => p.size === 0);
  assert.equal((await get(p, '/x')).body, '2', 'a new connection');
  assert.equal((await get(p, '/x')).body, '2', 'reused');
  await waitFor(
    'closed after the hinted idle time (1 s - 1 s, at least 500 ms)',
    () => up.open.size === 0,
    5000,
  );
  assert.equal(p.size, 0);
});

test('request bodies: content-length as is, otherwise chunked; backpressure on the response', async (t) => {
  const big = 'x'.repeat(300_000);
  const server = createHttpServer((req, res) => {
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
    });
    req.on('end', () => {
      if (req.url === '/big') res.end(big);
      else res.end(JSON.stringify({ n, te: req.headers['transfer-encoding'] ?? null }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const p = pool(port);
  t.after(async () => {
    await p.destroy();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  const body = (parts: string[]) =>
    Readable.from(parts.map((s) => Buffer.from(s))) as unknown as IncomingMessage;
  const cl = new Collect('POST', '/', ['content-length', '6'], body(['abc', 'def']));
  p.dispatch(cl);
  assert.deepEqual(JSON.parse((await cl.result).body), { n: 6, te: null });
  const ch = new Collect('POST', '/', [], body(['abc', 'defgh', '']));
  p.dispatch(ch);
  assert.deepEqual(JSON.parse((await ch.result).body), { n: 8, te: 'chunked' });
  const slow = new Collect('GET', '/big');
  slow.pauseFirst = true;
  p.dispatch(slow);
  assert.equal((await slow.result).body.length, big.length);
  assert.equal(p.size, 1, 'every exchange on one connection');
});

test('close() lets the running exchange finish, then closes; destroy() fails it; health check', async (t) => {
  const up = await raw((sock, head) => {
    if (head.startsWith('GET /slow'))
      setTimeout(() => sock.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1'), 100);
    else if (head.startsWith('GET /bad')) sock.write('HTTP/1.1 503 No\r\nContent-Length: 0\r\n\r\n');
    else if (head.startsWith('GET /ok')) sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  });
  t.after(() => up.close());
  const p = pool(up.port);
  assert.equal(await new HealthCheck(p, '/ok', 500).run(), true);
  assert.equal(await new HealthCheck(p, '/bad', 500).run(), false);
  const started = Date.now();
  assert.equal(await new HealthCheck(p, '/mute', 100).run(), false);
  assert.ok(Date.now() - started < 1000);
  const slow = get(p, '/slow');
  await sleep(20);
  const closed = p.close();
  assert.equal((await get(p, '/ok')).error?.code, ClientCode.PoolClosed);
  assert.equal((await slow).body, '1');
  await closed;
  assert.equal(p.size, 0);
  await waitFor('upstream sees no connection', () => up.open.size === 0);

  const q = pool(up.port);
  const pending = get(q, '/slow');
  await sleep(20);
  await q.destroy();
  assert.equal((await pending).error?.code, ClientCode.PoolClosed);
});
