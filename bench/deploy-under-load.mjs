#!/usr/bin/env node
// bench/deploy-under-load: failed requests during a restart of an app under steady load, nines vs PM2.
// In one run, for two apps — examples/hello (graceful SIGTERM handling) and fixtures/apps/abrupt (exits
// at once on SIGTERM) — with 2 instances each at ~800 req/s over 32 keep-alive connections:
//   1. nines: `nines up` with the app as v1, then a rolling deploy to v2 through the nines proxy;
//   2. PM2 7.0.4 cluster mode, `pm2 reload` (bench/lib/pm2.mjs installs PM2 into .bench/pm2).
// Prints a table and, last, one JSON line. MEASUREMENTS.md: pm2 reload fails 8–40 of ~24,000.
// Usage: npm run bench:deploy-under-load [-- --rate 800 --requests 24000]
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pm2ReloadUnderLoad } from './lib/pm2.mjs';
import { printResultLine, printTable } from './lib/table.mjs';

const root = new URL('..', import.meta.url).pathname;
const h = await import(join(root, 'dist', 'e2e', 'harness.js'));
const { values } = parseArgs({
  options: { rate: { type: 'string', default: '800' }, requests: { type: 'string', default: '24000' } },
});
const rate = Number(values.rate);
const requests = Number(values.requests);
// MEASUREMENTS.md's restart scenario: the app answers after 20 ms and boots in 1 s.
const slowish = { RESPONSE_DELAY_MS: '20', BOOT_DELAY_MS: '1000' };
const apps = [
  { key: 'hello', name: 'examples/hello', dir: join(root, 'examples', 'hello'), env: {} },
  { key: 'graceful', name: 'graceful, 20 ms, 1 s boot', dir: h.fixture('graceful'), env: slowish },
  { key: 'abrupt', name: 'exits on SIGTERM, 20 ms, 1 s boot', dir: h.fixture('abrupt'), env: slowish },
];

async function ninesRolling(app) {
  const tmp = h.tempDir('nines-bench-');
  const dataDir = join(tmp, 'data');
  let up;
  try {
    up = await h.startUp({ dataDir, config: h.serviceYaml({ source: app.dir, instances: 2, env: app.env }) });
    const rel = await h.cli(dataDir, 'release', 'web', app.dir, '--version', 'v2');
    if (rel.code !== 0) throw new Error(rel.stderr);
    let deployMs = 0;
    const { value, load } = await h.underLoad(
      `${up.info.proxyUrl}/`,
      async () => {
        const t0 = Date.now();
        const r = await h.cli(dataDir, 'deploy', 'web', 'v2');
        deployMs = Date.now() - t0;
        return r;
      },
      { rate, connections: 32, minRequests: requests, leadMs: 2000 },
    );
    if (value.code !== 0) throw new Error(`deploy failed: ${value.stdout}${value.stderr}`);
    return { failed: load.failed, total: load.sent, deployMs, p99: load.latencyMs.p99, errors: load.errors };
  } finally {
    await up?.stop().catch(() => {});
    h.cleanup(tmp, up);
  }
}

const rows = [];
const result = { rate, connections: 32, instances: 2 };
for (const app of apps) {
  const n = await ninesRolling(app);
  rows.push({
    app: app.name,
    system: 'nines rolling deploy',
    failed: n.failed,
    total: n.total,
    'restart ms': n.deployMs,
    'p99 ms': n.p99,
    errors: n.errors,
  });
  const settleMs = Math.max(2000, Math.ceil((requests / rate) * 1000) - 2000);
  const p = await pm2ReloadUnderLoad({
    appDir: app.dir,
    instances: 2,
    rate,
    connections: 32,
    settleMs,
    env: app.env,
  });
  rows.push({
    app: app.name,
    system: 'pm2 cluster reload',
    failed: p.failed,
    total: p.total,
    'restart ms': p.reloadMs,
    'p99 ms': p.latencyMs.p99,
    errors: p.errors,
  });
  result[app.key] = {
    nines: { failed: n.failed, total: n.total },
    pm2: { failed: p.failed, total: p.total },
  };
}
printTable(rows, undefined, `deploy under load: ${rate} req/s, 32 connections, 2 instances`);
printResultLine(result);
