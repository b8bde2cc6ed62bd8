#!/usr/bin/env node
// bench/proxy: reverse proxies side by side on this machine, same backend, same load (issue 3).
// Backend: nginx, 1 worker, fixed 200 "ok" with keep-alive. Load: `wrk -t1 -c50 -d10s --latency`,
// 3 rounds alternating between the proxies, medians. Each proxy is pinned alone on core 1 and wrk +
// the backend on core 0 when `taskset` exists and there are ≥ 2 cores (MEASUREMENTS.md); nines
// `--workers 2` runs unpinned. nines runs from the compiled dist (NINES_DIST_DIR, default dist) with
// every feature on: active health checks, retries, passive ejection, metrics, access log to a file;
// a second row adds the optional latency flags (src/proxy/node-flags.ts).
// Installs haproxy/nginx/wrk with apt-get when missing. Prints a table and, last, one JSON line.
// Usage: npm run bench:proxy [-- --duration 10 --rounds 3 --connections 50 --only haproxy,nines,...]
// NINES_BASELINE_DIST_DIR=dist-old adds a row for another build of nines (A/B in one run).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { printResultLine, printTable } from './lib/table.mjs';

const root = new URL('..', import.meta.url).pathname;
const dist = join(root, process.env.NINES_DIST_DIR ?? 'dist');
const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    only: { type: 'string' },
  },
});
const duration = Number(values.duration);
const rounds = Number(values.rounds);
const connections = Number(values.connections);
const tmp = mkdtempSync(join(tmpdir(), 'nines-bench-proxy-'));
const started = []; // { name, child }
// Bounded in time whatever happens.
const hardLimit = setTimeout(
  () => {
    console.error('bench/proxy: time limit reached, stopping');
    void cleanup().then(() => process.exit(1));
  },
  (rounds * 9 * (duration + 8) + 180) * 1000,
);
hardLimit.unref();

function have(bin) {
  return spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
}

function ensureTools() {
  const missing = [
    ['haproxy', 'haproxy'],
    ['nginx', 'nginx'],
    ['wrk', 'wrk'],
  ].filter(([bin]) => !have(bin) && !have(`/usr/sbin/${bin}`));
  if (missing.length === 0) return;
  const pkgs = missing.map(([, p]) => p);
  console.error(`bench/proxy: installing ${pkgs.join(' ')}`);
  execFileSync('apt-get', ['install', '-y', ...pkgs], { stdio: 'inherit', timeout: 300_000 });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const pin = have('taskset') && availableParallelism() >= 2;
function pinned(core, cmd, args) {
  return pin && core !== null ? ['taskset', ['-c', String(core), cmd, ...args]] : [cmd, args];
}

function start(name, core, cmd, args, opts = {}) {
  const [c, a] = pinned(core, cmd, args);
  const child = spawn(c, a, { stdio: ['ignore', 'ignore', 'pipe'], cwd: root, ...opts });
  let err = '';
  child.stderr.on('data', (d) => {
    err = (err + d).slice(-4000);
  });
  child.on('error', (e) => {
    err += String(e);
  });
  const entry = { name, child, stderr: () => err };
  started.push(entry);
  return entry;
}

async function stop(entry) {
  const { child } = entry;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}

async function cleanup() {
  for (const e of started.reverse()) await stop(e).catch(() => {});
  rmSync(tmp, { recursive: true, force: true });
}

async function waitReady(entry, port, path = '/') {
  const until = Date.now() + 15_000;
  while (Date.now() < until) {
    if (entry.child.exitCode !== null) throw new Error(`${entry.name} exited: ${entry.stderr()}`);
    try {
      const r = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(1000) });
      await r.arrayBuffer();
      if (r.status === 200) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${entry.name} not ready on ${port}: ${entry.stderr()}`);
}

function toMs(v, unit) {
  const n = Number(v);
  return unit === 'us' ? n / 1000 : unit === 's' ? n * 1000 : unit === 'm' ? n * 60_000 : n;
}

function wrk(port, seconds) {
  const [c, a] = pinned(0, 'wrk', [
    '-t1',
    `-c${connections}`,
    `-d${seconds}s`,
    '--latency',
    `http://127.0.0.1:${port}/`,
  ]);
  const r = spawnSync(c, a, { encoding: 'utf8', timeout: (seconds + 20) * 1000 });
  const out = r.stdout ?? '';
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
  const lat = (p) => {
    const m = new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s|m)`).exec(out);
    return m ? toMs(m[1], m[2]) : Number.NaN;
  };
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = sock ? sock.slice(1).reduce((s, x) => s + Number(x), 0) : 0;
  return {
    rps,
    p50: lat(50),
    p99: lat(99),
    errors: non2xx + socketErrors,
    raw: rps === 0 ? out + r.stderr : '',
  };
}

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;

/** CPU seconds (user + system) of a process and its descendants, from /proc (0 where unavailable). */
function cpuSeconds(pid) {
  let total = 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    total += (Number(f[11]) + Number(f[12])) / CLK_TCK;
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean);
    for (const k of kids) total += cpuSeconds(Number(k));
  } catch {}
  return total;
}

function median(xs) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const nginxCommon = (dir) => `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
`;

async function main() {
  ensureTools();
  const nginxBin = have('nginx') ? 'nginx' : '/usr/sbin/nginx';
  const haproxyBin = have('haproxy') ? 'haproxy' : '/usr/sbin/haproxy';
  const haproxyVersion = (spawnSync(haproxyBin, ['-v'], { encoding: 'utf8' }).stdout ?? '').split('\n')[0];

  // ---- backend
  const backendPort = await freePort();
  const bdir = join(tmp, 'backend');
  spawnSync('mkdir', ['-p', bdir]);
  writeFileSync(
    join(bdir, 'nginx.conf'),
    `${nginxCommon(bdir)}  server { listen 127.0.0.1:${backendPort}; default_type text/plain; location / { return 200 "ok"; } }
}
`,
  );
  const backend = start('backend', 0, nginxBin, ['-p', bdir, '-c', join(bdir, 'nginx.conf')]);
  await waitReady(backend, backendPort);

  // ---- the proxies
  const proxies = [];
  const add = async (key, name, core, cmd, args, opts, readyPath) => {
    if (values.only && !values.only.split(',').includes(key)) return;
    const port = await freePort();
    const a = args(port);
    const entry = start(name, core, cmd, a, opts?.(port));
    await waitReady(entry, port, readyPath);
    proxies.push({ key, name, port, entry, runs: [] });
  };

  await add(
    'haproxy',
    `HAProxy ${haproxyVersion.split(' ')[2] ?? ''} (nbthread 1, http-reuse always)`,
    1,
    haproxyBin,
    (port) => {
      const cfg = join(tmp, 'haproxy.cfg');
      writeFileSync(
        cfg,
        `global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend f
  bind 127.0.0.1:${port}
  default_backend b
backend b
  server s1 127.0.0.1:${backendPort}
`,
      );
      return ['-db', '-f', cfg];
    },
  );

  await add('nginx', 'nginx (1 worker, upstream keepalive)', 1, nginxBin, (port) => {
    const dir = join(tmp, 'nginx-proxy');
    spawnSync('mkdir', ['-p', dir]);
    writeFileSync(
      join(dir, 'nginx.conf'),
      `${nginxCommon(dir)}  upstream b { server 127.0.0.1:${backendPort}; keepalive 128; }
  server { listen 127.0.0.1:${port};
    location / { proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
`,
    );
    return ['-p', dir, '-c', join(dir, 'nginx.conf')];
  });

  const ninesEnv = (port) => ({
    env: {
      ...process.env,
      BENCH_ACCESS_LOG_FILE: join(tmp, `nines-access-${port}.log`),
      BENCH_MAX_SECONDS: String(rounds * 9 * (duration + 8) + 120),
    },
  });
  await add(
    'nines',
    'nines (all features on)',
    1,
    process.execPath,
    (port) => [join(dist, 'proxy', 'bench.js'), String(port), String(backendPort)],
    ninesEnv,
  );
  // The optional latency tuning of docs/operations.md (src/proxy/node-flags.ts says what it trades).
  const { LATENCY_NODE_FLAGS } = await import(join(dist, 'proxy', 'node-flags.js'));
  await add(
    'nines-latency-gc',
    `nines (all features on; ${LATENCY_NODE_FLAGS.join(' ')})`,
    1,
    process.execPath,
    (port) => [...LATENCY_NODE_FLAGS, join(dist, 'proxy', 'bench.js'), String(port), String(backendPort)],
    ninesEnv,
  );

  // A/B inside one run (the machine is shared): NINES_BASELINE_DIST_DIR=<an older build> adds a row.
  if (process.env.NINES_BASELINE_DIST_DIR) {
    await add(
      'nines-baseline',
      `nines baseline (${process.env.NINES_BASELINE_DIST_DIR})`,
      1,
      process.execPath,
      (port) => [
        join(root, process.env.NINES_BASELINE_DIST_DIR, 'proxy', 'bench.js'),
        String(port),
        String(backendPort),
      ],
      ninesEnv,
    );
  }

  await add('nines-workers-2', 'nines --workers 2 (unpinned)', null, process.execPath, (port) => {
    const snap = join(tmp, 'snapshot.json');
    writeFileSync(
      snap,
      JSON.stringify({
        version: 1,
        services: [
          {
            name: 'bench',
            hosts: [],
            pathPrefix: '/',
            mode: 'live',
            health: { path: '/', intervalMs: 1000, timeoutMs: 1000, rise: 2, fall: 3 },
            instances: [
              {
                id: 'u0',
                address: '127.0.0.1',
                port: backendPort,
                state: 'ready',
                weight: 1,
                release: 'bench',
              },
            ],
          },
        ],
      }),
    );
    const cfg = join(tmp, 'cluster.json');
    writeFileSync(
      cfg,
      JSON.stringify({
        workers: 2,
        logLevel: 'warn',
        snapshotFile: snap,
        proxy: {
          host: '127.0.0.1',
          port,
          proxyId: 'bench',
          adminPort: 0,
          accessLogFile: join(tmp, 'nines-cluster-access.log'),
        },
      }),
    );
    return [join(dist, 'proxy', 'cluster.js'), cfg];
  });

  const peerScript = {
    'http-proxy': (port) => `import http from 'node:http';
import httpProxy from 'http-proxy';
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const proxy = httpProxy.createProxyServer({ target: 'http://127.0.0.1:${backendPort}', agent });
proxy.on('error', (_e, _req, res) => { try { res.writeHead(502); res.end(); } catch {} });
http.createServer((req, res) => proxy.web(req, res)).listen(${port}, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));`,
    fastify: (port) => `import Fastify from 'fastify';
import proxy from '@fastify/http-proxy';
const app = Fastify({ logger: false });
await app.register(proxy, { upstream: 'http://127.0.0.1:${backendPort}' });
await app.listen({ port: ${port}, host: '127.0.0.1' });
process.on('SIGTERM', () => process.exit(0));`,
  };
  await add('http-proxy', 'http-proxy (keep-alive agent)', 1, process.execPath, (port) => [
    '--input-type=module',
    '-e',
    peerScript['http-proxy'](port),
  ]);
  await add('fastify-http-proxy', '@fastify/http-proxy', 1, process.execPath, (port) => [
    '--input-type=module',
    '-e',
    peerScript.fastify(port),
  ]);

  // ---- warm-up, then rounds alternating between proxies
  for (const p of proxies) wrk(p.port, 2);
  for (let r = 0; r < rounds; r++) {
    for (const p of proxies) {
      const cpu0 = cpuSeconds(p.entry.child.pid);
      const res = wrk(p.port, duration);
      const requests = res.rps * duration;
      res.cpuUsPerReq =
        requests > 0
          ? Math.round(((cpuSeconds(p.entry.child.pid) - cpu0) / requests) * 1e7) / 10
          : Number.NaN;
      if (res.rps === 0) console.error(`bench/proxy: ${p.name}: wrk failed: ${res.raw.slice(0, 500)}`);
      p.runs.push(res);
      console.error(
        `round ${r + 1}/${rounds} ${p.name}: ${Math.round(res.rps)} rps, p50 ${res.p50} ms, p99 ${res.p99} ms, ${res.cpuUsPerReq} CPU µs/req, errors ${res.errors}`,
      );
    }
  }
  await cleanup();

  const rows = proxies.map((p) => ({
    key: p.key,
    name: p.name,
    rps: Math.round(median(p.runs.map((x) => x.rps))),
    p50: median(p.runs.map((x) => x.p50)),
    p99: median(p.runs.map((x) => x.p99)),
    cpuUsPerReq: median(p.runs.map((x) => x.cpuUsPerReq)),
    errors: p.runs.reduce((s, x) => s + x.errors, 0),
  }));
  const ha = rows.find((r) => r.key === 'haproxy');
  const hp = rows.find((r) => r.key === 'http-proxy');
  for (const r of rows) {
    r.xHaproxy = ha ? Math.round((r.rps / ha.rps) * 100) / 100 : null;
  }
  printTable(
    rows,
    [
      { key: 'name', title: 'proxy' },
      { key: 'rps', title: 'rps' },
      { key: 'p50', title: 'p50 ms' },
      { key: 'p99', title: 'p99 ms' },
      { key: 'xHaproxy', title: '× HAProxy' },
      { key: 'cpuUsPerReq', title: 'CPU µs/req' },
      { key: 'errors', title: 'errors' },
    ],
    `wrk -t1 -c${connections} -d${duration}s --latency, median of ${rounds} rounds; pinned: ${pin ? 'proxy core 1, wrk+backend core 0' : 'no'}`,
  );
  const nines = rows.find((r) => r.key === 'nines');
  const targets =
    nines && ha && hp
      ? {
          rpsVsHaproxy: Math.round((nines.rps / ha.rps) * 100) / 100,
          rpsVsHttpProxy: Math.round((nines.rps / hp.rps) * 100) / 100,
          p99OverHaproxyMs: Math.round((nines.p99 - ha.p99) * 100) / 100,
          met: nines.rps >= 0.5 * ha.rps && nines.rps >= 2 * hp.rps && nines.p99 <= ha.p99 + 2,
        }
      : null;
  if (targets)
    console.log(
      `\ntargets (≥ 0.5× HAProxy, ≥ 2× http-proxy, p99 ≤ HAProxy + 2 ms): ${JSON.stringify(targets)}`,
    );
  printResultLine({
    bench: 'proxy',
    connections,
    durationS: duration,
    rounds,
    pinned: pin,
    results: Object.fromEntries(
      rows.map((r) => [
        r.key,
        { rps: r.rps, p50: r.p50, p99: r.p99, xHaproxy: r.xHaproxy, errors: r.errors },
      ]),
    ),
    targets,
  });
}

main().catch(async (err) => {
  console.error(err);
  await cleanup().catch(() => {});
  process.exit(1);
});
