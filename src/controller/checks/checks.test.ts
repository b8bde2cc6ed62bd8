import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { Agent } from '../../agent/agent.js';
import { serviceSchema } from '../../core/config.js';
import { Controller } from '../controller.js';
import { openSqliteStore } from '../store/sqlite.js';
import { instance, release } from '../store/store-suite.js';
import type { Store } from '../store/types.js';

/**
 * Checks end to end on a real controller and real sockets: declared over the API, results from three
 * locations (registered hosts on the real protocol) decide up / degraded / down by quorum, every
 * transition is stored and becomes an incident; a real agent probes a real server; /status is public,
 * /metrics needs a token and passes promtool.
 */

describe('checks on a real controller', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nines-checks-'));
  let store: Store;
  let controller: Controller;
  let admin = '';
  let node = '';
  const hosts: string[] = [];

  before(async () => {
    store = await openSqliteStore({ file: join(dir, 'nines.db') });
    controller = new Controller({
      store,
      dataDir: dir,
      logger: pino({ level: 'silent' }),
      host: '127.0.0.1',
      port: 0,
    });
    ({ admin, node } = await controller.bootstrapTokens());
    await controller.start();
    for (const name of ['alpha', 'beta', 'gamma']) {
      const r = await call('POST', '/v1/agent/register', {
        token: node,
        json: { name, zone: name, labels: {}, address: '127.0.0.1' },
      });
      hosts.push((r.body as { hostId: string }).hostId);
    }
  });
  after(async () => {
    await controller.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function call(method: string, path: string, o: { token?: string; json?: unknown } = {}) {
    const res = await fetch(controller.url + path, {
      method,
      headers: {
        ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
        ...(o.json !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(o.json !== undefined ? { body: JSON.stringify(o.json) } : {}),
    });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {}
    return { status: res.status, body, text, headers: res.headers };
  }

  const results = (ok: boolean[], at = Date.now(), check = 'payments') =>
    Promise.all(
      ok.map((o, i) =>
        call('POST', '/v1/agent/checks/results', {
          token: node,
          json: {
            hostId: hosts[i],
            results: [
              {
                check,
                at,
                ok: o,
                latencyMs: 12,
                message: o ? 'status 200' : 'status 503, expected 2xx/3xx',
                status: o ? 200 : 503,
              },
            ],
          },
        }),
      ),
    );

  async function state(name: string): Promise<{ state: string; message: string }> {
    await controller.checks.tick();
    const r = await call('GET', `/v1/checks/${name}`, { token: admin });
    return (r.body as { check: { state: string; message: string } }).check;
  }

  test('bad check declarations are refused with a code and change nothing', async () => {
    const bad = await call('PUT', '/v1/checks/payments', {
      token: admin,
      json: { type: 'http', url: 'ftp://x' },
    });
    assert.equal(bad.status, 400);
    assert.equal((bad.body as { error: { code: string } }).error.code, 'NINES_E_VALIDATION');
    const badName = await call('PUT', '/v1/checks/Pay_ments', {
      token: admin,
      json: { type: 'tcp', host: 'x', port: 1 },
    });
    assert.equal(badName.status, 400);
    const missing = await call('GET', '/v1/checks/nope', { token: admin });
    assert.equal(missing.status, 404);
    assert.equal((missing.body as { error: { code: string } }).error.code, 'NINES_E_CHECK_NOT_FOUND');
    assert.deepEqual((await call('GET', '/v1/checks', { token: admin }).then((r) => r.body)) as unknown, {
      checks: [],
    });
    const reader = await call('PUT', '/v1/checks/x', {
      token: node,
      json: { type: 'tcp', host: 'x', port: 1 },
    });
    assert.equal(reader.status, 403);
  });

  test('a dependency failing from 1 of 3 locations is degraded, from 2 of 3 down; transitions become an incident', async () => {
    const put = await call('PUT', '/v1/checks/payments', {
      token: admin,
      json: { type: 'http', url: 'https://payments.example.test/health', dependency: true, interval: '10s' },
    });
    assert.equal(put.status, 201);
    // The agents' long poll hands the check out with a new version.
    const a = await call('GET', `/v1/agent/checks?hostId=${hosts[0]}&after=0`, { token: node });
    assert.equal((a.body as { checks: { name: string }[] }).checks[0]?.name, 'payments');
    assert.equal((await state('payments')).state, 'unknown');
    await results([true, true, true]);
    assert.equal((await state('payments')).state, 'up');
    await results([false, true, true]);
    const degraded = await state('payments');
    assert.equal(degraded.state, 'degraded');
    assert.equal(
      degraded.message,
      'failing from 1 of 3 locations (quorum 2): alpha: status 503, expected 2xx/3xx',
    );
    await results([false, true, false]);
    const down = await state('payments');
    assert.equal(down.state, 'down');
    assert.match(
      down.message,
      /failing from 2 of 3 locations \(quorum 2\): (alpha|gamma): .*; (alpha|gamma): /,
    );
    await results([true, true, true]);
    assert.equal((await state('payments')).state, 'up');

    const detail = await call('GET', '/v1/checks/payments', { token: admin });
    const ts = (detail.body as { transitions: { from: string; to: string }[] }).transitions.map(
      (t) => `${t.from}>${t.to}`,
    );
    assert.deepEqual(ts, ['unknown>up', 'up>degraded', 'degraded>down', 'down>up']);
    const up = await call('GET', '/v1/uptime?window=24h&objective=0.999', { token: admin });
    const row = (
      up.body as {
        rows: { name: string; incidents: { cause: string; end: number | null }[]; dependency: boolean }[];
      }
    ).rows.find((r) => r.name === 'payments');
    assert.equal(row?.dependency, true);
    assert.equal(row?.incidents.length, 1);
    assert.match(row?.incidents[0]?.cause ?? '', /failing from 2 of 3/);
    assert.notEqual(row?.incidents[0]?.end, null);
    const events = await call('GET', '/v1/events?kind=check.down', { token: admin });
    assert.equal((events.body as { events: unknown[] }).events.length, 1);
    // Signals for the alert evaluator.
    const sig = await call('GET', '/v1/signals?signal=check_up&check=payments', { token: admin });
    assert.equal((sig.body as { samples: { value: number }[] }).samples[0]?.value, 1);
  });

  test('consecutiveFailures: a location counts as failing only after N failures in a row', async () => {
    const put = await call('PUT', '/v1/checks/queue', {
      token: admin,
      json: { type: 'tcp', host: 'queue.example.test', port: 5672, consecutiveFailures: 3, interval: '10s' },
    });
    assert.equal(put.status, 201);
    const bad = await call('PUT', '/v1/checks/queue', {
      token: admin,
      json: { type: 'tcp', host: 'queue.example.test', port: 5672, consecutiveFailures: 0 },
    });
    assert.equal((bad.body as { error: { code: string } }).error.code, 'NINES_E_VALIDATION');
    let at = Date.now();
    const send = (ok: boolean[]) => {
      at += 1000;
      return results(ok, at, 'queue');
    };
    await send([true, true, true]);
    assert.equal((await state('queue')).state, 'up');
    // alpha and beta fail twice: still up (2 < 3 in a row).
    await send([false, false, true]);
    await send([false, false, true]);
    assert.equal((await state('queue')).state, 'up');
    // A pass from beta resets its streak; alpha's third failure in a row counts: degraded.
    await send([false, true, true]);
    const degraded = await state('queue');
    assert.equal(degraded.state, 'degraded');
    assert.match(degraded.message, /failing from 1 of 3 locations \(quorum 2\): alpha: /);
    await send([false, false, true]);
    await send([false, false, true]);
    assert.equal((await state('queue')).state, 'degraded', 'beta has failed twice in a row since its pass');
    await send([false, false, true]);
    assert.equal((await state('queue')).state, 'down');
    await send([true, true, true]);
    assert.equal((await state('queue')).state, 'up');
    // An older result arriving late does not extend a streak.
    await send([false, true, true]);
    await results([false, true, true], at - 5000, 'queue');
    await send([false, true, true]);
    assert.equal((await state('queue')).state, 'up', 'two failures in a row, not three');
    await call('DELETE', '/v1/checks/queue', { token: admin });
  });

  test('a real agent probes a real server: up, then down when it fails', async () => {
    let status = 200;
    const srv = createServer((_q, res) => {
      res.writeHead(status).end('ok');
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as AddressInfo).port;
    const agent = new Agent({
      controllerUrl: controller.url,
      token: node,
      dataDir: join(dir, 'agent'),
      name: 'delta',
      zone: 'd',
      labels: {},
      address: '127.0.0.1',
      logger: pino({ level: 'silent' }),
      pollWaitS: 2,
      hostSignalsMs: 200,
    });
    await agent.start();
    try {
      await call('PUT', '/v1/checks/web-local', {
        token: admin,
        json: { type: 'http', url: `http://127.0.0.1:${port}/`, interval: '200ms', timeout: '1s', quorum: 1 },
      });
      const until = async (want: string) => {
        const deadline = Date.now() + 15_000;
        for (;;) {
          const s = await state('web-local');
          if (s.state === want) return s;
          if (Date.now() > deadline)
            assert.fail(`web-local stayed ${s.state} (${s.message}), wanted ${want}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      };
      await until('up');
      status = 500;
      const down = await until('down');
      assert.match(down.message, /delta: status 500/);
      // Host signals arrived with the reports.
      const mem = await call('GET', '/v1/signals?signal=node_memory_available_ratio&hostname=delta', {
        token: admin,
      });
      const v = (mem.body as { samples: { value: number }[] }).samples[0]?.value ?? -1;
      assert.ok(v > 0 && v <= 1, `memory available ratio ${v}`);
    } finally {
      await agent.stop({ stopInstances: true });
      srv.closeAllConnections();
      await new Promise((r) => srv.close(r));
      await call('DELETE', '/v1/checks/web-local', { token: admin });
    }
  });

  test('/status is public and shows no internals; /status.json too', async () => {
    const page = await call('GET', '/status');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    assert.match(page.text, /payments/);
    assert.match(page.text, /<h1>Status: production<\/h1>/, 'the environment the controller serves');
    assert.match(page.text, /\(third party\)/);
    assert.doesNotMatch(
      page.text,
      /payments\.example\.test|alpha|status 503/,
      'no URLs, host names or messages',
    );
    const json = await call('GET', '/status.json');
    assert.equal(json.status, 200);
    assert.equal(
      (json.body as { entries: { name: string }[] }).entries.some((e) => e.name === 'payments'),
      true,
    );
    // Everything else still needs a token.
    assert.equal((await call('GET', '/v1/checks')).status, 401);
  });

  test('/metrics needs a token (a metrics token reads only it) and passes promtool check metrics', async (t) => {
    // Two reports of a proxy on the real protocol: per-service rate, 5xx and latency reach /metrics.
    const le = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
    const counts = (n: number) => le.map((_, i) => (i === 4 ? n : 0)).concat([0]);
    for (const n of [0, 40]) {
      const r = await call('POST', '/v1/proxy/report', {
        token: node,
        json: {
          proxyId: 'px-1',
          appliedVersion: 0,
          instances: [],
          services: [
            {
              name: 'web',
              requests: n,
              failed: n / 10,
              latency: { le, counts: counts(n), sumSeconds: n * 0.02, count: n },
            },
          ],
        },
      });
      assert.equal(r.status, 204);
    }
    assert.equal((await call('GET', '/metrics')).status, 401);
    const created = await call('POST', '/v1/metrics-tokens', { token: admin, json: { name: 'prom' } });
    assert.equal(created.status, 201);
    const mt = (created.body as { token: string }).token;
    assert.equal((await call('GET', '/v1/checks', { token: mt })).status, 403);
    const m = await call('GET', '/metrics', { token: mt });
    assert.equal(m.status, 200);
    assert.match(m.text, /^nines_check_up\{check="payments",type="http",dependency="true"\} 1$/m);
    assert.match(m.text, /^nines_check_results_received_total \d+$/m);
    assert.match(m.text, /^process_resident_memory_bytes \d+$/m);
    assert.match(m.text, /^nines_service_requests_total\{service="web"\} 40$/m);
    assert.match(m.text, /^nines_service_failed_requests_total\{service="web"\} 4$/m);
    assert.match(m.text, /^nines_service_error_ratio\{service="web"\} 0\.1$/m);
    // All 40 answers in (10 ms, 25 ms]: the median interpolates to the bucket's middle.
    assert.match(m.text, /^nines_service_latency_p50_seconds\{service="web"\} 0\.0175$/m);
    assert.match(m.text, /^node_load1\{host="h-[0-9a-f]+",hostname="delta"\} /m);
    // Per release: an instance of release v1 (stored, reported by its agent) answers through the proxy.
    await store.upsertService('web', serviceSchema.parse({ command: 'node app.js' }));
    await store.insertRelease(release('web', 'v1'));
    await store.insertInstance(instance('web-r1', 'web', hosts[0] ?? ''));
    const ar = await call('POST', '/v1/agent/report', {
      token: node,
      json: {
        hostId: hosts[0],
        generation: 0,
        instances: [{ id: 'web-r1', state: 'running', healthy: true, restarts: 0 }],
      },
    });
    assert.equal(ar.status, 204);
    for (const n of [0, 40]) {
      const r = await call('POST', '/v1/proxy/report', {
        token: node,
        json: {
          proxyId: 'px-1',
          appliedVersion: 0,
          instances: [
            {
              id: 'web-r1',
              up: true,
              inflight: 0,
              drained: false,
              requests: n,
              failed: n / 4,
              latency: counts(n),
            },
          ],
          services: [{ name: 'web', requests: 40 + n, failed: 4 + n / 4 }],
        },
      });
      assert.equal(r.status, 204);
    }
    const rel = await call('GET', '/v1/signals?signal=service_release_error_ratio&service=web&release=v1', {
      token: admin,
    });
    assert.equal((rel.body as { samples: { value: number }[] }).samples[0]?.value, 0.25);
    const m2 = await call('GET', '/metrics', { token: mt });
    assert.match(m2.text, /^nines_service_release_requests_total\{service="web",release="v1"\} 40$/m);
    assert.match(m2.text, /^nines_service_release_error_ratio\{service="web",release="v1"\} 0\.25$/m);
    // 40 answers in (10 ms, 25 ms] → p99 = 10 + 15 × 0.99 ms.
    assert.match(
      m2.text,
      /^nines_service_release_latency_p99_seconds\{service="web",release="v1"\} 0\.02485/m,
    );
    m.text = m2.text;
    if (spawnSync('sh', ['-c', 'command -v promtool']).status !== 0) {
      t.skip('promtool not found: apt-get install prometheus');
      return;
    }
    const check = spawnSync('promtool', ['check', 'metrics'], { input: m.text, encoding: 'utf8' });
    const findings = `${check.stdout}${check.stderr}`.split('\n').filter((l) => l.trim() !== '');
    // node_exporter's own camelCase memory names are the only lint finding allowed (see hostmetrics.test).
    const other = findings.filter(
      (l) =>
        !/^node_memory_(Mem|Swap)\w+_bytes metric names should be written in 'snake_case'/.test(l.trim()),
    );
    assert.deepEqual(other, [], findings.join('\n'));
  });
});
