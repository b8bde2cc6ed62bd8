#!/usr/bin/env node
// bench/fleet: one controller, many simulated hosts speaking the real agent protocol (signed requests,
// long-polled desired state, a report per second each): 1,000 hosts and 10,000 instances by default.
// Prints: time to place and converge the instances; time from a desired-state change to every
// affected agent having it (p50, p99, max); heartbeat reports handled per second and their latency;
// controller CPU and RSS (and the load average: the sims share the machine with the controller and
// whatever else runs). Targets (issue 5): p99 propagation ≤ 1 s, RSS ≤ 500 MB.
// Instances are spread over services of at most 1,000 each; the change measured scales the service
// `wave` from 1 to one instance per host (up to 1,000).
// Usage: npm run bench:fleet [-- --hosts 1000 --instances 10000 --zones 3]
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { percentile, SimAgent } from './lib/fleet-sim.mjs';
import { printResultLine, printTable } from './lib/table.mjs';

const root = new URL('..', import.meta.url).pathname;
const h = await import(join(root, 'dist', 'e2e', 'harness.js'));
const { Client } = await import(join(root, 'dist', 'cli', 'client.js'));
const { packDirectory } = await import(join(root, 'dist', 'core', 'artifact.js'));

const { values } = parseArgs({
  options: {
    hosts: { type: 'string', default: '1000' },
    instances: { type: 'string', default: '10000' },
    zones: { type: 'string', default: '3' },
    window: { type: 'string', default: '10' },
  },
});
const HOSTS = Number(values.hosts);
const INSTANCES = Number(values.instances);
const ZONES = Number(values.zones);
const WINDOW_S = Number(values.window);
const CLK_TCK = 100; // Linux USER_HZ on every architecture nines supports

function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime + stime
}

function rssMB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : null;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, fn, timeoutMs) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

const tmp = h.tempDir('nines-bench-fleet-');
const dataDir = join(tmp, 'data');
const sims = [];
let ctl;
try {
  ctl = await h.spawnCli(['controller', '--data-dir', dataDir, '--port', '0', '--log-level', 'warn'], 60_000);
  const url = ctl.ready.trim();
  const pid = ctl.proc.pid;
  const info = JSON.parse(await readFile(join(dataDir, 'controller.json'), 'utf8'));
  const admin = new Client({ url, token: (await readFile(info.adminTokenFile, 'utf8')).trim() });
  const nodeToken = (await readFile(info.nodeTokenFile, 'utf8')).trim();

  // A service has at most 1,000 instances (as nines.yaml allows): the fleet's instances are spread
  // over several services, plus `wave`, which starts with 1 and is scaled to one per host to measure
  // how fast a desired-state change reaches every host.
  const PER = 1000;
  const services = [];
  for (let left = INSTANCES, k = 0; left > 0; left -= PER, k++) {
    services.push({ name: `sim-${k}`, instances: Math.min(PER, left) });
  }
  services.push({ name: 'wave', instances: 1 });
  const specOf = (instances) => ({
    command: 'node server.js',
    instances,
    health: { path: '/healthz', interval: '1s', timeout: '1s', rise: 1, fall: 3 },
    healthyDeadline: '600s',
    rolling: { maxSurge: '100%', maxUnavailable: 0 },
  });
  const art = join(tmp, 'hello.tgz');
  const { sha256 } = await packDirectory(join(root, 'examples', 'hello'), art);
  for (const svc of services) {
    await admin.put(`/v1/services/${svc.name}`, specOf(svc.instances));
    await admin.upload(`/v1/services/${svc.name}/releases?version=v1`, art, sha256);
  }

  // ---- join -------------------------------------------------------------------------------------
  const t0join = Date.now();
  for (let i = 0; i < HOSTS; i += 50) {
    const batch = [];
    for (let j = i; j < Math.min(HOSTS, i + 50); j++) {
      const s = new SimAgent({ url, token: nodeToken, name: `sim-${j}`, zone: `zone-${j % ZONES}` });
      sims.push(s);
      batch.push(s.start());
    }
    await Promise.all(batch);
  }
  const joinS = (Date.now() - t0join) / 1000;
  console.log(`${HOSTS} simulated hosts joined in ${joinS.toFixed(1)} s`);

  // ---- place and converge -------------------------------------------------------------------------
  const cpu0 = cpuSeconds(pid);
  const t0deploy = Date.now();
  const deploys = [];
  for (const svc of services) {
    deploys.push((await admin.post(`/v1/services/${svc.name}/deploys`, { version: 'v1' })).deploy);
  }
  const finished = [];
  for (const d0 of deploys) {
    finished.push(
      await waitFor(
        `the initial deploy of ${d0.service}`,
        async () => {
          const { deploy: d } = await admin.get(`/v1/deploys/${d0.id}`);
          return ['succeeded', 'failed', 'reverted'].includes(d.state) ? d : undefined;
        },
        900_000,
      ),
    );
  }
  const failedDeploys = finished.filter((d) => d.state !== 'succeeded');
  for (const d of failedDeploys) console.log(`deploy of ${d.service} ${d.state}: ${d.reason}`);
  const done = { state: failedDeploys.length === 0 ? 'succeeded' : `${failedDeploys.length} failed` };
  const convergeS = (Date.now() - t0deploy) / 1000;
  const convergeCpu = cpuSeconds(pid) - cpu0;
  const placed = sims.reduce((n, s) => n + s.instances.length, 0);
  console.log(
    `deploy of ${INSTANCES + 1} instances in ${services.length} services: ${done.state} in ${convergeS.toFixed(1)} s (${placed} placed)`,
  );

  // ---- steady state: heartbeats ----------------------------------------------------------------------
  await sleep(2000);
  for (const s of sims) s.reports = { ok: 0, failed: 0, latencies: [] };
  const cpuA = cpuSeconds(pid);
  const tA = Date.now();
  await sleep(WINDOW_S * 1000);
  const windowS = (Date.now() - tA) / 1000;
  const steadyCpu = (cpuSeconds(pid) - cpuA) / windowS;
  const reportsOk = sims.reduce((n, s) => n + s.reports.ok, 0);
  const reportsFailed = sims.reduce((n, s) => n + s.reports.failed, 0);
  const reportLat = sims.flatMap((s) => s.reports.latencies);
  const steadyRss = rssMB(pid);

  // ---- propagation: one more instance per host ---------------------------------------------------------
  const before = new Map(sims.map((s) => [s, s.generation]));
  const cpuChange0 = cpuSeconds(pid);
  const tChange = Date.now();
  const wave = Math.min(PER, HOSTS);
  await admin.put('/v1/services/wave', specOf(wave));
  await waitFor(
    'the new instances to reach their hosts',
    () => sims.reduce((n, s) => n + s.instances.length, 0) >= INSTANCES + wave,
    120_000,
  ).catch(async (err) => {
    console.log(String(err));
    // Say why: the controller's last words about the service.
    const { events } = await admin.get('/v1/events?limit=200');
    for (const e of events
      .filter((e) => e.subject === 'wave' || e.subject?.startsWith('wave-'))
      .slice(0, 8)) {
      console.log(`  event ${new Date(e.at).toISOString()} ${e.kind}: ${e.message}`);
    }
  });
  // The controller's CPU from the change until the last host had it (the sims share the machine).
  const lastAt = Math.max(0, ...sims.flatMap((s) => [...s.received.values()]));
  const cpuChange = cpuSeconds(pid) - cpuChange0;
  const changeS = (lastAt - tChange) / 1000;
  await sleep(1000);
  const delays = [];
  for (const s of sims) {
    const gens = [...s.received.entries()].filter(([g, at]) => g > before.get(s) && at >= tChange);
    if (gens.length > 0) delays.push(Math.min(...gens.map(([, at]) => at)) - tChange);
  }
  const peakRss = rssMB(pid);

  const rows = [
    { measure: 'hosts joined', value: HOSTS, unit: `in ${joinS.toFixed(1)} s` },
    { measure: 'instances placed and reported running', value: placed, unit: `${done.state}` },
    { measure: 'initial deploy time', value: convergeS, unit: 's' },
    { measure: 'controller CPU during it', value: convergeCpu, unit: 'CPU s' },
    { measure: 'heartbeat reports handled', value: reportsOk / windowS, unit: 'per s' },
    { measure: 'heartbeat reports failed', value: reportsFailed, unit: `in ${windowS.toFixed(0)} s` },
    { measure: 'report latency p50', value: percentile(reportLat, 50), unit: 'ms' },
    { measure: 'report latency p99', value: percentile(reportLat, 99), unit: 'ms' },
    { measure: 'controller CPU, steady', value: steadyCpu * 100, unit: '% of a core' },
    { measure: 'controller RSS, steady', value: steadyRss, unit: 'MB' },
    { measure: 'hosts given a change', value: delays.length, unit: `of ${HOSTS}` },
    { measure: 'propagation p50', value: percentile(delays, 50), unit: 'ms' },
    { measure: 'propagation p99', value: percentile(delays, 99), unit: 'ms' },
    { measure: 'propagation max', value: delays.length ? Math.max(...delays) : null, unit: 'ms' },
    { measure: 'controller CPU until then', value: cpuChange, unit: `CPU s in ${changeS.toFixed(1)} s` },
    { measure: 'controller RSS, after', value: peakRss, unit: 'MB' },
  ];
  printTable(rows, ['measure', 'value', 'unit']);
  const p99 = percentile(delays, 99);
  console.log(
    `target: propagation p99 ≤ 1,000 ms: ${p99 !== null && p99 <= 1000 ? 'met' : 'NOT met'}; ` +
      `RSS ≤ 500 MB: ${Math.max(steadyRss ?? 0, peakRss ?? 0) <= 500 ? 'met' : 'NOT met'}`,
  );
  printResultLine({
    bench: 'fleet',
    hosts: HOSTS,
    instances: INSTANCES,
    placed,
    deployState: done.state,
    deploySeconds: convergeS,
    reportsPerSecond: reportsOk / windowS,
    reportsFailed,
    reportP50Ms: percentile(reportLat, 50),
    reportP99Ms: percentile(reportLat, 99),
    controllerCpuSteadyPct: steadyCpu * 100,
    controllerRssMB: Math.max(steadyRss ?? 0, peakRss ?? 0),
    propagatedHosts: delays.length,
    propagationP50Ms: percentile(delays, 50),
    propagationP99Ms: p99,
    propagationMaxMs: delays.length ? Math.max(...delays) : null,
    propagationCpuSeconds: cpuChange,
    loadAverage: (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' '),
  });
} catch (err) {
  console.error(`bench/fleet failed: ${err?.stack ?? err}`);
  if (ctl) console.error(`controller output (last 3,000 characters):\n${ctl.output().slice(-3000)}`);
  process.exitCode = 1;
} finally {
  await Promise.allSettled(sims.map((s) => s.stop()));
  await ctl?.stop().catch(() => {});
  h.cleanup(tmp);
}
