import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startLoad } from '../drill/loadgen.js';
import type { ClusterConfig } from './cluster.js';
import { sleep, snapshot, testEnv, waitFor } from './test-helpers.js';

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function children(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

test('--workers 2: a cluster shares the listener; SIGHUP hands over under load with 0 failed requests', async (t) => {
  const e = testEnv(t);
  const a = await e.backend('a', (_q, res, s) => res.end(s.name));
  const dir = mkdtempSync(join(tmpdir(), 'nines-cluster-'));
  e.defer(async () => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const snapFile = join(dir, 'snapshot.json');
  writeFileSync(snapFile, JSON.stringify(snapshot(1, [{ instances: [{ id: 'a', port: a.port }] }])));
  const config: ClusterConfig = {
    workers: 2,
    proxy: { host: '127.0.0.1', port, proxyId: 'c', snapshotCacheFile: join(dir, 'cache.json') },
    logLevel: 'warn',
    snapshotFile: snapFile,
    stopTimeoutSeconds: 5,
  };
  const cfgFile = join(dir, 'cluster.json');
  writeFileSync(cfgFile, JSON.stringify(config));
  const entry = fileURLToPath(new URL('./cluster.js', import.meta.url));
  const child = spawn(process.execPath, [entry, cfgFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  e.defer(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await exited;
  });
  const url = `http://127.0.0.1:${port}/`;
  await waitFor(
    'cluster listening',
    async () => (await fetch(`${url}_nines/health`).catch(() => null))?.status === 200,
    10_000,
  );
  await waitFor('2 workers', () => children(child.pid!).length === 2, 5000);
  const before = children(child.pid!);

  const load = startLoad({ url, connections: 8, rate: 400, durationMs: 3000, timeoutMs: 5000 });
  await sleep(800);
  child.kill('SIGHUP');
  await waitFor(
    'new workers took over',
    () => {
      const now = children(child.pid!);
      return now.length === 2 && now.every((p) => !before.includes(p));
    },
    8000,
  );
  const r = await load.done;
  assert.equal(r.failed, 0, `${JSON.stringify(r.firstFailures.slice(0, 5))} ${stderr}`);
  assert.ok(r.ok > 1000);
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
});
