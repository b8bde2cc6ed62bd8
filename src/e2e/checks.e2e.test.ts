import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { cleanup, cli, fixture, serviceYaml, startUp, tempDir, type Up } from './harness.js';

/**
 * Checks through the product: nines.yaml declares a dependency check, `nines up` applies it and its agent
 * probes a real server; the dependency fails and recovers; `nines checks`, `nines uptime`,
 * `nines availability` and the public /status page show it.
 */
describe('checks, uptime and the status page through nines up', () => {
  const root = tempDir('nines-e2e-checks-');
  const dataDir = join(root, 'data');
  let up: Up | undefined;
  let status = 200;
  const dep = createServer((_q, res) => {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: status === 200 }));
  });
  after(async () => {
    cleanup(root, up);
    dep.closeAllConnections();
    await new Promise((r) => dep.close(r));
  });

  async function checks(): Promise<{
    code: number | null;
    list: { name: string; state: string; message: string }[];
  }> {
    const r = await cli(dataDir, '--json', 'checks');
    return {
      code: r.code,
      list: (JSON.parse(r.stdout) as { checks: { name: string; state: string; message: string }[] }).checks,
    };
  }

  async function until(state: string): Promise<{ code: number | null; message: string }> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const r = await checks();
      const c = r.list.find((x) => x.name === 'payments');
      if (c?.state === state) return { code: r.code, message: c.message };
      if (Date.now() > deadline) assert.fail(`payments stayed ${c?.state}: ${c?.message}`);
      await new Promise((res) => setTimeout(res, 250));
    }
  }

  test('a dependency goes down and comes back; reports and /status show it', async () => {
    await new Promise<void>((r) => dep.listen(0, '127.0.0.1', r));
    const port = (dep.address() as AddressInfo).port;
    const yaml = `${serviceYaml({ source: fixture('graceful'), instances: 1 })}checks:
  payments:
    type: http
    url: http://127.0.0.1:${port}/health
    json: { path: $.ok, equals: true }
    interval: 300ms
    timeout: 1s
    dependency: true
    service: web
`;
    up = await startUp({ dataDir, config: yaml });

    const ok = await until('up');
    assert.equal(ok.code, 0);
    status = 503;
    const down = await until('down');
    assert.equal(down.code, 1, 'nines checks exits 1 while a check is down');
    assert.match(down.message, /status 503/);
    status = 200;
    await until('up');

    const human = await cli(dataDir, 'checks');
    assert.match(human.stdout, /^payments \(dep\) +http +GET http:\/\/127\.0\.0\.1:\d+\/health +up /m);

    const uptime = await cli(dataDir, '--json', 'uptime', '--window', '24h');
    assert.equal(uptime.code, 0, uptime.stderr);
    const rows = (
      JSON.parse(uptime.stdout) as {
        rows: { kind: string; name: string; availability: number | null; incidents: unknown[] }[];
      }
    ).rows;
    const pay = rows.find((r) => r.kind === 'check' && r.name === 'payments');
    assert.equal(pay?.incidents.length, 1);
    assert.ok(pay?.availability !== null && (pay?.availability ?? 1) < 1);
    assert.ok(rows.some((r) => r.kind === 'service' && r.name === 'web'));
    const table = await cli(dataDir, 'uptime', '--window', '24h');
    assert.match(table.stdout, /payments: down .* → .*: failing from 1 of 1 location/);

    const avail = await cli(dataDir, '--json', 'availability', 'web');
    assert.equal(avail.code, 0, avail.stderr);
    const a = (JSON.parse(avail.stdout) as { services: { components: { name: string; kind: string }[] }[] })
      .services[0];
    assert.deepEqual(
      a?.components.map((c) => c.kind),
      ['instances', 'dependency'],
    );

    const page = await fetch(`${up.info.apiUrl}/status`);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /payments/);
    assert.match(html, /1 incident/);
    assert.doesNotMatch(html, /127\.0\.0\.1/);
  });
});
