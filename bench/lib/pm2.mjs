// The PM2 half of the deploy-under-load benchmark: how many requests does `pm2 reload` of a cluster-mode
// app fail under steady load? (MEASUREMENTS.md: 8–40 of ~24,000 at ~800 req/s.) nines must do better.
//
// PM2 7.0.4 is installed on first use into <repo>/.bench/pm2 (git-ignored) and run with its own PM2_HOME
// in a temp dir, so it never touches a PM2 the user may run. Every process started here (the PM2
// daemon and its workers) is ended before the function returns or throws, and on SIGINT/SIGTERM.
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const PM2_VERSION = '7.0.4';
const root = fileURLToPath(new URL('../../', import.meta.url));
const pm2Prefix = join(root, '.bench', 'pm2');
const pm2Bin = join(pm2Prefix, 'node_modules', 'pm2', 'bin', 'pm2');

// The compiled loadgen; NINES_DIST_DIR (relative to the repo, default `dist`) points elsewhere, e.g.
// at a scratch build in dist-drill.
async function loadgen() {
  const dir = process.env.NINES_DIST_DIR ?? 'dist';
  return import(pathToFileURL(join(root, dir, 'drill', 'loadgen.js')).href);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function run(file, args, opts = {}) {
  return new Promise((res, rej) => {
    execFile(
      file,
      args,
      { maxBuffer: 16 * 1024 * 1024, timeout: 120_000, ...opts },
      (err, stdout, stderr) => {
        if (err) {
          err.message += `\n${stdout}\n${stderr}`;
          rej(err);
        } else res({ stdout, stderr });
      },
    );
  });
}

/** Installs pm2@7.0.4 into .bench/pm2 unless it is there already; returns the path of its CLI. */
export async function ensurePm2() {
  const pkg = join(pm2Prefix, 'node_modules', 'pm2', 'package.json');
  if (existsSync(pkg) && JSON.parse(readFileSync(pkg, 'utf8')).version === PM2_VERSION) return pm2Bin;
  console.error(`installing pm2@${PM2_VERSION} into ${pm2Prefix} …`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  await run(npm, ['install', '--prefix', pm2Prefix, '--no-audit', '--no-fund', `pm2@${PM2_VERSION}`], {
    timeout: 300_000,
  });
  if (!existsSync(pm2Bin)) throw new Error(`pm2 install finished but ${pm2Bin} is missing`);
  return pm2Bin;
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitForOk(url, deadlineMs) {
  const end = Date.now() + deadlineMs;
  let last = 'no answer';
  while (Date.now() < end) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await res.text();
      if (res.ok) return;
      last = `status ${res.status}`;
    } catch (e) {
      last = e.cause?.code ?? e.message;
    }
    await sleep(100);
  }
  throw new Error(`${url} did not answer 200 within ${deadlineMs} ms (${last})`);
}

/**
 * Starts `appDir/server.js` under PM2 in cluster mode with `instances` workers on a free port, puts an
 * open-loop load of `rate` req/s over `connections` keep-alive connections on it, waits `warmupMs`,
 * runs `pm2 reload`, waits `settleMs` after it returns, stops the load and tears everything down.
 *
 * @param {object} o
 * @param {string} o.appDir       app folder (absolute, or relative to the repo root) with server.js
 * @param {number} o.instances    cluster workers
 * @param {number} o.rate         requests per second, total
 * @param {number} o.connections  keep-alive connections of the load client
 * @param {number} o.settleMs     wait after `pm2 reload` returns before stopping the load
 * @param {number} [o.warmupMs=2000]  load before the reload
 * @param {Record<string,string>} [o.env]  extra env for the app (e.g. RESPONSE_DELAY_MS, BOOT_DELAY_MS)
 * @param {object} [o.pm2App]     extra PM2 app options (e.g. { kill_timeout: 1600, wait_ready: true })
 * @param {string} [o.path='/']   path requested by the load
 * @returns {Promise<{ failed: number, total: number, ok: number, durationMs: number, reloadMs: number,
 *   errors: Record<string, number>, byStatus: Record<string, number>,
 *   latencyMs: { p50: number, p90: number, p99: number, max: number }, firstFailures: object[] }>}
 */
export async function pm2ReloadUnderLoad({
  appDir,
  instances,
  rate,
  connections,
  settleMs,
  warmupMs = 2000,
  env = {},
  pm2App = {},
  path = '/',
}) {
  const { startLoad } = await loadgen();
  const bin = await ensurePm2();
  const app = resolve(root, appDir);
  if (!existsSync(join(app, 'server.js'))) throw new Error(`${app}/server.js not found`);

  const home = mkdtempSync(join(tmpdir(), 'nines-pm2-'));
  const name = `nines-bench-${process.pid}`;
  const pm2Env = { ...process.env, PM2_HOME: home, PM2_DISCRETE_MODE: 'true' };
  const pm2 = (...args) => run(process.execPath, [bin, ...args], { env: pm2Env });
  const pids = new Set(); // every PM2 daemon and worker pid seen, to make sure none survives
  let load;

  const collectPids = async () => {
    try {
      const daemon = Number(readFileSync(join(home, 'pm2.pid'), 'utf8').trim());
      if (daemon > 0) pids.add(daemon);
    } catch {
      // no daemon yet
    }
    try {
      const { stdout } = await pm2('jlist');
      for (const p of JSON.parse(stdout.slice(stdout.indexOf('[')))) if (p.pid > 0) pids.add(p.pid);
    } catch {
      // daemon gone
    }
  };

  // Synchronous so that it can also run from a signal handler.
  let cleaned = false;
  const cleanupSync = () => {
    if (cleaned) return;
    cleaned = true;
    try {
      const daemon = Number(readFileSync(join(home, 'pm2.pid'), 'utf8').trim());
      if (daemon > 0) pids.add(daemon);
    } catch {
      // never started, or already gone
    }
    if (existsSync(home)) {
      spawnSync(process.execPath, [bin, 'kill'], { env: pm2Env, stdio: 'ignore', timeout: 30_000 });
    }
    for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(home, { recursive: true, force: true });
  };
  const onSignal = (sig) => {
    cleanupSync();
    process.kill(process.pid, sig);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    const port = await freePort();
    const eco = join(home, 'ecosystem.json');
    writeFileSync(
      eco,
      JSON.stringify({
        apps: [
          {
            name,
            script: 'server.js',
            cwd: app,
            exec_mode: 'cluster',
            instances,
            autorestart: true,
            merge_logs: true,
            out_file: join(home, 'app.out.log'),
            error_file: join(home, 'app.err.log'),
            env: { PORT: String(port), HOST: '127.0.0.1', NINES_RELEASE: 'v1', ...env },
            ...pm2App,
          },
        ],
      }),
    );
    await pm2('start', eco);
    await collectPids();
    const url = `http://127.0.0.1:${port}${path}`;
    await waitForOk(url, 30_000);

    // The load runs for the whole reload; durationMs is only a safety bound.
    load = startLoad({
      url,
      connections,
      rate,
      durationMs: warmupMs + settleMs + 300_000,
      timeoutMs: 10_000,
    });
    await sleep(warmupMs);
    const t = Date.now();
    await collectPids();
    await pm2('reload', name);
    const reloadMs = Date.now() - t;
    await collectPids();
    await sleep(settleMs);
    const r = await load.stop();
    load = undefined;
    return {
      failed: r.failed,
      total: r.sent,
      ok: r.ok,
      durationMs: r.durationMs,
      reloadMs,
      errors: r.errors,
      byStatus: r.byStatus,
      latencyMs: r.latencyMs,
      firstFailures: r.firstFailures,
    };
  } finally {
    if (load) await load.stop().catch(() => {});
    await collectPids();
    cleanupSync();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}
