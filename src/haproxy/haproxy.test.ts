import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import type { ProxyReport, RouteInstance, RoutingSnapshot } from '../core/protocol.js';
import { startLoad } from '../drill/loadgen.js';
import { HaproxyAdapter } from './adapter.js';
import { parseShowStat } from './plan.js';
import { HaproxyRuntime } from './runtime.js';
import { haproxySkipReason, type RunningHaproxy, startHaproxy } from './testkit.js';

const skip = haproxySkipReason();

function app(name: string): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    // A little latency so requests are in flight when the drain starts.
    setTimeout(() => res.end(req.url === '/healthz' ? 'ok' : name), 5);
  });
  return new Promise((r) =>
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      r({ server, port: typeof a === 'object' && a ? a.port : 0 });
    }),
  );
}

function snapshot(version: number, instances: RouteInstance[]): RoutingSnapshot {
  return {
    version,
    services: [
      {
        name: 'web',
        hosts: [],
        pathPrefix: '/',
        mode: 'live',
        health: { path: '/healthz', intervalMs: 100, timeoutMs: 500, rise: 1, fall: 2 },
        instances,
      },
    ],
  };
}

async function until<T>(
  what: string,
  fn: () => T | undefined | Promise<T | undefined>,
  ms = 10_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('HaproxyRuntime against a real HAProxy', { skip }, () => {
  let dir: string;
  let ha: RunningHaproxy;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nines-haproxy-'));
    ha = await startHaproxy(dir);
  });
  after(async () => {
    await ha?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers commands and show stat parses', async () => {
    assert.match(await ha.runtime.command('show info'), /^Name: HAProxy/m);
    const stat = parseShowStat(await ha.runtime.command('show stat'));
    assert.deepEqual(
      stat.backends.map((b) => b.name),
      ['be_web'],
    );
  });

  it('refuses a second command smuggled into one line', async () => {
    await assert.rejects(ha.runtime.command('show info; shutdown sessions'), /one line/);
  });

  it('reports an unreachable socket as an error', async () => {
    await assert.rejects(new HaproxyRuntime(join(dir, 'nope.sock'), 500).command('show info'), /ENOENT/);
  });
});

describe('HaproxyAdapter drives a real HAProxy', { skip }, () => {
  let dir: string;
  let ha: RunningHaproxy;
  let adapter: HaproxyAdapter;
  const apps: Array<{ server: Server; port: number }> = [];
  const reports: ProxyReport[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nines-haproxy-'));
    ha = await startHaproxy(dir);
    apps.push(await app('a'), await app('b'));
    adapter = new HaproxyAdapter({
      proxyId: 'test-haproxy',
      runtime: ha.runtime,
      logger: pino({ level: 'silent' }),
      backends: { web: 'be_web' },
      prefix: 'nines-',
      check: true,
      syncIntervalMs: 50,
    });
    adapter.onReportChange((r) => reports.push(r));
    adapter.start();
  });
  after(async () => {
    await adapter?.stop();
    await ha?.stop();
    for (const a of apps) a.server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const inst = (id: string, port: number, state: RouteInstance['state'] = 'ready'): RouteInstance => ({
    id,
    address: '127.0.0.1',
    port,
    state,
    weight: 1,
    release: 'v1',
  });

  it('adds servers, reports them up once HAProxy checked them, and serves through them', async () => {
    adapter.applySnapshot(snapshot(1, [inst('web-a', apps[0]!.port), inst('web-b', apps[1]!.port)]));
    const r = await until('both up', () => {
      const rep = adapter.report();
      return rep.appliedVersion === 1 && rep.instances.length === 2 && rep.instances.every((i) => i.up)
        ? rep
        : undefined;
    });
    assert.equal(r.proxyId, 'test-haproxy');
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) seen.add(await (await fetch(`http://127.0.0.1:${ha.port}/`)).text());
    assert.deepEqual([...seen].sort(), ['a', 'b']);
  });

  it('drains an instance under load with no failed request, then deletes it', async () => {
    const load = startLoad({
      url: `http://127.0.0.1:${ha.port}/`,
      rate: 300,
      connections: 16,
      durationMs: 30_000,
    });
    await new Promise((r) => setTimeout(r, 500));
    adapter.applySnapshot(
      snapshot(2, [inst('web-a', apps[0]!.port, 'draining'), inst('web-b', apps[1]!.port)]),
    );
    await until('web-a drained', () =>
      adapter.report().appliedVersion === 2 &&
      adapter.report().instances.find((i) => i.id === 'web-a')?.drained === true
        ? true
        : undefined,
    );
    // What the deploy engine does next: stop the app. Nothing may reach it any more.
    apps[0]!.server.close();
    apps[0]!.server.closeAllConnections();
    await new Promise((r) => setTimeout(r, 500));
    adapter.applySnapshot(snapshot(3, [inst('web-b', apps[1]!.port)]));
    await until('web-a deleted', async () => {
      const stat = parseShowStat(await ha.runtime.command('show stat'));
      return stat.servers.some((s) => s.name === 'nines-web-a') ? undefined : true;
    });
    await new Promise((r) => setTimeout(r, 300));
    const res = await load.stop();
    assert.ok(res.sent > 200, `sent ${res.sent}`);
    assert.equal(res.failed, 0, JSON.stringify(res.firstFailures.slice(0, 3)));
    // The controller saw the instance busy before it saw it drained.
    assert.ok(
      reports.some((rep) => rep.instances.some((i) => i.id === 'web-a' && !i.drained && i.inflight >= 0)),
    );
    const last = adapter.report();
    assert.deepEqual(
      last.instances.map((i) => i.id),
      ['web-b'],
    );
    assert.ok((last.services?.[0]?.requests ?? 0) >= res.sent, 'backend counters reported');
  });

  it('leaves servers it does not own alone', async () => {
    assert.match(
      await ha.runtime.command(`add server be_web/static1 127.0.0.1:${apps[1]!.port}`),
      /registered/,
    );
    await new Promise((r) => setTimeout(r, 300));
    const stat = parseShowStat(await ha.runtime.command('show stat'));
    const s = stat.servers.find((x) => x.name === 'static1');
    assert.ok(s, 'static1 still there');
    assert.match(s.status, /MAINT/, 'left as the operator added it (dynamic servers start in maintenance)');
  });
});
