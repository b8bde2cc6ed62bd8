#!/usr/bin/env node
// bench/checks: black-box checks at volume. One controller (a real `nines controller` process), a few
// simulated locations in this process — each a registered host with the agent's own client (signed
// requests) and the agent's own CheckRunner making real HTTP probes — against local HTTP servers.
// Default: 1,000 checks × 3 locations every 18 s = 10,000 probes a minute.
// Prints: results per minute the controller took, its CPU and RSS, store growth extrapolated per day,
// and failure → `down` latency (a target starts failing; time until the check's down event; the
// `for` of an alert rule adds to this, notification is the alerting part's).
// Usage: npm run build && nice -n 10 node bench/checks.mjs [--checks 1000 --locations 3 --interval 18 --window 60]
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { printResultLine, printTable } from './lib/table.mjs';

const root = new URL('..', import.meta.url).pathname;
const h = await import(join(root, 'dist', 'e2e', 'harness.js'));
const { Client } = await import(join(root, 'dist', 'cli', 'client.js'));
const { ControllerClient } = await import(join(root, 'dist', 'agent', 'client.js'));
const { CheckRunner } = await import(join(root, 'dist', 'agent', 'checks.js'));

const { values } = parseArgs({
  options: {
    checks: { type: 'string', default: '1000' },
    locations: { type: 'string', default: '3' },
    interval: { type: 'string', default: '18' },
    window: { type: 'string', default: '60' },
    servers: { type: 'string', default: '4' },
  },
});
const CHECKS = Number(values.checks);
const LOCATIONS = Number(values.locations);
const INTERVAL_S = Number(values.interval);
const WINDOW_S = Number(values.window);
const SERVERS = Number(values.servers);
const CLK_TCK = 100;

const cpuSeconds = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
};
const rssMB = (pid) =>
  Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// The store's logical size (pages in use, as a reader sees it with the WAL applied) and row counts: the
// WAL file's size says more about checkpoint timing than about growth.
const { default: Database } = await import('better-sqlite3');
const storeStats = (dir) => {
  const db = new Database(join(dir, 'nines.db'), { readonly: true, fileMustExist: true });
  try {
    const pages = db.pragma('page_count', { simple: true });
    const size = db.pragma('page_size', { simple: true });
    const count = (t) => db.prepare(`SELECT count(*) AS n FROM ${t}`).get().n;
    return {
      bytes: pages * size,
      minutes: count('check_minutes'),
      transitions: count('check_transitions'),
      events: count('events'),
    };
  } finally {
    db.close();
  }
};

// Local targets: `/fail/...` answers 500 once failing is switched on for it.
const failing = new Set();
const servers = [];
for (let i = 0; i < SERVERS; i++) {
  const s = createServer((req, res) => {
    const bad = failing.has(req.url);
    res.writeHead(bad ? 500 : 200, { 'content-type': 'application/json' });
    res.end(bad ? '{"ok":false}' : '{"ok":true}');
  });
  s.keepAliveTimeout = 1000;
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  servers.push(s);
}

const tmp = h.tempDir('nines-bench-checks-');
const dataDir = join(tmp, 'data');
const runners = [];
const abort = new AbortController();
let ctl;
try {
  ctl = await h.spawnCli(['controller', '--data-dir', dataDir, '--port', '0', '--log-level', 'warn'], 60_000);
  const url = ctl.ready.trim();
  const pid = ctl.proc.pid;
  const info = JSON.parse(await readFile(join(dataDir, 'controller.json'), 'utf8'));
  const adminToken = (await readFile(info.adminTokenFile, 'utf8')).trim();
  const admin = new Client({ url, token: adminToken });
  const nodeToken = (await readFile(info.nodeTokenFile, 'utf8')).trim();

  const t0 = Date.now();
  for (let i = 0; i < CHECKS; i++) {
    const port = servers[i % SERVERS].address().port;
    await admin.put(`/v1/checks/c-${i}`, {
      type: 'http',
      url: `http://127.0.0.1:${port}/fail/c-${i}`,
      json: { path: '$.ok', equals: true },
      interval: `${INTERVAL_S}s`,
      timeout: '2s',
    });
  }
  console.log(`${CHECKS} checks declared in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const log = pino({ level: 'silent' });
  for (let i = 0; i < LOCATIONS; i++) {
    const client = new ControllerClient(url, nodeToken);
    const { hostId, key } = await client.register(
      { name: `probe-${i}`, zone: `zone-${i}`, labels: {}, address: '127.0.0.1' },
      abort.signal,
    );
    client.credentials = { hostId, key };
    const runner = new CheckRunner({
      transport: client,
      hostId: () => hostId,
      logger: log,
      signal: abort.signal,
      pollWaitS: 25,
    });
    runners.push({ runner, client, done: runner.run() });
  }

  const metric = async (name) => {
    const text = await (
      await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${adminToken}` } })
    ).text();
    const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  };
  // Warm up one interval, then measure a window.
  await sleep((INTERVAL_S + 3) * 1000);
  const r0 = await metric('nines_check_results_received_total');
  const cpu0 = cpuSeconds(pid);
  const db0 = storeStats(dataDir);
  const tA = Date.now();
  await sleep(WINDOW_S * 1000);
  const windowS = (Date.now() - tA) / 1000;
  const r1 = await metric('nines_check_results_received_total');
  const cpu = (cpuSeconds(pid) - cpu0) / windowS;
  const rss = rssMB(pid);
  // The controller writes minute rollups once a minute: let one flush land before reading.
  await sleep(Math.max(0, 62_000 - WINDOW_S * 1000));
  const db1 = storeStats(dataDir);
  const spanS = (Date.now() - tA) / 1000;
  const perDay = (k) => ((db1[k] - db0[k]) / spanS) * 86_400;
  const growthPerDay = perDay('bytes');
  const { checks } = await admin.get('/v1/checks');
  const upCount = checks.filter((c) => c.state === 'up').length;

  // Failure → down: one target starts failing; the check is down when 2 of 3 locations saw it.
  const victim = 'c-0';
  const tFail = Date.now();
  failing.add(`/fail/${victim}`);
  let downAt = null;
  const until = Date.now() + (3 * INTERVAL_S + 15) * 1000;
  while (Date.now() < until) {
    const { events } = await admin.get('/v1/events?kind=check.down&limit=10');
    const e = events.find((x) => x.subject === victim && x.at >= tFail);
    if (e) {
      downAt = e.at;
      break;
    }
    await sleep(100);
  }
  const downLatencyS = downAt === null ? null : (downAt - tFail) / 1000;

  const perMin = ((r1 - r0) / windowS) * 60;
  const rows = [
    { measure: 'checks × locations', value: `${CHECKS} × ${LOCATIONS}`, unit: `every ${INTERVAL_S} s` },
    { measure: 'probes expected', value: (CHECKS * LOCATIONS * 60) / INTERVAL_S, unit: 'per min' },
    { measure: 'results stored and evaluated', value: perMin, unit: 'per min' },
    { measure: 'checks up after warm-up', value: upCount, unit: `of ${CHECKS}` },
    { measure: 'controller CPU', value: cpu * 100, unit: '% of a core' },
    { measure: 'controller RSS', value: rss, unit: 'MB' },
    {
      measure: 'store growth (logical)',
      value: growthPerDay / 1024 / 1024,
      unit: 'MB per day, before compaction',
    },
    {
      measure: 'minute rollup rows',
      value: perDay('minutes'),
      unit: 'per day (compacted to hours after 1 day, days after 30)',
    },
    { measure: 'state transitions', value: perDay('transitions'), unit: 'per day' },
    { measure: 'events', value: perDay('events'), unit: 'per day' },
    {
      measure: 'failure → check down',
      value: downLatencyS,
      unit: `s (interval ${INTERVAL_S} s; bound ≈ interval + 1 s tick + 1 s batch)`,
    },
  ];
  printTable(rows, ['measure', 'value', 'unit']);
  console.log(
    `target: 10,000 checks/min on one controller core: ${perMin >= 9500 && cpu <= 1 ? 'met' : 'NOT met'}`,
  );
  printResultLine({
    bench: 'checks',
    checks: CHECKS,
    locations: LOCATIONS,
    intervalS: INTERVAL_S,
    resultsPerMinute: perMin,
    controllerCpuPercent: cpu * 100,
    controllerRssMB: rss,
    storeGrowthMBPerDay: growthPerDay / 1024 / 1024,
    failureToDownS: downLatencyS,
  });
} catch (err) {
  console.error(`bench/checks failed: ${err?.stack ?? err}`);
  if (ctl) console.error(`controller output (last 3,000 characters):\n${ctl.output().slice(-3000)}`);
  process.exitCode = 1;
} finally {
  abort.abort();
  await Promise.allSettled(runners.map((r) => r.done));
  await Promise.allSettled(runners.map((r) => r.client.close()));
  await ctl?.stop().catch(() => {});
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
  h.cleanup(tmp);
}
