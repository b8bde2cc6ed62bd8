import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type TestContext, test } from 'node:test';
import type { ProxyReport, RoutingSnapshot } from '../core/protocol.js';
import { ControllerLink } from './link.js';
import { Proxy as NinesProxy } from './proxy.js';
import { silentLogger, sleep, snapshot, startBackend, TestClient, waitFor } from './test-helpers.js';

/** A stand-in controller: long-polled snapshot endpoint and a report sink, on a real socket. */
class FakeController {
  readonly server: Server;
  port = 0;
  current: unknown;
  failing = false;
  readonly reports: ProxyReport[] = [];
  readonly auth = new Set<string>();
  readonly polls: number[] = [];
  private waiters: (() => void)[] = [];

  constructor(initial: RoutingSnapshot) {
    this.current = initial;
    this.server = createServer((req, res) => this.handle(req, res));
  }

  async listen(port = 0): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const w of this.waiters.splice(0)) w();
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  publish(s: unknown): void {
    this.current = s;
    for (const w of this.waiters.splice(0)) w();
  }

  private version(): number {
    return (this.current as { version: number }).version;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.auth.add(String(req.headers.authorization));
    const url = new URL(req.url!, 'http://x');
    if (this.failing) {
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end('{"error":{"code":"NINES_E_UNAVAILABLE","message":"down"}}');
      return;
    }
    if (req.method === 'GET' && url.pathname === '/v1/proxy/snapshot') {
      const after = Number(url.searchParams.get('after'));
      const wait = Number(url.searchParams.get('wait'));
      this.polls.push(after);
      const answer = () => {
        if (res.writableEnded || res.destroyed) return;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(this.current));
      };
      if (this.version() > after) {
        answer();
        return;
      }
      const timer = setTimeout(answer, wait * 1000);
      this.waiters.push(() => {
        clearTimeout(timer);
        answer();
      });
      return;
    }
    if (req.method === 'POST' && url.pathname === '/v1/proxy/report') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.reports.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as ProxyReport);
        res.writeHead(204);
        res.end();
      });
      return;
    }
    res.writeHead(404);
    res.end();
  }
}

function env(t: TestContext) {
  const closers: (() => Promise<unknown>)[] = [];
  t.after(async () => {
    for (const c of closers.reverse()) await c();
  });
  return (fn: () => Promise<unknown>) => closers.push(fn);
}

function reported(c: FakeController, pred: (r: ProxyReport) => boolean): boolean {
  return c.reports.some(pred);
}

test('ControllerLink: long-polls snapshots, reports changes and heartbeats, survives a failing controller', async (t) => {
  const defer = env(t);
  const a = await startBackend('a');
  defer(() => a.close());
  const b = await startBackend('b');
  defer(() => b.close());
  const ctl = new FakeController(snapshot(1, [{ instances: [{ id: 'a', port: a.port }] }]));
  await ctl.listen();
  defer(() => ctl.close());
  const proxy = new NinesProxy({ host: '127.0.0.1', port: 0, proxyId: 'px', logger: silentLogger });
  await proxy.listen();
  defer(() => proxy.close());
  const client = new TestClient(proxy.port);
  defer(() => client.close());
  const link = new ControllerLink({
    baseUrl: `http://127.0.0.1:${ctl.port}`,
    token: 'tok',
    proxy,
    logger: silentLogger,
    waitSeconds: 1,
  });
  link.start();
  defer(() => link.stop());

  await waitFor('v1 applied', () => proxy.report().appliedVersion === 1);
  assert.equal((await client.json('/')).body.name, 'a');
  await waitFor('report of v1', () => reported(ctl, (r) => r.appliedVersion === 1 && r.proxyId === 'px'));
  assert.deepEqual([...ctl.auth], ['Bearer tok']);

  // a change is pushed through the pending long poll at once
  await sleep(100);
  const t0 = Date.now();
  ctl.publish(
    snapshot(2, [
      {
        instances: [
          { id: 'a', port: a.port, state: 'draining' },
          { id: 'b', port: b.port },
        ],
      },
    ]),
  );
  await waitFor('v2 applied', () => proxy.report().appliedVersion === 2);
  assert.ok(Date.now() - t0 < 500, 'long poll answered on change');
  assert.ok(ctl.polls.includes(1), 'polled with after=<applied version>');
  await waitFor('report: a drained', () =>
    reported(ctl, (r) => r.appliedVersion === 2 && r.instances.some((i) => i.id === 'a' && i.drained)),
  );
  assert.equal((await client.json('/')).body.name, 'b');

  // heartbeat: reports keep coming without changes
  const n = ctl.reports.length;
  await sleep(2300);
  assert.ok(ctl.reports.length - n >= 2, `heartbeat reports: ${ctl.reports.length - n}`);

  // the controller fails: the proxy keeps serving what it has
  ctl.failing = true;
  await sleep(800);
  for (let i = 0; i < 5; i++) assert.equal((await client.json('/')).body.name, 'b');
  assert.equal(proxy.report().appliedVersion, 2);
  ctl.failing = false;
  ctl.publish(snapshot(3, [{ instances: [{ id: 'a', port: a.port }] }]));
  await waitFor('v3 applied after recovery', () => proxy.report().appliedVersion === 3, 4000);
  await waitFor('a up again in use', async () => (await client.json('/')).body.name === 'a');

  // an invalid snapshot is refused and changes nothing
  ctl.publish({ version: 4, services: 'nonsense' });
  await sleep(300);
  assert.equal(proxy.report().appliedVersion, 3);
  assert.equal((await client.req('/')).status, 200);
  ctl.publish(snapshot(5, [{ instances: [{ id: 'b', port: b.port }] }]));
  await waitFor('v5 applied', () => proxy.report().appliedVersion === 5, 4000);

  // stop(): no more polls or reports
  await link.stop();
  const after = ctl.reports.length;
  await sleep(1200);
  assert.equal(ctl.reports.length, after);
});

test('ControllerLink: controller down from the start and back later; the proxy serves its snapshot meanwhile', async (t) => {
  const defer = env(t);
  const a = await startBackend('a');
  defer(() => a.close());
  const s1 = snapshot(1, [{ instances: [{ id: 'a', port: a.port }] }]);
  const ctl = new FakeController(snapshot(2, [{ instances: [{ id: 'a', port: a.port }] }]));
  await ctl.listen();
  const port = ctl.port;
  await ctl.close(); // nothing listens there now
  const proxy = new NinesProxy({ host: '127.0.0.1', port: 0, proxyId: 'px', logger: silentLogger });
  await proxy.listen();
  defer(() => proxy.close());
  proxy.applySnapshot(s1); // e.g. from its cache
  const client = new TestClient(proxy.port);
  defer(() => client.close());
  const link = new ControllerLink({
    baseUrl: `http://127.0.0.1:${port}/`,
    token: 'tok',
    proxy,
    logger: silentLogger,
    waitSeconds: 1,
  });
  link.start();
  defer(() => link.stop());
  await sleep(700);
  for (let i = 0; i < 5; i++) assert.equal((await client.req('/')).status, 200);

  const back = new FakeController(snapshot(2, [{ instances: [{ id: 'a', port: a.port }] }]));
  await back.listen(port);
  defer(() => back.close());
  await waitFor('v2 applied once the controller is back', () => proxy.report().appliedVersion === 2, 4000);
  await waitFor('reports arrive', () => back.reports.length > 0, 3000);
  const stopped = Date.now();
  await link.stop();
  assert.ok(Date.now() - stopped < 1000, 'stop() does not wait for the long poll');
});
