import assert from 'node:assert/strict';
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { NinesError } from '../core/errors.js';
import { LatencyHistogram, startLoad } from './loadgen.js';

const servers: Server[] = [];

async function serve(handler: RequestListener): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return `http://127.0.0.1:${port}/`;
}

after(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
});

describe('LatencyHistogram', () => {
  test('quantiles within a few percent, max exact', () => {
    const h = new LatencyHistogram();
    for (let i = 1; i <= 10_000; i++) h.recordMs(i / 10); // 0.1 .. 1000 ms, uniform
    assert.equal(h.count, 10_000);
    const near = (got: number, want: number) =>
      assert.ok(Math.abs(got - want) / want < 0.04, `got ${got}, want ≈${want}`);
    near(h.quantileMs(0.5), 500);
    near(h.quantileMs(0.9), 900);
    near(h.quantileMs(0.99), 990);
    assert.equal(h.maxMs(), 1000);
  });

  test('empty histogram reports zeros; tiny values are exact', () => {
    const h = new LatencyHistogram();
    assert.equal(h.quantileMs(0.5), 0);
    h.recordMs(0.005);
    assert.equal(h.quantileMs(0.5), 0.005);
  });
});

describe('startLoad', () => {
  test('all ok against a 200 server, with latency and a bounded count', async () => {
    const url = await serve((_req, res) => res.end('hello'));
    const r = await startLoad({ url, connections: 4, rate: 500, maxRequests: 100 }).done;
    assert.equal(r.sent, 100);
    assert.equal(r.ok, 100);
    assert.equal(r.failed, 0);
    assert.deepEqual(r.byStatus, { '200': 100 });
    assert.deepEqual(r.errors, {});
    assert.deepEqual(r.firstFailures, []);
    assert.ok(
      r.latencyMs.p50 > 0 && r.latencyMs.p50 <= r.latencyMs.p99 && r.latencyMs.p99 <= r.latencyMs.max,
    );
  });

  test('non-2xx answers are failed, with status and body in firstFailures', async () => {
    let n = 0;
    const url = await serve((_req, res) => {
      n += 1;
      if (n % 2 === 0) {
        res.statusCode = 500;
        res.end('boom');
      } else res.end('fine');
    });
    const r = await startLoad({ url, connections: 1, rate: 1000, maxRequests: 40 }).done;
    assert.equal(r.sent, 40);
    assert.equal(r.ok, 20);
    assert.equal(r.failed, 20);
    assert.deepEqual(r.byStatus, { '200': 20, '500': 20 });
    assert.equal(r.firstFailures.length, 20);
    assert.equal(r.firstFailures[0]?.status, 500);
    assert.equal(r.firstFailures[0]?.body, 'boom');
  });

  test('resets and truncated bodies are failed', async () => {
    let n = 0;
    const url = await serve((req, res) => {
      n += 1;
      if (n % 3 === 1) {
        req.socket.destroy(); // reset before any answer
      } else if (n % 3 === 2) {
        res.writeHead(200, { 'content-length': '100' });
        res.write('only part');
        setTimeout(() => req.socket.destroy(), 5); // body cut short
      } else res.end('ok');
    });
    const r = await startLoad({ url, connections: 2, rate: 300, maxRequests: 30, timeoutMs: 2000 }).done;
    assert.equal(r.sent, 30);
    assert.equal(r.ok + r.failed, 30);
    assert.equal(r.ok, 10);
    assert.equal(r.failed, 20);
    const errorCount = Object.values(r.errors).reduce((a, b) => a + b, 0);
    assert.equal(errorCount, 20);
    assert.ok(r.firstFailures.every((f) => typeof f.error === 'string'));
  });

  test('a refused connection is failed, not thrown', async () => {
    const url = await serve((_req, res) => res.end());
    const s = servers.pop()!;
    await new Promise<void>((resolve) => s.close(() => resolve()));
    const r = await startLoad({ url, connections: 2, rate: 200, maxRequests: 5 }).done;
    assert.equal(r.sent, 5);
    assert.equal(r.failed, 5);
    assert.ok((r.errors.ECONNREFUSED ?? 0) >= 1, JSON.stringify(r.errors));
  });

  test('a silent server times out', async () => {
    const url = await serve(() => {
      // never answers
    });
    const r = await startLoad({ url, connections: 2, rate: 100, maxRequests: 3, timeoutMs: 200 }).done;
    assert.equal(r.failed, 3);
    assert.deepEqual(r.errors, { TIMEOUT: 3 });
    assert.ok(r.durationMs >= 200 && r.durationMs < 2000, String(r.durationMs));
  });

  test('the rate is roughly honoured (open loop) and durationMs bounds it', async () => {
    const url = await serve((_req, res) => res.end('x'));
    const r = await startLoad({ url, connections: 8, rate: 200, durationMs: 1000 }).done;
    assert.equal(r.failed, 0);
    assert.ok(r.sent >= 180 && r.sent <= 202, `sent ${r.sent}`);
    assert.ok(r.durationMs >= 990 && r.durationMs < 1500, `durationMs ${r.durationMs}`);
  });

  test('open loop: a slow server does not slow the sender', async () => {
    const url = await serve((_req, res) => setTimeout(() => res.end('slow'), 100));
    // 2 connections × 10 req/s each at most if closed-loop; open loop sends 100 req/s regardless.
    const r = await startLoad({ url, connections: 2, rate: 100, durationMs: 500 }).done;
    assert.ok(r.sent >= 45, `sent ${r.sent}`);
    assert.equal(r.ok, r.sent);
    assert.ok(r.latencyMs.max > 500, `queueing shows in latency: ${r.latencyMs.max}`);
  });

  test('stop() ends early and waits for in-flight requests; progress() counts', async () => {
    const url = await serve((_req, res) => setTimeout(() => res.end('x'), 50));
    const h = startLoad({ url, connections: 4, rate: 100, durationMs: 60_000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const p = h.progress();
    assert.ok(p.sent > 10 && p.ok > 0, JSON.stringify(p));
    const r = await h.stop();
    assert.equal(r.ok + r.failed, r.sent);
    assert.equal(r.failed, 0);
    assert.ok(r.durationMs < 1000);
    assert.equal(await h.done, r);
    assert.equal(await h.stop(), r);
  });

  test('classify counts classes and orders them on a timeline', async () => {
    let n = 0;
    const url = await serve((_req, res) => {
      n += 1;
      res.end(n <= 30 ? 'v1' : 'v2');
    });
    const r = await startLoad({
      url,
      connections: 1,
      rate: 400,
      maxRequests: 60,
      classify: (status, body) => (status === 200 ? body.trim() : `status-${status}`),
    }).done;
    assert.deepEqual(r.classes, { v1: 30, v2: 30 });
    assert.deepEqual(
      r.timeline.map((t) => t.cls),
      ['v1', 'v2'],
    );
    const [v1, v2] = r.timeline;
    assert.ok(v1 && v2);
    assert.ok(v1.first <= v1.last && v1.last <= v2.first && v2.first <= v2.last, JSON.stringify(r.timeline));
  });

  test('method and headers are sent', async () => {
    const seen: string[] = [];
    const url = await serve((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers['x-drill']}`);
      res.end();
    });
    const r = await startLoad({
      url: `${url}path?q=1`,
      connections: 1,
      rate: 100,
      maxRequests: 2,
      method: 'post',
      headers: { 'x-drill': 'yes' },
    }).done;
    assert.equal(r.ok, 2);
    assert.deepEqual(seen, ['POST /path?q=1 yes', 'POST /path?q=1 yes']);
  });

  test('bad options are refused with NINES_E_VALIDATION', () => {
    const base = { url: 'http://127.0.0.1:1/', connections: 1, rate: 1, maxRequests: 1 };
    for (const o of [
      { ...base, url: 'nope' },
      { ...base, connections: 0 },
      { ...base, rate: 0 },
      { url: base.url, connections: 1, rate: 1 },
      { ...base, timeoutMs: -1 },
    ]) {
      assert.throws(
        () => startLoad(o),
        (e: unknown) => e instanceof NinesError && e.code === 'NINES_E_VALIDATION',
      );
    }
  });
});
