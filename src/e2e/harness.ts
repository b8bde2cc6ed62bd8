import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, type UpInfo } from '../cli/client.js';
import { type LoadResult, startLoad } from '../drill/loadgen.js';

/**
 * Test harness for end-to-end tests: runs the real `nines` CLI (compiled) as child processes against
 * a temporary data directory, and cleans up every process it caused to exist, by PID — including app
 * instances, which outlive an agent that is killed (that is their point).
 */

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const cliPath = join(repoRoot, 'dist', 'cli', 'main.js');
export const fixture = (name: string) => join(repoRoot, 'fixtures', 'apps', name);

/** A running `nines up` (see `spawnCli` for the process handle). */
export interface Up extends Proc {
  dataDir: string;
  info: UpInfo;
  client: Client;
}

export function tempDir(prefix = 'nines-e2e-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface StartOptions {
  dataDir: string;
  /** nines.yaml text; written into dataDir's parent. Omit to start with no config. */
  config?: string;
  timeoutMs?: number;
}

export async function startUp(o: StartOptions): Promise<Up> {
  const args = [
    'up',
    '--data-dir',
    o.dataDir,
    '--api-port',
    '0',
    '--proxy-port',
    '0',
    '--log-level',
    'debug',
  ];
  if (o.config !== undefined) {
    const file = join(dirname(o.dataDir), `nines-${Date.now()}.yaml`);
    writeFileSync(file, o.config);
    args.push('--config', file);
  }
  let p: Proc;
  try {
    p = await spawnCli(args, o.timeoutMs ?? 60_000, dirname(o.dataDir));
  } catch (err) {
    killTree(o.dataDir);
    throw err;
  }
  const info = JSON.parse(await readFile(join(o.dataDir, 'up.json'), 'utf8')) as UpInfo;
  const token = (await readFile(info.adminTokenFile, 'utf8')).trim();
  return { ...p, dataDir: o.dataDir, info, client: new Client({ url: info.apiUrl, token }) };
}

/** PIDs of processes whose working directory is inside `dir` (app instances run in their release dir). */
export function pidsUnder(dir: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cwd = readlinkSync(`/proc/${name}/cwd`);
      if (cwd.startsWith(`${dir}/`) || cwd === dir) pids.push(Number(name));
    } catch {}
  }
  return pids.filter((p) => p !== process.pid);
}

/** Kill `nines up` and every process left running inside its data directory. */
export function killTree(dataDir: string, proc?: ChildProcess): void {
  if (proc && proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  for (const pid of pidsUnder(dataDir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
}

export function cleanup(root: string, ...ups: Array<Up | undefined>): void {
  for (const u of ups) if (u) killTree(u.dataDir, u.proc);
  for (const pid of pidsUnder(root)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
  rmSync(root, { recursive: true, force: true });
}

/** Run the CLI once; resolves with exit code and output. */
export function cli(
  dataDir: string,
  ...args: string[]
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const p = spawn(process.execPath, [cliPath, '--data-dir', dataDir, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    p.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    p.on('exit', (code) => res({ code, stdout, stderr }));
  });
}

export function serviceYaml(o: {
  name?: string;
  source: string;
  instances?: number;
  drainTimeout?: string;
  healthyDeadline?: string;
  env?: Record<string, string>;
  extra?: string;
}): string {
  return `services:
  ${o.name ?? 'web'}:
    source: ${o.source}
    command: node server.js
    instances: ${o.instances ?? 3}
    env: ${JSON.stringify(o.env ?? {})}
    health: { path: /healthz, interval: 200ms, timeout: 500ms, rise: 2, fall: 2 }
    drainTimeout: ${o.drainTimeout ?? '5s'}
    healthyDeadline: ${o.healthyDeadline ?? '15s'}
    rolling: { maxSurge: 1, maxUnavailable: 0 }
${o.extra ?? ''}`;
}

/**
 * Run `fn` while a load client sends GETs to `url` at `rate` req/s; keep the load on until `fn` has
 * finished plus `tailMs`, and until at least `minRequests` were sent. Classifies answers by body.
 */
export async function underLoad<T>(
  url: string,
  fn: () => Promise<T>,
  o: { rate?: number; connections?: number; minRequests?: number; leadMs?: number; tailMs?: number } = {},
): Promise<{ value: T; load: LoadResult }> {
  const load = startLoad({
    url,
    rate: o.rate ?? 800,
    connections: o.connections ?? 32,
    durationMs: 180_000,
    timeoutMs: 15_000,
    classify: (_status, body) => body.trim().slice(0, 40),
  });
  try {
    await sleep(o.leadMs ?? 1000);
    const value = await fn();
    await sleep(o.tailMs ?? 1000);
    while (load.progress().sent < (o.minRequests ?? 0)) await sleep(100);
    return { value, load: await load.stop() };
  } catch (err) {
    await load.stop();
    throw err;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function describeLoad(r: LoadResult): string {
  return JSON.stringify({
    sent: r.sent,
    ok: r.ok,
    failed: r.failed,
    byStatus: r.byStatus,
    errors: r.errors,
    classes: r.classes,
    latencyMs: r.latencyMs,
    firstFailures: r.firstFailures.slice(0, 5),
  });
}

export interface Proc {
  proc: ChildProcess;
  output: () => string;
  /** The text after `ready: ` on the process's ready line. */
  ready: string;
  kill9(): Promise<void>;
  stop(ms?: number): Promise<void>;
}

/** Start a long-running CLI command (`controller`, `agent`, `proxy`) and wait for its `ready:` line. */
export async function spawnCli(args: string[], timeoutMs = 30_000, cwd?: string): Promise<Proc> {
  const proc = spawn(process.execPath, [cliPath, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(cwd ? { cwd } : {}),
  });
  let out = '';
  const onData = (d: Buffer) => {
    out += d.toString();
  };
  proc.stdout?.on('data', onData);
  proc.stderr?.on('data', onData);
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const ready = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      rej(new Error(`${args[0]} not ready after ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    const check = () => {
      const m = /^ready: (.*)$/m.exec(out);
      if (m) {
        clearTimeout(timer);
        res(m[1] ?? '');
      }
    };
    proc.stdout?.on('data', check);
    exited.then(() => {
      clearTimeout(timer);
      rej(new Error(`${args[0]} exited:\n${out}`));
    });
  });
  return {
    proc,
    ready,
    output: () => out,
    async kill9() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
    async stop(ms = 30_000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), ms);
      await exited;
      clearTimeout(t);
    },
  };
}

/** A TCP port that was free on 127.0.0.1 a moment ago (for processes that must come back on it). */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => res(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}
