// Checks the example app and the e2e fixture apps themselves (real processes on 127.0.0.1), so that an
// e2e failure is never a broken fixture.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Client } from 'undici';
import WebSocket from 'ws';

const root = fileURLToPath(new URL('../../', import.meta.url));
const children = new Set<ChildProcess>();

after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

interface App {
  proc: ChildProcess;
  origin: string;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  listenedAfterMs: number;
}

async function startApp(dir: string, env: Record<string, string> = {}): Promise<App> {
  const t0 = Date.now();
  const proc = spawn(process.execPath, ['server.js'], {
    cwd: `${root}${dir}`,
    env: { PATH: process.env.PATH ?? '', PORT: '0', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(proc);
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  proc.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>(
    (resolve) => {
      proc.on('exit', (code, signal) => {
        children.delete(proc);
        resolve({ code, signal, at: Date.now() });
      });
    },
  );
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${dir} did not listen within 5 s: ${out}`)), 5000);
    const check = () => {
      const m = /listening on \S+:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    proc.stdout?.on('data', check);
    void exited.then(() => reject(new Error(`${dir} exited before listening: ${out}`)));
  });
  return {
    proc,
    origin: `http://127.0.0.1:${port}`,
    output: () => out,
    exited,
    listenedAfterMs: Date.now() - t0,
  };
}

async function get(client: Client, path: string) {
  const res = await client.request({ method: 'GET', path });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('examples/hello', () => {
  test('answers / and /healthz, exits at once on SIGTERM when idle', async () => {
    const app = await startApp('examples/hello', { NINES_RELEASE: 'v7', NINES_INSTANCE_ID: 'i-1' });
    const client = new Client(app.origin);
    try {
      assert.deepEqual(await get(client, '/').then((r) => [r.status, r.body]), [
        200,
        'hello from v7 (instance i-1)\n',
      ]);
      assert.deepEqual(await get(client, '/healthz').then((r) => [r.status, r.body]), [200, 'ok']);
      assert.equal((await get(client, '/nope')).status, 404);
      const t = Date.now();
      app.proc.kill('SIGTERM'); // the client still holds an idle keep-alive socket
      const ex = await app.exited;
      assert.equal(ex.code, 0);
      assert.ok(ex.at - t < 2000, `exit took ${ex.at - t} ms`);
    } finally {
      await client.destroy();
    }
  });

  test('defaults to release dev', async () => {
    const app = await startApp('examples/hello', { NINES_INSTANCE_ID: 'x' });
    const client = new Client(app.origin);
    try {
      assert.equal((await get(client, '/')).body, 'hello from dev (instance x)\n');
    } finally {
      await client.destroy();
      app.proc.kill('SIGTERM');
      await app.exited;
    }
  });
});

describe('fixtures/apps', () => {
  test('the five fixtures are one file differing only in MODE', () => {
    const read = (m: string) => readFileSync(`${root}fixtures/apps/${m}/server.js`, 'utf8');
    const base = read('graceful');
    for (const m of ['abrupt', 'unhealthy', 'slow', 'flaky']) {
      assert.equal(read(m), base.replace("const MODE = 'graceful';", `const MODE = '${m}';`), m);
    }
  });

  test('graceful: body is the release, boot and response delays, drains in-flight on SIGTERM', async () => {
    const app = await startApp('fixtures/apps/graceful', {
      NINES_RELEASE: 'v1',
      BOOT_DELAY_MS: '300',
      RESPONSE_DELAY_MS: '300',
    });
    assert.ok(app.listenedAfterMs >= 300, `listened after ${app.listenedAfterMs} ms`);
    const client = new Client(app.origin);
    try {
      const t = Date.now();
      const first = await get(client, '/');
      assert.deepEqual([first.status, first.body], [200, 'v1']);
      assert.ok(Date.now() - t >= 290);
      assert.equal(first.headers.connection, 'keep-alive');
      assert.deepEqual(await get(client, '/healthz').then((r) => [r.status, r.body]), [200, 'ok']);
      const inFlight = get(client, '/');
      await sleep(100);
      app.proc.kill('SIGTERM');
      const r = await inFlight;
      assert.deepEqual([r.status, r.body, r.headers.connection], [200, 'v1', 'close']);
      const ex = await app.exited;
      assert.equal(ex.code, 0);
      assert.match(app.output(), /SIGTERM: draining 1 in-flight/);
    } finally {
      await client.destroy();
    }
  });

  test('abrupt: exits at once on SIGTERM, failing the request in flight', async () => {
    const app = await startApp('fixtures/apps/abrupt', { NINES_RELEASE: 'v2', RESPONSE_DELAY_MS: '1000' });
    const client = new Client(app.origin);
    try {
      const inFlight = get(client, '/');
      await sleep(100);
      const t = Date.now();
      app.proc.kill('SIGTERM');
      await assert.rejects(inFlight);
      const ex = await app.exited;
      assert.equal(ex.code, 0);
      assert.ok(ex.at - t < 500, `exit took ${ex.at - t} ms`);
    } finally {
      await client.destroy();
    }
  });

  test('unhealthy: serves / but /healthz is 500', async () => {
    const app = await startApp('fixtures/apps/unhealthy', { NINES_RELEASE: 'v3' });
    const client = new Client(app.origin);
    try {
      assert.deepEqual(await get(client, '/').then((r) => [r.status, r.body]), [200, 'v3']);
      assert.equal((await get(client, '/healthz')).status, 500);
    } finally {
      await client.destroy();
      app.proc.kill('SIGTERM');
      await app.exited;
    }
  });

  test('flaky: exactly 3 of every 10 answers to / are 500, /healthz stays 200', async () => {
    const app = await startApp('fixtures/apps/flaky', { NINES_RELEASE: 'v5' });
    const client = new Client(app.origin);
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 20; i++) statuses.push((await get(client, '/')).status);
      assert.equal(statuses.filter((s) => s === 500).length, 6);
      assert.equal(statuses.filter((s) => s === 200).length, 14);
      assert.equal((await get(client, '/healthz')).status, 200);
    } finally {
      await client.destroy();
      app.proc.kill('SIGTERM');
      await app.exited;
    }
  });

  test('slow: /slow?ms= finishes during drain; SHUTDOWN_TIMEOUT_MS cuts a longer one', async () => {
    const app = await startApp('fixtures/apps/slow', { NINES_RELEASE: 'v4', SHUTDOWN_TIMEOUT_MS: '1500' });
    const a = new Client(app.origin);
    const b = new Client(app.origin);
    try {
      const t = Date.now();
      const short = get(a, '/slow?ms=600');
      const long = get(b, '/slow?ms=5000');
      await sleep(100);
      app.proc.kill('SIGTERM');
      const r = await short;
      assert.deepEqual([r.status, r.body], [200, 'v4']);
      assert.ok(Date.now() - t >= 590);
      await assert.rejects(long);
      const ex = await app.exited;
      assert.equal(ex.code, 0);
      assert.ok(ex.at - t >= 1500 && ex.at - t < 3500, `exited after ${ex.at - t} ms`);
      assert.match(app.output(), /still in flight after 1500 ms/);
    } finally {
      await a.destroy();
      await b.destroy();
    }
  });
});

describe('fixtures/apps WebSocket endpoint', () => {
  test('/ws greets with release and instance, echoes, and answers a close frame with its code', async () => {
    const app = await startApp('fixtures/apps/slow', { NINES_RELEASE: 'v7', NINES_INSTANCE_ID: 'i-ws' });
    try {
      const ws = new WebSocket(`${app.origin.replace('http', 'ws')}/ws`);
      const messages: string[] = [];
      const greeted = new Promise<void>((resolve) => ws.once('message', () => resolve()));
      ws.on('message', (d) => messages.push(d.toString()));
      await greeted;
      const long = 'x'.repeat(300);
      ws.send(long);
      await new Promise<void>((resolve) => ws.once('message', () => resolve()));
      assert.deepEqual(messages, ['v7 i-ws', long]);
      const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
      ws.close(4001);
      assert.equal(await closed, 4001);
      const c = new Client(app.origin);
      const r = await c.request({ path: '/', method: 'GET' });
      assert.equal(r.headers['x-instance'], 'i-ws');
      await r.body.text();
      await c.close();
    } finally {
      app.proc.kill('SIGTERM');
      await app.exited;
    }
  });
});
