import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { test } from 'node:test';
import type { ProxyReport } from '../core/protocol.js';
import { startLoad } from '../drill/loadgen.js';
import {
  fastHealth,
  type SvcInput,
  sleep,
  snapshot,
  startBackend,
  testEnv,
  waitFor,
} from './test-helpers.js';

function inst(r: ProxyReport, id: string) {
  const s = r.instances.find((i) => i.id === id);
  assert.ok(s, `instance ${id} in report`);
  return s;
}

/** a holds `/hold` requests until released; b answers at once. */
async function holdingPair(e: ReturnType<typeof testEnv>) {
  const held: (() => void)[] = [];
  const a = await e.backend('a', (req, res, self) => {
    if (req.url === '/hold') held.push(() => res.end(self.name));
    else res.end(self.name);
  });
  const b = await e.backend('b', (_req, res, self) => res.end(self.name));
  e.defer(async () => {
    for (const r of held.splice(0)) r();
  });
  return { a, b, held };
}

test('least-connections (default): an instance with requests in flight gets fewer new ones', async (t) => {
  const e = testEnv(t);
  const { a, b, held } = await holdingPair(e);
  const { proxy, client } = await e.proxy();
  const insts = [
    { id: 'a', port: a.port },
    { id: 'b', port: b.port },
  ];
  proxy.applySnapshot(snapshot(1, [{ instances: insts }]));
  const pending = [];
  for (let i = 0; i < 20; i++) pending.push(client.req('/hold'));
  await waitFor('all answered or held', () => a.hits + b.hits === 20);
  await sleep(50);
  assert.ok(a.hits <= 3, `a (slow) got ${a.hits} of 20`);
  for (const r of held.splice(0)) r();
  await Promise.all(pending);

  // The same with round-robin: a gets its half whatever its load.
  proxy.applySnapshot(snapshot(2, [{ balance: 'round-robin', instances: insts }]));
  const a0 = a.hits;
  const rr = [];
  for (let i = 0; i < 20; i++) rr.push(client.req('/hold'));
  await waitFor('rr answered or held', () => a.hits + b.hits === 40);
  assert.ok(a.hits - a0 >= 9, `round-robin gave a ${a.hits - a0} of 20`);
  for (const r of held.splice(0)) r();
  await Promise.all(rr);
});

test('weighted: shares follow the weights, which change at runtime; weight 0 takes none', async (t) => {
  const e = testEnv(t);
  const a = await e.backend('a', (_q, res, s) => res.end(s.name));
  const b = await e.backend('b', (_q, res, s) => res.end(s.name));
  const { proxy, client } = await e.proxy();
  const svc = (v: number, wa: number, wb: number) =>
    snapshot(v, [
      {
        balance: 'weighted',
        instances: [
          { id: 'a', port: a.port, weight: wa },
          { id: 'b', port: b.port, weight: wb },
        ],
      },
    ]);
  const count = async (n: number) => {
    const c = { a: 0, b: 0 };
    for (let i = 0; i < n; i++) c[(await client.req('/')).text as 'a' | 'b']++;
    return c;
  };
  proxy.applySnapshot(svc(1, 9, 1));
  assert.deepEqual(await count(100), { a: 90, b: 10 });
  proxy.applySnapshot(svc(2, 1, 1));
  assert.deepEqual(await count(100), { a: 50, b: 50 });
  proxy.applySnapshot(svc(3, 1, 0));
  assert.deepEqual(await count(20), { a: 20, b: 0 });
});

test('slow start: a new instance ramps from a small share to its full weight', async (t) => {
  const e = testEnv(t);
  const a = await e.backend('a', (_q, res, s) => res.end(s.name));
  const b = await e.backend('b', (_q, res, s) => res.end(s.name));
  const { proxy, client } = await e.proxy();
  proxy.applySnapshot(snapshot(1, [{ balance: 'weighted', instances: [{ id: 'a', port: a.port }] }]));
  assert.equal((await client.req('/')).text, 'a');
  proxy.applySnapshot(
    snapshot(2, [
      {
        balance: 'weighted',
        slowStartMs: 1500,
        instances: [
          { id: 'a', port: a.port },
          { id: 'b', port: b.port },
        ],
      },
    ]),
  );
  let early = 0;
  for (let i = 0; i < 50; i++) if ((await client.req('/')).text === 'b') early++;
  await sleep(1600);
  let late = 0;
  for (let i = 0; i < 50; i++) if ((await client.req('/')).text === 'b') late++;
  assert.ok(early <= 12, `b got ${early}/50 at the start of its ramp`);
  assert.ok(late >= 22 && late <= 28, `b got ${late}/50 after its ramp`);
});

test('passive ejection on consecutive 5xx, ejection time doubling with repeats, metrics count it', async (t) => {
  const e = testEnv(t);
  const bad = await e.backend('bad', (_q, res) => {
    res.writeHead(500);
    res.end('boom');
  });
  const good = await e.backend('good', (_q, res, s) => res.end(s.name));
  const { proxy, client } = await e.proxy({ adminPort: 0 });
  proxy.applySnapshot(
    snapshot(1, [
      {
        outlier: { consecutive5xx: 3, baseEjectionMs: 300, maxEjectionMs: 5000 },
        balance: 'round-robin',
        instances: [
          { id: 'bad', port: bad.port },
          { id: 'good', port: good.port },
        ],
      },
    ]),
  );
  const run = async (n: number) => {
    for (let i = 0; i < n; i++) await client.req('/');
  };
  await run(6);
  assert.equal(bad.hits, 3);
  assert.equal(inst(proxy.report(), 'bad').up, false, 'ejected after 3 consecutive 5xx');
  const t1 = Date.now();
  await waitFor('back after the first ejection', () => inst(proxy.report(), 'bad').up, 2000);
  const first = Date.now() - t1;
  await waitFor('ejected again', async () => {
    await client.req('/');
    return !inst(proxy.report(), 'bad').up;
  });
  const t2 = Date.now();
  await waitFor('back after the second ejection', () => inst(proxy.report(), 'bad').up, 3000);
  const second = Date.now() - t2;
  assert.ok(first >= 250 && first < 600, `first ejection ${first} ms`);
  assert.ok(second >= 550 && second < 1000, `second ejection ${second} ms`);
  const m = await (await fetch(`http://127.0.0.1:${proxy.adminPort}/metrics`)).text();
  assert.match(m, /nines_proxy_ejections_total\{service="svc0",instance="bad"\} 2/);
  assert.match(m, /nines_proxy_requests_total\{service="svc0",instance="bad",class="5xx"\} [6-9]/);
});

test('maxEjectionPercent caps the share of ejected instances; retries keep GETs whole', async (t) => {
  const e = testEnv(t);
  const good = await e.backend('good');
  const dead = [];
  for (const n of ['d1', 'd2', 'd3']) {
    const b = await startBackend(n);
    await b.close();
    dead.push(b);
  }
  const { proxy, client } = await e.proxy();
  proxy.applySnapshot(
    snapshot(1, [
      {
        outlier: { maxEjectionPercent: 50, baseEjectionMs: 10_000 },
        retry: { attempts: 3 },
        balance: 'round-robin',
        instances: [{ id: 'good', port: good.port }, ...dead.map((b) => ({ id: b.name, port: b.port }))],
      },
    ]),
  );
  for (let i = 0; i < 20; i++) assert.equal((await client.req('/')).status, 200);
  const down = proxy
    .report()
    .instances.filter((i) => !i.up)
    .map((i) => i.id);
  assert.equal(down.length, 2, `ejected: ${down}`);
  assert.ok(inst(proxy.report(), 'good').up);
});

test('panic: below panicThresholdPercent healthy, the proxy routes to every ready instance (fail-open)', async (t) => {
  const e = testEnv(t);
  const bs = [await e.backend('a'), await e.backend('b'), await e.backend('c')];
  const { proxy, client } = await e.proxy({ adminPort: 0 });
  const health = { ...fastHealth, intervalMs: 20, rise: 1, fall: 1 };
  proxy.applySnapshot(
    snapshot(1, [
      { panicThresholdPercent: 50, health, instances: bs.map((b) => ({ id: b.name, port: b.port })) },
    ]),
  );
  bs[0]!.healthy = false;
  await waitFor('a down', () => !inst(proxy.report(), 'a').up);
  const hits0 = bs.map((b) => b.hits);
  for (let i = 0; i < 30; i++) await client.req('/');
  assert.equal(bs[0]!.hits, hits0[0], '1 of 3 down: no panic, a gets nothing');
  bs[1]!.healthy = false;
  await waitFor('b down', () => !inst(proxy.report(), 'b').up);
  for (let i = 0; i < 30; i++) assert.equal((await client.req('/')).status, 200);
  assert.ok(bs[0]!.hits > hits0[0]! && bs[1]!.hits > hits0[1]!, 'panic: down instances get traffic');
  const metrics = () => fetch(`http://127.0.0.1:${proxy.adminPort}/metrics`).then((r) => r.text());
  assert.match(await metrics(), /nines_proxy_service_panic\{service="svc0"\} 1/);
  bs[0]!.healthy = true;
  bs[1]!.healthy = true;
  await waitFor('all up', () => proxy.report().instances.every((i) => i.up));
  await client.req('/');
  assert.match(await metrics(), /nines_proxy_service_panic\{service="svc0"\} 0/);
  assert.match(await metrics(), /nines_proxy_service_panics_total\{service="svc0"\} 1/);
});

test('retries: bounded by attempts and the budget; a request with a streamed body is never retried', async (t) => {
  const e = testEnv(t);
  let _putBodies = 0;
  const mk = (n: string) =>
    e.backend(n, (req) => {
      req.on('data', () => {
        _putBodies++;
      });
      // reset once the request (and its body) arrived
      req.on('end', () => req.socket.destroy());
      req.resume();
    });
  const bad = [await mk('r1'), await mk('r2'), await mk('r3')];
  const good = await e.backend('good');
  const { proxy, client } = await e.proxy({ adminPort: 0 });
  const insts = [...bad.map((b) => ({ id: b.name, port: b.port })), { id: 'good', port: good.port }];
  proxy.applySnapshot(snapshot(1, [{ balance: 'round-robin', retry: { attempts: 3 }, instances: insts }]));
  for (let i = 0; i < 8; i++) assert.equal((await client.req('/g')).status, 200);

  proxy.applySnapshot(snapshot(2, [{ balance: 'round-robin', retry: { attempts: 1 }, instances: insts }]));
  let failed = 0;
  for (let i = 0; i < 8; i++) if ((await client.req('/g')).status !== 200) failed++;
  assert.ok(failed > 0, 'one retry is not enough past 2 bad instances in a row');

  // Budget 0: no retry at all.
  proxy.applySnapshot(
    snapshot(3, [
      { retry: { attempts: 3, budgetPercent: 0, minConcurrent: 0 }, instances: insts.slice(0, 1) },
    ]),
  );
  assert.equal((await client.req('/g')).status, 502);
  const m = await (await fetch(`http://127.0.0.1:${proxy.adminPort}/metrics`)).text();
  assert.match(m, /nines_proxy_retries_denied_total\{service="svc0"\} [1-9]/);

  // An idempotent PUT whose body went upstream is not retried.
  proxy.applySnapshot(snapshot(4, [{ retry: { attempts: 3 }, instances: insts }]));
  const hits = bad.reduce((n, b) => n + b.hits, 0) + good.hits;
  _putBodies = 0;
  const r = await client.req('/p', { method: 'PUT', body: Buffer.alloc(100_000, 1) });
  const after = bad.reduce((n, b) => n + b.hits, 0) + good.hits;
  assert.equal(after - hits, 1, 'exactly one attempt');
  if (r.status !== 200) assert.equal(JSON.parse(r.text).error.code, 'NINES_E_UPSTREAM_RESET');
});

test('TCP health checks and a faster interval while an instance changes state', async (t) => {
  const e = testEnv(t);
  let conns = 0;
  const listenTcp = (port = 0) =>
    new Promise<NetServer>((resolve) => {
      const s = createNetServer((c) => {
        conns++;
        c.destroy();
      });
      s.listen(port, '127.0.0.1', () => resolve(s));
    });
  let tcp = await listenTcp();
  const port = (tcp.address() as AddressInfo).port;
  e.defer(() => new Promise((r) => tcp.close(r)));
  const { proxy } = await e.proxy();
  proxy.applySnapshot(
    snapshot(1, [
      {
        health: {
          path: '/',
          type: 'tcp',
          intervalMs: 400,
          fastIntervalMs: 40,
          timeoutMs: 200,
          rise: 3,
          fall: 3,
        },
        instances: [{ id: 't', port }],
      },
    ]),
  );
  await waitFor('first tcp check', () => conns > 0);
  await new Promise((r) => tcp.close(r));
  const downAt = Date.now();
  await waitFor('down by tcp check', () => !inst(proxy.report(), 't').up, 3000);
  // fall 3 at 400 ms would take ≥ 800 ms after the first failure; the fast interval makes it ~ 400 + 80
  assert.ok(Date.now() - downAt < 750, `down after ${Date.now() - downAt} ms`);
  tcp = await listenTcp(port);
  await waitFor('up by tcp check', () => inst(proxy.report(), 't').up, 3000);
});

test('load run while one instance is ejected and comes back: 0 failed GETs', async (t) => {
  const e = testEnv(t);
  const a = await e.backend('a', (_q, res, s) => res.end(s.name));
  const b = await e.backend('b', (_q, res, s) => res.end(s.name));
  const { proxy } = await e.proxy();
  const health = { ...fastHealth, intervalMs: 50, rise: 2, fall: 2 };
  const svc: SvcInput = {
    health,
    slowStartMs: 300,
    outlier: { baseEjectionMs: 200 },
    instances: [
      { id: 'a', port: a.port },
      { id: 'b', port: b.port },
    ],
  };
  proxy.applySnapshot(snapshot(1, [svc]));
  const load = startLoad({
    url: `http://127.0.0.1:${proxy.port}/`,
    connections: 16,
    rate: 800,
    durationMs: 3000,
    timeoutMs: 5000,
  });
  await sleep(600);
  const port = a.port;
  await a.close(); // refused from now on: ejected, retried on b
  await waitFor('a ejected or down', () => !inst(proxy.report(), 'a').up);
  await sleep(600);
  // a comes back on the same port
  await new Promise<void>((r) => a.server.listen(port, '127.0.0.1', r));
  await waitFor('a up again', () => inst(proxy.report(), 'a').up, 3000);
  const hitsBack = a.hits;
  const r = await load.done;
  assert.equal(r.failed, 0, JSON.stringify(r.firstFailures.slice(0, 5)));
  assert.ok(r.sent > 1500, `sent ${r.sent}`);
  assert.ok(a.hits > hitsBack, 'a serves again after it came back');
});
